"""The demo's event pipeline feeds every seed-000 metric the research dashboards show."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from theodore_obs.demo import IMAGE_FAILURE_NOTE
from theodore_obs.demo.enrichment import Enricher
from theodore_telemetry.metrics import TheodoreMetrics, catalogue


def _recorded(enricher: Enricher, reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    return {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_a_few_companies_record_every_seed_000_metric() -> None:
    reader = InMemoryMetricReader()
    enricher = Enricher(metrics=TheodoreMetrics(MeterProvider(metric_readers=[reader])))
    results = [enricher.enrich(company, "<html>page</html>")
               for company in ["acme", "globex", "hooli", "initech"] * 5]
    recorded = _recorded(enricher, reader)
    seed_000 = {spec.otel_name for name, spec in catalogue().items() if not name.startswith("theodore_")}
    assert seed_000 <= recorded, sorted(seed_000 - recorded)
    assert "theodore_similarity_calculations" in recorded
    assert sum(r["events"] for r in results) >= sum(r["verified"] for r in results) > 0


def test_the_cache_stays_bounded() -> None:
    enricher = Enricher(metrics=TheodoreMetrics(MeterProvider()), cache_limit=3)
    for company in ["a", "b", "c", "d", "e"]:
        enricher.enrich(company, "page")
    assert list(enricher.cache) == ["c", "d", "e"]


def test_images_fail_only_for_a_request_that_asks() -> None:
    enricher = Enricher(metrics=TheodoreMetrics(MeterProvider()))
    quiet = [enricher.enrich(company, "page") for company in ["acme", "globex", "hooli"] * 20]
    assert sum(r["images"] for r in quiet) == sum(r["verified"] for r in quiet) > 0
    failing = [enricher.enrich(company, "page", f"{IMAGE_FAILURE_NOTE} please")
               for company in ["acme", "globex", "hooli"] * 5]
    assert sum(r["verified"] for r in failing) > 0 and sum(r["images"] for r in failing) == 0
