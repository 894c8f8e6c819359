"""Grafana dashboards generated from the metric catalogue and the spec.

Python builds each dashboard as a dict (``boards``), the render writes it as JSON under
``grafana/dashboards/<folder>/<uid>.json``. Python rather than Jinja: a dashboard is deeply
nested JSON with panels computed from catalogue entries (loops, quantiles per type, per-service
SLO rows), which a text template would have to get right comma by comma; and rather than a
dashboards-as-code library (grafana-foundation-sdk), whose releases track Grafana's schema
version by version and would add a dependency for what is ~300 lines of plain dicts.
"""

from __future__ import annotations

import json
from typing import Any

from theodore_catalogue import metric_export_interval_ms

from ..timing import duration_seconds
from .boards import DASHBOARDS

__all__ = ["DASHBOARDS", "dashboard_files", "dashboards"]

OUTPUT_DIR = "grafana/dashboards"


def dashboards(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Relative output path → dashboard JSON, for one environment's spec data."""
    return {f"{OUTPUT_DIR}/{folder}/{board.uid}.json": board.to_json()
            for folder, builders in DASHBOARDS.items()
            for board in (build(spec) for build in builders)}


def dashboard_files(spec: dict[str, Any]) -> dict[str, str]:
    return {path: json.dumps(board, indent=2, allow_nan=False) + "\n"
            for path, board in dashboards(spec).items()}


def prometheus_min_interval(spec: dict[str, Any]) -> str:
    """Grafana's ``timeInterval`` for Prometheus: the slowest sample cadence of any series.

    Apps push over OTLP every ``OTEL_METRIC_EXPORT_INTERVAL`` (and spanmetrics flush as often),
    which is slower than a laptop's scrape interval; ``$__rate_interval`` (4x this) must cover
    several pushes, or rates come back empty and panels say "No data".
    """
    push = metric_export_interval_ms() // 1000
    return f"{max(push, int(duration_seconds(spec['intervals']['scrape'])))}s"
