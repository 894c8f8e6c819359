"""``theodore-obs``: render, validate and run the observability stack."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import native
from .commands import COMMANDS as OPERATOR_COMMANDS
from .commands._errors import EXIT_BAD_INPUT, OneLineGroup
from .commands._inputs import output_file, write_text
from .output_tree import OutputError, write_environments
from .paths import rendered_root
from .render import COMPOSE, RenderError, render_files
from .spec import SpecError, environments, load_spec
from .tools import ToolError, buildable, ensure_tools, load_versions
from .validate import validate_env

EXIT_BAD_SPEC = 2


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _envs(env: str | None, spec_path: Path | None) -> list[str]:
    try:
        return [env] if env else environments(spec_path)
    except SpecError as exc:
        _fail(str(exc), EXIT_BAD_SPEC)
        raise


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Render, validate and run Theodore's observability stack."""


@main.command()
@click.option("--env", "env", help="Environment to render (default: every one in the spec).")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), help="Spec file (default: stack.yaml).")
@click.option("--out", "out", type=click.Path(path_type=Path), help="Output folder (default: rendered/).")
def render(env: str | None, spec_path: Path | None, out: Path | None) -> None:
    """Render every config from the spec into OUT/<env>/ (all or nothing).

    Render replaces only what it made (listed in OUT/.theodore-render.json); anything else in
    OUT is left alone."""
    out = out or rendered_root()
    names = _envs(env, spec_path)
    try:
        trees = {name: render_files(load_spec(name, spec_path), COMPOSE) for name in names}
        for line in write_environments(trees, out, prune=env is None):
            click.echo(line)
    except (SpecError, RenderError, OutputError) as exc:
        _fail(str(exc), EXIT_BAD_SPEC)


@main.command()
@click.option("--env", "env", help="Environment to check (default: every one).")
@click.option("--dir", "root", type=click.Path(path_type=Path), help="Rendered folder (default: rendered/).")
def validate(env: str | None, root: Path | None) -> None:
    """Check each rendered file with the tool that consumes it."""
    root = root or rendered_root()
    if not root.is_dir():
        _fail(f"{root} is not a folder of rendered environments (run `theodore-obs render`)", EXIT_BAD_SPEC)
    names = [env] if env else sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = [name for name in names if not (root / name).is_dir()]
    if missing or not names:
        _fail(f"no rendered environment {missing[0] if missing else ''} in {root}".replace("  ", " "),
              EXIT_BAD_SPEC)
    failed = 0
    for name in names:
        click.echo(f"== {name}")
        for finding in validate_env(root / name):
            click.echo(finding.line())
            failed += not finding.ok
    if failed:
        _fail(f"{failed} check(s) failed")


@main.command()
@click.argument("names", nargs=-1)
def tools(names: tuple[str, ...]) -> None:
    """Build the pinned native binaries (all, or NAMES) into the per-version cache."""
    known = {c.name for c in buildable(load_versions())}
    unknown = sorted(set(names) - known)
    if unknown:
        _fail(f"unknown tool(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})", EXIT_BAD_INPUT)
    try:
        ensure_tools(list(names) or None)
    except ToolError as exc:
        _fail(str(exc))


@main.command()
@click.option("--env", "env", default="local", show_default=True)
@click.option("--runtime", type=click.Choice(["native"]), default="native", show_default=True,
              help="Where to run (compose runs through `make up` with a Docker engine).")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), help="Spec file (default: stack.yaml).")
def up(env: str, runtime: str, timeout: float, spec_path: Path | None) -> None:
    """Start every component on 127.0.0.1 and wait until each is ready."""
    try:
        native.up(load_spec(env, spec_path), timeout=timeout, say=click.echo)
    except (SpecError, RenderError) as exc:
        _fail(str(exc), EXIT_BAD_SPEC)
    except (native.NativeError, ToolError) as exc:
        _fail(str(exc))


BENCH_PACKAGE = "theodore_bench"
"""Where `bench` lives: the repository's bench/, installed in the dev venv only."""


@main.command("bench")
@click.option("--runs", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Cold starts to time for `up`.")
@output_file("--out", help="Also write the report to this file.")
def bench(runs: int, out: Path | None) -> None:
    """All benchmarks: up, log call, request overhead, span export (stack must be down)."""
    try:
        from theodore_bench.bench import report_all  # noqa: PLC0415 (dev-only: bench/, not shipped)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != BENCH_PACKAGE:
            raise
        _fail(f"`bench` needs the dev-only package {BENCH_PACKAGE}: in a checkout, `make deps` "
              "(or `pip install -e bench/`)", EXIT_BAD_INPUT)
    try:
        report = report_all(runs)
    except (native.NativeError, ToolError) as exc:
        _fail(str(exc))
    click.echo(report)
    if out:
        write_text(out, f"$ theodore-obs bench --runs {runs}\n{report}\n")


@main.command()
def down() -> None:
    """Stop exactly what `up` started."""
    native.down(say=click.echo)


for _command in OPERATOR_COMMANDS:
    main.add_command(_command)


__all__ = ["main"]
