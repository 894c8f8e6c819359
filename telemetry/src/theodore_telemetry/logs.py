"""JSON logs for structlog and stdlib logging alike: trace-correlated, redacted, sent over OTLP.

One processor chain serves both. structlog events run it and then ``JSONLineEmitter``, which
renders the line once (orjson), queues it for OTLP export on a background thread
(``log_export``) and returns it for stdout: no stdlib ``LogRecord`` is built on that hot
path. Stdlib records (a third-party library's ``logging.getLogger(__name__)``) run the same
chain in the root handlers' ``JSONFormatter``, once per record.
Either way stdout and the log store get the same redacted JSON line, and a log call never
raises into the application: arguments that don't fit the message are shown beside it, and an
event the chain fails on becomes a line saying so (``failed_line``), without its values.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from .correlation import current_correlation_id
from .log_export import EXPORT, TRACE
from .redact import DEFAULT_SENSITIVE_KEYS, UNREDACTABLE, Redactor

logging.addLevelName(TRACE, "TRACE")
"""Below DEBUG: seed 003's TRACE level."""

OTLP_ATTRIBUTES = ("correlation_id", "category", "component")
"""Event fields also sent as OTLP log attributes (fields of their own in VictoriaLogs) for filtering."""

SENSITIVE_KEYS_ENV = "THEODORE_LOG_SENSITIVE_KEYS"
"""Comma-separated extra key words to redact, on top of seed 003's list."""

LOG_LEVEL_ENV = "THEODORE_LOG_LEVEL"
"""Root level (TRACE, DEBUG, INFO, …); default INFO."""

COMPONENT_LEVELS_ENV = "THEODORE_LOG_LEVELS"
"""Per-logger levels, e.g. ``scraper=DEBUG,httpx=INFO``."""

LIBRARY_LEVELS = {"httpx": logging.WARNING, "httpx2": logging.WARNING}
"""Library loggers quieter by default (``THEODORE_LOG_LEVELS`` overrides): httpx (and httpx2,
which the OpenAI SDK 3 uses) write an INFO line per HTTP request, a copy of what the client or
GenAI span already records."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL, "fatal": logging.CRITICAL}


class ISOTimeStamper:
    """``timestamp`` in ISO 8601 UTC with microseconds, as structlog's ``TimeStamper(fmt="iso",
    utc=True)`` writes it, formatting the date and time of day once per second."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event_dict["timestamp"] = f"{prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


@functools.lru_cache(maxsize=256)
def _hex_ids(trace_id: int, span_id: int) -> tuple[str, str]:
    return format(trace_id, "032x"), format(span_id, "016x")


def add_trace_context(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add ``trace_id``/``span_id`` of the active span (W3C hex), if one is recording."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        trace_id, span_id = _hex_ids(ctx.trace_id, ctx.span_id)
        event_dict.setdefault("trace_id", trace_id)
        event_dict.setdefault("span_id", span_id)
    return event_dict


def add_correlation_id(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    correlation_id = current_correlation_id()
    if correlation_id:
        event_dict.setdefault("correlation_id", correlation_id)
    return event_dict


class AddService:
    """Add the service name and deployment environment the SDK resource describes."""

    def __init__(self, service: str, environment: str) -> None:
        self.fields = {"service": service, "environment": environment}

    def __call__(self, logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key, value in self.fields.items():
            event_dict.setdefault(key, value)
        return event_dict


def _otlp_attributes(event_dict: dict[str, Any]) -> dict[str, str] | None:
    return {k: str(event_dict[k]) for k in OTLP_ATTRIBUTES if k in event_dict} or None


def _detach_record(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Take the stdlib record out of the event, stashing on it the fields the OTLP handler
    sends as attributes."""
    record = event_dict.pop("_record", None)
    if record is not None:
        record.theodore_attributes = _otlp_attributes(event_dict)
    return event_dict


_slow_dumps = json.JSONEncoder(default=repr).encode


def dumps(event_dict: dict[str, Any]) -> str:
    """The event as one compact JSON line; values JSON can't hold are written as their repr.

    Never raises: an event no encoder can write becomes a line saying so (with its level and
    logger, none of its values).
    """
    try:
        return orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int beyond 64 bits
        try:
            return _slow_dumps(event_dict)
        except Exception:
            return failed_line(event_dict.get("level"), event_dict.get("logger"), "unserialisable")


def failed_line(level: Any, logger: Any, reason: str) -> str:
    """The line written in place of an event whose processing failed: no value of the event
    (one could be an unredacted secret), only its level and logger name, redacted."""
    return orjson.dumps({"message": UNREDACTABLE, "level": _safe_name(level, 16) or "error",
                         "logger": _safe_name(logger, 128), "log_failure": reason}).decode()


_FALLBACK_REDACTOR = Redactor()


def _safe_name(name: Any, length: int) -> str:
    try:
        return _FALLBACK_REDACTOR.text(name)[:length] if isinstance(name, str) else ""
    except Exception:
        return ""


def render_json(logger: object, method: str, event_dict: dict[str, Any]) -> str:
    """Last processor of stdlib records: the same compact line as structlog events get."""
    return dumps(event_dict)


class JSONLineEmitter:
    """Last processor of structlog events: render the JSON line, queue it for OTLP, return it."""

    def __init__(self, otlp: bool) -> None:
        self.otlp = otlp

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        line = dumps(event_dict)
        name = event_dict.get("logger", "")
        if self.otlp and not name.startswith("opentelemetry"):
            EXPORT.submit(name, _LEVELS.get(method, logging.INFO), line, _otlp_attributes(event_dict),
                          time.time_ns())
        return line


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer, carrying the name ``add_logger_name`` reads."""

    def __init__(self, file: Any, name: str) -> None:
        super().__init__(file)
        self.name = name


class ComponentLevels:
    """Drops events below the level configured for their logger (``THEODORE_LOG_LEVELS``)."""

    def __init__(self, levels: dict[str, int]) -> None:
        self.levels = levels

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        minimum = self.levels.get(getattr(logger, "name", ""))
        if minimum is not None and _LEVELS.get(method, logging.INFO) < minimum:
            raise structlog.DropEvent
        return event_dict


def shared_processors(service: str, environment: str, redactor: Redactor,
                      stdlib: bool = False) -> list[Any]:
    """The chain every event goes through, whichever API logged it. Redaction comes last.

    ``stdlib``: the chain runs on stdlib records, whose ``extra`` fields join the event.
    """
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        *([structlog.stdlib.ExtraAdder()] if stdlib else []),
        ISOTimeStamper(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        structlog.processors.EventRenamer("message"),
        add_trace_context,
        add_correlation_id,
        AddService(service, environment),
        redactor,
    ]


class JSONFormatter(logging.Formatter):
    """Renders a stdlib record through ``chain`` once; every handler then reuses the line.

    What structlog's ``ProcessorFormatter`` does for a foreign record, without copying the
    record first (the copy is a second ``LogRecord``; without it a line costs its caller 86
    instead of 109 µs here): the chain only reads the record, through the event's ``_record``.
    """

    def __init__(self, chain: list[Any]) -> None:
        super().__init__()
        self.chain = chain

    def format(self, record: logging.LogRecord) -> str:
        """The record's line, rendered once; never raises (logging's error handler would print
        the unredacted arguments to stderr)."""
        line = getattr(record, "theodore_line", None)
        if line is None:
            try:
                line = self._render(record)
            except Exception as error:
                line = failed_line(record.levelname.lower(), record.name, type(error).__name__)
            record.theodore_line = line
        return line

    def _render(self, record: logging.LogRecord) -> str:
        event: Any = {"event": _message(record), "_record": record}
        if record.exc_info:
            event["exc_info"] = record.exc_info
        if record.stack_info:
            event["stack_info"] = record.stack_info
        method = record.levelname.lower()
        for processor in self.chain:
            event = processor(None, method, event)
        return event


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, or, when the arguments don't fit the format, both side by side
    (the chain redacts them like any message)."""
    try:
        return record.getMessage()
    except Exception:
        return _unformatted(record.msg, record.args)


def _unformatted(msg: Any, args: Any) -> str:
    try:
        return f"{msg} {args!r}"
    except Exception:
        return f"{type(msg).__name__} message, arguments that can't be shown"


def interpolate(event: Any, args: tuple[Any, ...]) -> Any:
    """structlog's ``event % args`` (a lone mapping by name), which never raises."""
    if not args:
        return event
    try:
        one = args[0]
        return event % (one if len(args) == 1 and isinstance(one, Mapping) and one else args)
    except Exception:
        return _unformatted(event, args)


def _safe_method(name: str) -> Any:
    def method(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._proxy_to_logger(name, interpolate(event, args), **kw)
    method.__name__ = name
    return method


def _safe_async(base_method: Any) -> Any:
    async def method(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        return await base_method(self, interpolate(event, args), **kw)
    return method


@functools.cache
def safe_bound_logger(min_level: int) -> type:
    """structlog's filtering bound logger whose calls never raise into the application:
    arguments that don't fit the message are shown beside it, and an event a processor fails
    on is written as ``failed_line``."""
    base: Any = structlog.make_filtering_bound_logger(min_level)
    names = {n: logging.getLevelName(level).lower() for n, level in _LEVELS.items()
             if level >= min_level and n != "exception"}  # structlog's exception() calls error()

    def log(self: Any, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        return base.log(self, level, interpolate(event, args), **kw)

    async def alog(self: Any, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        return await base.alog(self, level, interpolate(event, args), **kw)

    def _proxy_to_logger(self: Any, method_name: str, event: Any = None, **event_kw: Any) -> Any:
        try:
            return base._proxy_to_logger(self, method_name, event, **event_kw)
        except Exception as error:
            return _write_failure(self, method_name, error)

    methods = {alias: _safe_method(name) for alias, name in names.items()}
    methods |= {f"a{alias}": _safe_async(getattr(base, f"a{alias}")) for alias in names}
    if "info" in methods:
        methods["msg"], methods["amsg"] = methods["info"], methods["ainfo"]
    return type("SafeBoundLogger", (base,), {**methods, "log": log, "alog": alog,
                                             "_proxy_to_logger": _proxy_to_logger})


def _write_failure(bound: Any, method_name: str, error: Exception) -> None:
    try:
        getattr(bound._logger, method_name)(
            failed_line(method_name, getattr(bound._logger, "name", ""), type(error).__name__))
    except Exception:  # nowhere left to write: drop the line rather than raise
        return


def json_formatter(service: str, environment: str, redactor: Redactor) -> JSONFormatter:
    return JSONFormatter([*shared_processors(service, environment, redactor, stdlib=True),
                          _detach_record, render_json])


class OTLPLogHandler(logging.Handler):
    """Sends each record's redacted JSON line to the OpenTelemetry logger provider.

    Only the rendered line and a few chosen fields leave the process: a record's raw
    ``extra`` attributes never do, so nothing bypasses redaction.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """The SDK's own records stay local: exporting them could loop."""
        return not record.name.startswith("opentelemetry") and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            EXPORT.submit(record.name, record.levelno, self.format(record),
                          getattr(record, "theodore_attributes", None), int(record.created * 1e9))
        except Exception:
            self.handleError(record)


def _levels_from_env() -> dict[str, int]:
    levels = {}
    for item in filter(None, os.environ.get(COMPONENT_LEVELS_ENV, "").split(",")):
        name, _, level = item.partition("=")
        levels[name.strip()] = logging.getLevelName(level.strip().upper())
    return levels


def configure_logging(service: str | None = None, environment: str | None = None,
                      otlp: bool = True, stream: Any = None,
                      sensitive_keys: tuple[str, ...] | None = None) -> None:
    """Route structlog and stdlib logging through one redacting JSON pipeline.

    Defaults come from the standard OpenTelemetry variables (``OTEL_SERVICE_NAME``,
    ``deployment.environment`` in ``OTEL_RESOURCE_ATTRIBUTES``) and ours above.
    """
    service = service or os.environ.get("OTEL_SERVICE_NAME", "unknown_service")
    environment = environment or _environment_from_resource()
    extra = [k for k in os.environ.get(SENSITIVE_KEYS_ENV, "").split(",") if k.strip()]
    redactor = Redactor(sensitive_keys or (*DEFAULT_SENSITIVE_KEYS, *extra))
    formatter = json_formatter(service, environment, redactor)

    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if otlp:
        handlers.append(OTLPLogHandler())
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "theodore", False):
            root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.theodore = True
        root.addHandler(handler)
    level = logging.getLevelName(os.environ.get(LOG_LEVEL_ENV, "INFO").upper())
    root.setLevel(level)
    component_levels = _levels_from_env()
    for name, component_level in {**LIBRARY_LEVELS, **component_levels}.items():
        logging.getLogger(name).setLevel(component_level)

    out = stream or sys.stdout
    structlog.configure(
        processors=[*([ComponentLevels(component_levels)] if component_levels else []),
                    *shared_processors(service, environment, redactor), JSONLineEmitter(otlp)],
        logger_factory=lambda *args: _NamedWriteLogger(out, args[0] if args else "root"),
        wrapper_class=safe_bound_logger(max(level, logging.DEBUG)),
        cache_logger_on_first_use=True,
    )


def _environment_from_resource() -> str:
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() in ("deployment.environment", "deployment.environment.name"):
            return value.strip()
    return "unknown"
