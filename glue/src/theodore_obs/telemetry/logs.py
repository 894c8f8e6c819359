"""JSON logs for structlog and stdlib logging alike: trace-correlated, redacted, sent over OTLP.

One processor chain serves both: structlog loggers run it before handing the event to stdlib,
stdlib records (a third-party library's ``logging.getLogger(__name__)``) run it as the
``foreign_pre_chain`` of the formatter. Every handler gets the same redacted JSON line: stdout
for humans and ``docker logs``, and the OTLP handler whose body Loki stores.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger_provider

from .correlation import current_correlation_id
from .redact import DEFAULT_SENSITIVE_KEYS, Redactor

TRACE = 5
"""Below DEBUG: seed 003's TRACE level."""
logging.addLevelName(TRACE, "TRACE")

OTLP_ATTRIBUTES = ("correlation_id", "category", "component")
"""Event fields also sent as OTLP log attributes (Loki structured metadata) for filtering."""

SENSITIVE_KEYS_ENV = "THEODORE_LOG_SENSITIVE_KEYS"
"""Comma-separated extra key words to redact, on top of seed 003's list."""

LOG_LEVEL_ENV = "THEODORE_LOG_LEVEL"
"""Root level (TRACE, DEBUG, INFO, …); default INFO."""

COMPONENT_LEVELS_ENV = "THEODORE_LOG_LEVELS"
"""Per-logger levels, e.g. ``scraper=DEBUG,httpx=WARNING``."""

_SEVERITY = {TRACE: SeverityNumber.TRACE, logging.DEBUG: SeverityNumber.DEBUG,
             logging.INFO: SeverityNumber.INFO, logging.WARNING: SeverityNumber.WARN,
             logging.ERROR: SeverityNumber.ERROR, logging.CRITICAL: SeverityNumber.FATAL}


def add_trace_context(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add ``trace_id``/``span_id`` of the active span (W3C hex), if one is recording."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
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


def _keep_otlp_attributes(logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Stash the fields the OTLP handler sends as attributes on the stdlib record."""
    record = event_dict.get("_record")
    if record is not None:
        record.theodore_attributes = {k: str(event_dict[k]) for k in OTLP_ATTRIBUTES if k in event_dict}
    return event_dict


def shared_processors(service: str, environment: str, redactor: Redactor) -> list[Any]:
    """The chain every event goes through, whichever API logged it. Redaction comes last."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        structlog.processors.EventRenamer("message"),
        add_trace_context,
        add_correlation_id,
        AddService(service, environment),
        redactor,
    ]


class JSONFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders a record once; every handler then reuses the same line."""

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "theodore_line", None)
        if line is None:
            line = super().format(record)
            record.theodore_line = line
        return line


def json_formatter(service: str, environment: str, redactor: Redactor) -> JSONFormatter:
    return JSONFormatter(
        foreign_pre_chain=shared_processors(service, environment, redactor),
        processors=[_keep_otlp_attributes, structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer()],
    )


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
            line = self.format(record)
            logger = get_logger_provider().get_logger(record.name)
            logger.emit(
                timestamp=int(record.created * 1e9),
                context=otel_context.get_current(),
                severity_number=_SEVERITY.get(record.levelno, SeverityNumber.INFO),
                severity_text="WARN" if record.levelname == "WARNING" else record.levelname,
                body=line,
                attributes=getattr(record, "theodore_attributes", None) or None,
            )
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
    root.setLevel(logging.getLevelName(os.environ.get(LOG_LEVEL_ENV, "INFO").upper()))
    for name, level in _levels_from_env().items():
        logging.getLogger(name).setLevel(level)

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level,
                    *shared_processors(service, environment, redactor),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _environment_from_resource() -> str:
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() in ("deployment.environment", "deployment.environment.name"):
            return value.strip()
    return "unknown"
