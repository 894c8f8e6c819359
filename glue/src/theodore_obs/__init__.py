"""theodore-observability glue: the spec, the generator, the native runtime and the CLI."""

__all__: list[str] = []
