"""Seed 003's logger API on top of structlog: categories, correlation IDs, audit, security,
performance and business events. Everything goes through the pipeline of ``logs.py``.
"""

from __future__ import annotations

import json
import logging
import os
from enum import Enum
from typing import Any

import structlog

from .logs import TRACE


class LogCategory(Enum):
    SYSTEM = "system"
    SECURITY = "security"
    AUDIT = "audit"
    PERFORMANCE = "performance"
    BUSINESS = "business"
    AI_OPERATIONS = "ai_operations"
    USER_ACTIVITY = "user_activity"
    API_ACCESS = "api_access"
    DATA_PROCESSING = "data_processing"
    INTEGRATION = "integration"


THRESHOLDS_ENV = "THEODORE_PERFORMANCE_THRESHOLDS_MS"
"""JSON object of per-operation thresholds in ms, e.g. ``{"ai_operation": 30000}``."""

DEFAULT_THRESHOLD_MS = 1000.0


def performance_thresholds() -> dict[str, float]:
    raw = os.environ.get(THRESHOLDS_ENV)
    return {k: float(v) for k, v in json.loads(raw).items()} if raw else {}


class TheodoreLogger:
    """A component's logger. ``with_*`` return new loggers; the original is unchanged."""

    def __init__(self, component: str, category: LogCategory = LogCategory.SYSTEM,
                 context: dict[str, Any] | None = None) -> None:
        self.component, self.category = component, category
        self._context = {"component": component, "category": category.value, **(context or {})}
        self._logger = structlog.get_logger(component)

    def with_correlation_id(self, correlation_id: str) -> TheodoreLogger:
        return self.with_context(correlation_id=correlation_id)

    def with_context(self, **context: Any) -> TheodoreLogger:
        return TheodoreLogger(self.component, self.category, {**self._context, **context})

    def _log(self, level: int, message: str, **fields: Any) -> None:
        self._logger.log(level, message, **{**self._context, **fields})

    def trace(self, message: str, **fields: Any) -> None:
        """TRACE (5) is below structlog's levels: it goes through stdlib, same pipeline."""
        logger = logging.getLogger(self.component)
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, message, extra={**self._context, **fields})

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, **fields)

    warning = warn

    def error(self, message: str, error: BaseException | None = None, **fields: Any) -> None:
        self._log(logging.ERROR, message, **_error_fields(error), **fields)

    def critical(self, message: str, error: BaseException | None = None, **fields: Any) -> None:
        """A critical event; vmalert's log rules turn these into alerts (see the alerting rules)."""
        self._log(logging.CRITICAL, message, **_error_fields(error), **fields)

    def audit(self, action: str, user_id: str | None = None, resource: str | None = None,
              **fields: Any) -> None:
        self._log(logging.INFO, f"AUDIT: {action}", category=LogCategory.AUDIT.value,
                  action=action, user_id=user_id, resource=resource, **fields)

    def security(self, event: str, severity: str = "medium", **fields: Any) -> None:
        self._log(logging.WARNING, f"SECURITY: {event}", category=LogCategory.SECURITY.value,
                  security_event=event, severity=severity,
                  requires_investigation=severity in ("high", "critical"), **fields)

    def performance(self, operation: str, duration_ms: float, **fields: Any) -> None:
        """INFO within the operation's threshold, WARN beyond it."""
        threshold = performance_thresholds().get(operation, DEFAULT_THRESHOLD_MS)
        exceeded = duration_ms > threshold
        self._log(logging.WARNING if exceeded else logging.INFO, f"PERFORMANCE: {operation}",
                  category=LogCategory.PERFORMANCE.value, operation=operation,
                  duration_ms=duration_ms, threshold_ms=threshold,
                  performance_threshold_exceeded=exceeded, **fields)

    def business_metric(self, metric_name: str, value: float, unit: str = "count",
                        **fields: Any) -> None:
        self._log(logging.INFO, f"METRIC: {metric_name}={value}{unit}",
                  category=LogCategory.BUSINESS.value, metric_name=metric_name,
                  metric_value=value, metric_unit=unit, **fields)


def _error_fields(error: BaseException | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"error_type": type(error).__name__, "error_message": str(error),
            "exc_info": (type(error), error, error.__traceback__)}


def get_logger(component: str, category: LogCategory = LogCategory.SYSTEM) -> TheodoreLogger:
    """The logger of ``component`` (seed 003's ``LoggerFactory.get_logger``)."""
    return TheodoreLogger(component, category)
