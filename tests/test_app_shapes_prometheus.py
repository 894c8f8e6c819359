"""Apps that already count with prometheus_client: its default registry reaches Prometheus.

tests/apps/prometheus_client_app.py is a Flask app the project does not know, with
prometheus_client metrics and no /metrics port. Under `opentelemetry-instrument` with the
`theodore` distro, every sample its own exposition shows is stored by Prometheus under the same
name, labels and value (counter `_total`, histogram `_bucket`/`_sum`/`_count` with its own `le`
bounds, summary `_sum`/`_count`, gauge, info), with the type showing in the suffixes, and the
histogram's buckets carry the request's trace as exemplar. The native stack runs on the spec's
ports shifted by PORT_OFFSET; where a Docker engine answers, the same tests run on the compose
stack too (``conftest.runtime_stack``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import RUNTIMES, runtime_stack
from .test_native import eventually, get_json, prom_query, url

PORT_OFFSET = 600
REQUESTS = 4


@pytest.fixture(scope="module", params=RUNTIMES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from runtime_stack(request.param, tmp_path_factory, "prometheus-client", PORT_OFFSET)


def _run_app(stack: dict[str, Any], service: str) -> tuple[list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "THEODORE_"))}
    env.update({"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": url(stack, "otlp_http", ""),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    app = Path(__file__).parent / "apps" / "prometheus_client_app.py"
    run = subprocess.run(["opentelemetry-instrument", sys.executable, str(app), str(REQUESTS)], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")], \
        "\n".join(line for line in lines if not line.startswith("{"))


def _exposed(exposition: str) -> list[tuple[str, dict[str, str], float, str]]:
    """The app's own shop_* samples (name, labels, value, family type), _created left out."""
    return [(sample.name, sample.labels, sample.value, family.type)
            for family in text_string_to_metric_families(exposition) if family.name.startswith("shop_")
            for sample in family.samples if not sample.name.endswith("_created")]


def _selector(name: str, labels: dict[str, str], service: str) -> str:
    matchers = [f'job="{service}"', *(f'{key}="{value}"' for key, value in labels.items())]
    return f"{name}{{{','.join(matchers)}}}"


def test_prometheus_client_metrics_reach_prometheus_as_the_app_exposes_them(stack: dict[str, Any]) -> None:
    service = f"prom-client-{secrets.token_hex(3)}"
    logs, exposition = _run_app(stack, service)
    exposed = _exposed(exposition)
    names = {name for name, *_ in exposed}
    # What a user of prometheus_client queries: the exposition's names, suffixes included.
    assert {"shop_orders_total", "shop_refunds_total", "shop_checkout_seconds_bucket", "shop_checkout_seconds_sum",
            "shop_checkout_seconds_count", "shop_queue_depth", "shop_payload_bytes_sum",
            "shop_payload_bytes_count", "shop_build_info"} <= names

    def stored() -> dict[str, list[dict[str, Any]]] | None:
        found = {n: prom_query(stack, f'{n}{{job="{service}"}}') for n in names}
        return found if all(found.values()) else None

    eventually(stored, timeout=60, every=2)
    for name, labels, value, _ in exposed:
        # `le` compares as a number: prometheus_client writes 1.0, Prometheus's OTLP translation 1.
        le = labels.pop("le", None)
        (series,) = [r for r in prom_query(stack, _selector(name, labels, service))
                     if le is None or float(r["metric"]["le"]) == float(le)]
        assert float(series["value"][1]) == value, (name, labels, series)
    # Nothing else under those names: no doubled suffix (shop_refunds_total_total), no unit added,
    # and the types show in the translation: `_total` only on counters, `_bucket` only on the
    # histogram (the summary arrived as a summary, not as a histogram).
    stored_names = {r["metric"]["__name__"] for r in prom_query(stack, f'{{job="{service}",__name__=~"shop_.*"}}')}
    assert stored_names == names, stored_names ^ names
    le = {r["metric"]["le"] for r in prom_query(stack, f'shop_checkout_seconds_bucket{{job="{service}"}}')}
    assert {float(bound) for bound in le} == {0.05, 0.25, 1.0, float("inf")}

    # The histogram observed inside each request's server span: its trace is the exemplar.
    trace_ids = {line["trace_id"] for line in logs if line.get("logger") == "prometheus_client_app"}
    assert len(trace_ids) == REQUESTS
    query = urllib.parse.urlencode({"query": f'shop_checkout_seconds_bucket{{job="{service}"}}',
                                    "start": time.time() - 600, "end": time.time() + 60})
    exemplars = get_json(url(stack, "prometheus", f"/api/v1/query_exemplars?{query}"))["data"]
    linked = {e["labels"].get("trace_id") for series in exemplars for e in series["exemplars"]}
    assert linked and linked <= trace_ids
