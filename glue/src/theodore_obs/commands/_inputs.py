"""Checks of what operators type: text, durations, times, counts, output files (all exit 2)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..timing import duration_seconds
from ._errors import EXIT_BAD_INPUT, fail

MAX_SECONDS = 3650 * 86400
"""The longest duration taken (ten years): past it times leave what the backends accept."""
MAX_UNIX = 253402300799
"""9999-12-31T23:59:59Z, the last time ``--at`` takes."""
MAX_COUNT = 1_000_000
"""The most lines or traces a ``--limit`` asks for."""


class UserText(click.ParamType):
    """A string that can be sent: no bytes that are not UTF-8 (which a shell can pass), no NUL."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            self.fail(f"{text.encode(errors='backslashreplace').decode()!r} is not valid UTF-8", param, ctx)
        if "\0" in text:
            self.fail("contains a NUL character", param, ctx)
        return text


TEXT = UserText()
LIMIT = click.IntRange(1, MAX_COUNT)
"""A ``--limit``: at least one, at most :data:`MAX_COUNT`."""


class Seconds(click.ParamType):
    """A finite, positive number of seconds (``--interval``)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
            self.fail(f"{value!r}: expected seconds above 0", param, ctx)
        return number


SECONDS = Seconds()


def seconds(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` (or several, ``1h30m``) in seconds; at most ten years."""
    try:
        total = duration_seconds(text.strip(), "smhdw")
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a duration like 30m, 1h, 7d") from None
    if not 0 < total <= MAX_SECONDS:
        raise click.BadParameter(f"{text!r}: expected a duration above 0s, at most {MAX_SECONDS // 86400}d")
    return total


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback: ``value`` checked by :func:`seconds` while the options are parsed."""
    if value is not None:
        seconds(value)
    return value


def timestamp(text: str | None) -> float | None:
    """Unix seconds from ``--at`` (unix seconds or ISO 8601, 1970 to 9999), or None for now."""
    if text is None:
        return None
    try:
        found = float(text)
    except ValueError:
        try:
            found = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise click.BadParameter(f"{text!r}: expected unix seconds or an ISO 8601 time") from None
    if not (math.isfinite(found) and 0 <= found <= MAX_UNIX):
        raise click.BadParameter(f"{text!r}: expected a time between 1970 and 9999")
    return found


def at_or_now(text: str | None) -> float:
    """``--at`` in unix seconds (see :func:`timestamp`), or now when it is not given."""
    found = timestamp(text)
    return time.time() if found is None else found


def at_time(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback: ``--at`` checked by :func:`timestamp` while the options are parsed."""
    timestamp(value)
    return value


AT = click.option("--at", "at_text", callback=at_time,
                  help="Evaluate at this time (unix seconds or ISO 8601; default now).")
"""The ``--at`` option of ``metrics`` and ``cost``."""


def checked(check: Callable[[str], str]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running ``check`` (which raises ``ValueError``) on a value or each value."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        try:
            if isinstance(value, tuple):
                return tuple(check(v) for v in value)
            return None if value is None else check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def writable_file(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback: an output file that can be written, checked before any backend is asked
    (by creating and removing the temporary file the write goes through)."""
    if value is None:
        return None
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory")
    try:
        os.close(os.open(_tmp(value), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        _tmp(value).unlink()
    except OSError as exc:
        raise click.BadParameter(f"{value}: cannot write: {exc.strerror}") from None
    return value


def output_file(*names: str, help: str) -> Callable[[Any], Any]:
    """A click option naming a file to write, checked by :func:`writable_file`."""
    return click.option(*names, type=click.Path(path_type=Path, dir_okay=False), callback=writable_file,
                        help=help)


SINCE = click.option("--since", default="1h", show_default=True, callback=duration,
                     help="How far back: 30m, 1h, 2d.")
"""The ``--since`` option of ``logs`` and ``traces``."""


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temp file renamed over it); exit 2 if it
    cannot be written."""
    tmp = _tmp(path)
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"{path}: cannot write: {exc.strerror}", EXIT_BAD_INPUT)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, whole or not at all."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")
