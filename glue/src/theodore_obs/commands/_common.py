"""What every operator command shares: backend options, error handling, durations, output."""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from ..clients import BackendError, Backends, BackendUnavailable, backends_from_spec
from ..clients.addresses import URL_ENV
from ..spec import SpecError, load_spec

EXIT_FAILED = 1
"""The answer is bad news: something is unhealthy, not found, or a backend rejected the request."""
EXIT_BAD_INPUT = 2
"""Bad option or spec (click's usage errors use 2 as well)."""
EXIT_BACKEND_DOWN = 3
"""A backend did not answer; the message names it and how to start it."""

TIME_RANGES = ["1h", "6h", "24h", "7d"]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Context:
    """The spec of the chosen environment and the backends' addresses."""

    spec: dict[str, Any]
    backends: Backends


def seconds(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` (or several, ``1h30m``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise click.BadParameter(f"{text!r}: expected a duration like 30m, 1h, 7d")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def timestamp(text: str | None) -> float | None:
    """Unix seconds from ``--at`` (unix seconds or ISO 8601), or None for now."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected unix seconds or an ISO 8601 time") from None


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--env``, ``--spec`` and one ``--<backend>-url`` per backend; passes ``ctx: Context``."""

    @functools.wraps(command)
    def wrapper(*args: Any, env: str, spec_path: Path | None, **kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(f"{name}_url") for name in Backends.names()}
        try:
            spec = load_spec(env, spec_path).data
        except SpecError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        return command(*args, ctx=Context(spec, backends_from_spec(spec, overrides)), **kwargs)

    for name in reversed(Backends.names()):
        wrapper = click.option(f"--{name}-url", f"{name}_url", envvar=URL_ENV.format(name=name.upper()),
                               help=f"{name.capitalize()} base URL (default: from the spec).")(wrapper)
    wrapper = click.option("--spec", "spec_path", type=click.Path(path_type=Path), envvar="THEODORE_OBS_SPEC",
                           help="Spec file (default: stack.yaml).")(wrapper)
    return click.option("--env", "env", default="local", show_default=True, envvar="THEODORE_OBS_ENV",
                        help="Environment of the spec.")(wrapper)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Backend failures become one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BackendUnavailable as exc:
            fail(str(exc), EXIT_BACKEND_DOWN)
        except BackendError as exc:
            fail(str(exc), EXIT_FAILED)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


def operator_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """The backend options plus error reporting (apply under ``@click.command``)."""
    return backend_options(reports_errors(command))


def console() -> Console:
    """Rich output; wide when piped, so tables in files and tests are not cut."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def make_table(title: str, columns: list[str], numeric: tuple[str, ...] = ()) -> Table:
    """A rich table with these columns; the ``numeric`` ones right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def emit(data: Any, fmt: str) -> None:
    """Machine formats: ``json`` (stable, documented in the README) or ``yaml``."""
    if fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)
    else:
        click.echo(json.dumps(data, indent=2, default=str))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temp file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"{path}: cannot write: {exc.strerror}", EXIT_BAD_INPUT)


def iso(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))
