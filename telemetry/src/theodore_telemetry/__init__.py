"""App-side telemetry: JSON logs with trace correlation and redaction, correlation IDs, and the
OpenTelemetry distro/configurator that ``opentelemetry-instrument`` loads (entry points
``theodore``). Install with ``pip install theodore-telemetry``: none of the stack tooling
comes with it.
"""

from .correlation import (
    CorrelationIdASGIMiddleware,
    CorrelationIdWSGIMiddleware,
    correlation_scope,
    current_correlation_id,
)
from .logger import LogCategory, TheodoreLogger, get_logger
from .logs import TRACE, configure_logging
from .redact import Redactor

__all__ = [
    "TRACE",
    "CorrelationIdASGIMiddleware",
    "CorrelationIdWSGIMiddleware",
    "LogCategory",
    "Redactor",
    "TheodoreLogger",
    "configure_logging",
    "correlation_scope",
    "current_correlation_id",
    "get_logger",
]
