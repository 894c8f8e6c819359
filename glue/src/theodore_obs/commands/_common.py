"""What every operator command shares: backend options, error handling, durations, output."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..clients import Backends, backends_from_spec
from ..clients._http import BadURL, check_url, mask_url
from ..clients.addresses import URL_ENV
from ..spec import SpecError, load_spec
from ._errors import EXIT_BACKEND_DOWN, EXIT_BAD_INPUT, EXIT_FAILED, fail, reports_errors
from ._inputs import seconds, timestamp, write_json

TIME_RANGES = ["1h", "6h", "24h", "7d"]

__all__ = ["EXIT_BACKEND_DOWN", "EXIT_BAD_INPUT", "EXIT_FAILED", "TIME_RANGES", "Context", "backend_options",
           "console", "emit", "escape", "fail", "iso", "make_table", "markup", "operator_command",
           "reports_errors", "seconds", "timestamp", "write_json"]

SPEC_PROBLEMS = (SpecError, ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)
"""What loading a broken spec can raise; each is bad input (exit 2), not a traceback."""


@dataclass(frozen=True)
class Context:
    """The spec of the chosen environment and the backends' addresses."""

    spec: dict[str, Any]
    backends: Backends


def _url_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a ``--<backend>-url`` must be a URL that can be asked."""
    try:
        return None if value is None else check_url(value)
    except BadURL as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _spec(env: str, spec_path: Path | None) -> dict[str, Any]:
    """The environment's spec, or exit 2 naming what is wrong with it."""
    try:
        return load_spec(env, spec_path).data
    except SPEC_PROBLEMS as exc:
        fail(str(exc) if isinstance(exc, SpecError) else
             f"{spec_path or 'stack.yaml'}: cannot be used ({type(exc).__name__}: {exc})", EXIT_BAD_INPUT)


def _backends(spec: dict[str, Any], overrides: dict[str, str | None]) -> Backends:
    """The backends' addresses, each one checked (the spec's too); exit 2 on one that is not a URL."""
    found = backends_from_spec(spec, overrides)
    for field in dataclasses.fields(found):
        try:
            check_url(getattr(found, field.name))
        except BadURL as exc:
            fail(f"{field.name} address {exc}", EXIT_BAD_INPUT)
    return found


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--env``, ``--spec`` and one ``--<backend>-url`` per backend; passes ``ctx: Context``."""

    @functools.wraps(command)
    def wrapper(*args: Any, env: str, spec_path: Path | None, **kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(f"{name}_url") for name in Backends.names()}
        spec = _spec(env, spec_path)
        return command(*args, ctx=Context(spec, _backends(spec, overrides)), **kwargs)

    for name in reversed(Backends.names()):
        wrapper = click.option(f"--{name}-url", f"{name}_url", envvar=URL_ENV.format(name=name.upper()),
                               callback=_url_option,
                               help=f"{Backends.title(name)} base URL (default: from the spec).")(wrapper)
    wrapper = click.option("--spec", "spec_path", type=click.Path(path_type=Path), envvar="THEODORE_OBS_SPEC",
                           help="Spec file (default: stack.yaml).")(wrapper)
    return click.option("--env", "env", default="local", show_default=True, envvar="THEODORE_OBS_ENV",
                        help="Environment of the spec.")(wrapper)


def operator_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """The backend options plus error reporting (apply under ``@click.command``)."""
    return backend_options(reports_errors(command))


def console() -> Console:
    """Rich output; wide when piped, so tables in files and tests are not cut."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


class PlainTable(Table):
    """A rich table whose string cells print as they are: a backend's ``[/x]`` is text, not
    markup (cells meant as markup are given as :func:`markup`)."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


def markup(text: str) -> Text:
    """Our own rich markup (``[green]ready[/]``) for a :class:`PlainTable` cell."""
    return Text.from_markup(text)


def make_table(title: str, columns: list[str], numeric: tuple[str, ...] = ()) -> Table:
    """A :class:`PlainTable` with these columns; the ``numeric`` ones right-aligned."""
    table = PlainTable(title=escape(title))
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def emit(data: Any, fmt: str) -> None:
    """Machine formats: ``json`` (stable, documented in the README) or ``yaml``."""
    if fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)
    else:
        click.echo(json.dumps(data, indent=2, default=str))


def iso(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def shown(url: str) -> str:
    """``url`` as it may be printed: its password masked."""
    return mask_url(url)
