"""Exit codes and the one-line ``error: …`` every failure ends in, never a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from ..clients import BackendError, BackendUnavailable, RejectedQuery
from ..clients._http import one_line

EXIT_FAILED = 1
"""The answer is bad news: something is unhealthy, not found, or a backend rejected the request
(or answered in a shape we do not know); also any other failure."""
EXIT_BAD_INPUT = 2
"""Bad option, argument, spec or output file, or a query the log store refuses (click's usage
errors use 2 as well)."""
EXIT_BACKEND_DOWN = 3
"""A backend did not answer; the message names it and how to start it."""
EXIT_INTERRUPTED = 130
"""Ctrl-C."""

DEBUG_ENV = "THEODORE_OBS_DEBUG"
"""Set to 1 to get the traceback of an unexpected failure instead of its one line."""


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: MESSAGE`` (one line) on stderr and exit with ``code``."""
    click.echo(f"error: {one_line(message, 2000)}", err=True)
    sys.exit(code)


def unexpected(exc: BaseException) -> NoReturn:
    """An exception nothing expected: one line naming it, exit 1 (the traceback with DEBUG_ENV)."""
    if os.environ.get(DEBUG_ENV):
        raise exc
    fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)")


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Backend failures (and anything unexpected) become one line on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BackendUnavailable as exc:
            fail(str(exc), EXIT_BACKEND_DOWN)
        except RejectedQuery as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except BackendError as exc:
            fail(str(exc), EXIT_FAILED)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click reports these itself (a closed pipe, `| head`, ends quietly)
        except Exception as exc:
            unexpected(exc)

    return wrapper


def usage_line(exc: click.ClickException) -> str:
    """A click usage error as one line, pointing at the command's ``--help``."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if isinstance(exc, click.UsageError) and ctx else ""
    return exc.format_message() + where


class OneLineGroup(click.Group):
    """A click group whose every failure, usage errors included, is one ``error: …`` line."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            fail(f"{exc.ctx.command_path}: missing command", exc.exit_code)
        except click.ClickException as exc:
            fail(usage_line(exc), exc.exit_code)
        except click.Abort:
            fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:
            unexpected(exc)
        sys.exit(code if isinstance(code, int) else 0)
