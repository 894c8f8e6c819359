"""The collector's reliability settings, from the spec's ``collector`` section to template values.

Every exporter of the gateway (``config.yaml``) and the Kubernetes agent (``agent.yaml``) gets
the same three things:

- a ``sending_queue`` on the ``file_storage`` extension: what a receiver acknowledged is on
  disk before the client hears so, and survives a restart or a SIGKILL of the collector
  (at least once: a batch in flight when it dies is sent again); batching happens there too,
  after the queue, so no acknowledged data waits in memory for a batch to fill;
- ``retry_on_failure`` with the spec's backoff and the longest a batch is retried
  (``collector.retry``);
- the memory limiter sized from ``collector.memory_limit_mib`` and ``memory_spike_mib``.

Spec durations are Prometheus-style (``1d``); the collector reads Go durations, so each one is
written in seconds. The queue's directory is ``file_storage`` under the collector's data dir:
``/var/lib/otelcol/file_storage`` in containers, ``<state>/data/otel-collector/file_storage``
natively.
"""

from __future__ import annotations

from typing import Any, Protocol

from .integrations import integration_context
from .log_sampling import log_sampling_context
from .spec import Spec, SpecError
from .tenants import TENANT_ATTRIBUTE, tenants
from .timing import duration_seconds

__all__ = ["STORAGE_SUBDIR", "collector_context", "storage_directory"]

STORAGE_SUBDIR = "file_storage"
"""The queue's folder inside the collector's data directory."""


class _Runtime(Protocol):
    secrets_dir: str

    def data_dir(self, component: str) -> str: ...


def storage_directory(runtime: _Runtime) -> str:
    """Where the collector's ``file_storage`` extension keeps the sending queues."""
    return f"{runtime.data_dir('otel-collector')}/{STORAGE_SUBDIR}"


def go_duration(text: str) -> str:
    """A spec duration (``1m30s``, ``1d``) as the collector reads it: whole seconds, or ms."""
    seconds = duration_seconds(text)
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def _fail(spec: Spec, field: str, message: str) -> SpecError:
    return SpecError(spec.source, f"collector.{field}", f"{message} (environment {spec.environment})")


def _check(spec: Spec) -> None:
    """What the schema cannot say: relations between the collector's fields."""
    c = spec.data["collector"]
    if c["memory_spike_mib"] >= c["memory_limit_mib"]:
        raise _fail(spec, "memory_spike_mib", f"{c['memory_spike_mib']} must be below "
                    f"collector.memory_limit_mib ({c['memory_limit_mib']})")
    retry = c["retry"]
    if duration_seconds(retry["initial_interval"]) > duration_seconds(retry["max_interval"]):
        raise _fail(spec, "retry.initial_interval", f"{retry['initial_interval']} must not exceed "
                    f"collector.retry.max_interval ({retry['max_interval']})")
    if duration_seconds(retry["max_elapsed_time"]) < duration_seconds(retry["max_interval"]):
        raise _fail(spec, "retry.max_elapsed_time", f"{retry['max_elapsed_time']} must be at least "
                    f"collector.retry.max_interval ({retry['max_interval']})")
    if duration_seconds(c["batch_timeout"]) <= 0:
        raise _fail(spec, "batch_timeout", "must be longer than 0s")


GO_MEMORY_SHARE = 0.8
"""The share of the memory limiter's limit given to the Go runtime as its soft limit
(``GOMEMLIMIT``), as the memory limiter's documentation advises: the heap is collected harder
before the limiter's once-a-second check would see it, so the process stays under the limit."""


def go_memory_limit(data: dict[str, Any]) -> str:
    """The collector's ``GOMEMLIMIT``, from ``collector.memory_limit_mib``."""
    return f"{int(data['collector']['memory_limit_mib'] * GO_MEMORY_SHARE)}MiB"


def audit_routes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit trail's routes out of each tenant's log pipeline: an OTTL condition (log context)
    and whether the records also stay on their way to the apps' store (``copy_to_app_logs``)."""
    audit = data["audit"]
    copied = [c for c in audit["categories"] if c in audit["copy_to_app_logs"]]
    only = [c for c in audit["categories"] if c not in audit["copy_to_app_logs"]]
    return [{"condition": " or ".join(f'attributes["category"] == "{c}"' for c in group),
             "also_to_app_logs": also} for group, also in ((only, False), (copied, True)) if group]


def collector_context(spec: Spec, runtime: _Runtime) -> dict[str, Any]:
    """The ``collector_*`` template values of one environment and runtime (checked first), its
    tenants' receivers and pipelines (``tenants.py``), the audit trail's route, the log sampling
    policy (``log_sampling.py``) and the ``integration_*`` values (``integrations.py``)."""
    _check(spec)
    c = spec.data["collector"]
    retry = c["retry"]
    return {
        "collector_storage_dir": storage_directory(runtime),
        "collector_storage_fsync": bool(c["queue_fsync"]),
        "collector_retry": {
            "initial_interval": go_duration(retry["initial_interval"]),
            "max_interval": go_duration(retry["max_interval"]),
            "max_elapsed_time": go_duration(retry["max_elapsed_time"]),
        },
        "collector_queue_size": c["queue_size"],
        "collector_batch_timeout": go_duration(c["batch_timeout"]),
        "collector_batch_size": c["batch_size"],
        "collector_go_memory_limit": go_memory_limit(spec.data),
        "collector_spanmetrics_flush": go_duration(spec.data["intervals"]["scrape"]),
        "tenants": [{**vars(t), "suffix": t.suffix} for t in tenants(spec.data)],
        "tenant_attribute": TENANT_ATTRIBUTE,
        "audit_routes": audit_routes(spec.data),
        "log_sampling": log_sampling_context(spec.data),
        **integration_context(spec, runtime),
    }
