"""The ``theodore`` OpenTelemetry distro and configurator, loaded by ``opentelemetry-instrument``.

The distro only ``setdefault``s standard ``OTEL_*`` variables, so anything the user set wins.
The configurator sets up the SDK as the stock one does, then routes logging through our JSON
pipeline (``logs.configure_logging``), which also ships every log record over OTLP, and, when
``THEODORE_AI_PRICES_FILE`` names the rendered price table, adds the AI cost span processor.
The OTLP/HTTP span and log exporters encode with ``otlp_encoding`` (a quarter of the SDK's CPU
per span, half per log record) unless ``THEODORE_OTLP_ENCODER=sdk``.

The framework and client instrumentations get a no-op meter provider: their HTTP and GenAI
metrics repeat what the collector derives from the same spans (``traces_span_metrics_*``, the
AI cost processor's series), and each point costs the request 25 to 40 µs here.
``THEODORE_INSTRUMENTATION_METRICS=true`` gives them the SDK's meter provider back.

The web-framework instrumentations (Flask, FastAPI, Starlette) also get request and response
hooks (``framework_hooks.py``) that read, bind, propagate and echo the request's correlation ID,
as the correlation middlewares do, without the app wrapping itself in one; Celery tasks bind
the ID their message carried, and a Celery pool process flushes its telemetry before it ends.

Pre-fork servers (gunicorn, Celery's prefork pool) fork after this runs: the SDK's providers
give each child its own ``service.instance.id`` and restart their export threads, and the
log queue (``log_export``) starts empty in the child. uvicorn's ``--workers`` start fresh
interpreters, which ``opentelemetry-instrument``'s environment configures again. A process
that SIGTERM would end without its exit handlers (a plain app, a uvicorn worker) flushes its
telemetry first (``lifecycle.flush_before_sigterm``) unless ``THEODORE_FLUSH_ON_SIGTERM=false``.

What the SDK's queues and exporters drop while the collector is unreachable is counted in
``theodore_telemetry_dropped_total`` (``drops.py``).

An app counting with ``prometheus_client`` has its default registry exported with its other
metrics (``prometheus_bridge.py``) unless ``THEODORE_PROMETHEUS_BRIDGE=false``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from .ai_cost import processor_from_env
from .correlation import CorrelationIdSpanProcessor
from .drops import watch_providers
from .framework_hooks import after_instrument, with_correlation_hooks
from .lifecycle import flush_before_sigterm
from .logs import configure_logging
from .otlp_encoding import use_fast_encoding
from .prometheus_bridge import bridge_default_registry

DEFAULTS = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "1.0",
    "OTEL_PROPAGATORS": "tracecontext,baggage",
    "OTEL_METRIC_EXPORT_INTERVAL": "15000",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative",
    # Our handler ships logs; the SDK's deprecated root handler would send each one twice.
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false",
}
"""The collector on loopback over OTLP/HTTP, all three signals, parent-based ratio sampling."""

ENCODER_ENV = "THEODORE_OTLP_ENCODER"
"""``theodore`` (default): our span and log encoding; ``sdk``: the exporters' own."""

INSTRUMENTATION_METRICS_ENV = "THEODORE_INSTRUMENTATION_METRICS"
"""``true``: the instrumentations record their own metrics (http.server.*, gen_ai.client.*)."""

PROMETHEUS_BRIDGE_ENV = "THEODORE_PROMETHEUS_BRIDGE"
"""``false``: prometheus_client's default registry is not exported with the app's metrics."""

ENVIRONMENT_ENV = "THEODORE_ENVIRONMENT"
"""Fills ``deployment.environment`` when OTEL_RESOURCE_ATTRIBUTES does not name one."""


def _default_resource_attributes() -> None:
    attributes = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    keys = {item.partition("=")[0].strip() for item in attributes.split(",") if item}
    extra = []
    if "deployment.environment" not in keys:
        extra.append(f"deployment.environment={os.environ.get(ENVIRONMENT_ENV, 'local')}")
    if "service.version" not in keys and os.environ.get("THEODORE_SERVICE_VERSION"):
        extra.append(f"service.version={os.environ['THEODORE_SERVICE_VERSION']}")
    if extra:
        os.environ["OTEL_RESOURCE_ATTRIBUTES"] = ",".join(filter(None, [attributes, *extra]))


class TheodoreDistro(BaseDistro):
    """Defaults for Theodore apps; every one can be overridden with its OTEL_* variable."""

    def _configure(self, **kwargs: object) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)
        _default_resource_attributes()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Each instrumentation as ``opentelemetry-instrument`` loads it, metrics off unless
        ``THEODORE_INSTRUMENTATION_METRICS=true`` (spans carry the same facts to spanmetrics),
        a web framework's with the correlation-ID hooks (any hook passed in still runs)."""
        if os.environ.get(INSTRUMENTATION_METRICS_ENV, "").strip().lower() != "true":
            kwargs.setdefault("meter_provider", NoOpMeterProvider())
        kwargs = with_correlation_hooks(entry_point.name, kwargs)
        super().load_instrumentor(entry_point, **kwargs)
        after_instrument(entry_point.name)


class TheodoreConfigurator(_OTelSDKConfigurator):
    """The SDK as configured by the environment, plus our logging pipeline and AI cost."""

    def _configure(self, **kwargs: object) -> None:
        super()._configure(**kwargs)
        watch_providers(trace.get_tracer_provider(), _logs.get_logger_provider(),
                        metrics.get_meter_provider())
        if os.environ.get(ENCODER_ENV, "theodore").strip().lower() != "sdk":
            use_fast_encoding()
        configure_logging()
        flush_before_sigterm()
        if os.environ.get(PROMETHEUS_BRIDGE_ENV, "").strip().lower() != "false":
            bridge_default_registry(metrics.get_meter_provider())
        provider = trace.get_tracer_provider()
        if hasattr(provider, "add_span_processor"):
            provider.add_span_processor(CorrelationIdSpanProcessor())
            cost = processor_from_env()
            if cost is not None:
                provider.add_span_processor(cost)
