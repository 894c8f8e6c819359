"""AI cost from GenAI spans: price lookup, and the metrics a span turns into."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from theodore_obs.render import COMPOSE, render_files
from theodore_obs.spec import load_spec
from theodore_telemetry.ai_cost import GenAICostProcessor, PriceTable
from theodore_telemetry.metrics import TheodoreMetrics

PRICES = PriceTable({"openai": {"gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
                                "gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}}})


def test_dated_model_ids_match_their_longest_family() -> None:
    assert PRICES.family("openai", "gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert PRICES.family("OpenAI", "gpt-4o-2024-08-06") == "gpt-4o"
    assert PRICES.family("openai", "gpt-4") is None
    assert PRICES.cost("openai", "gpt-4o", 1000, 500) == pytest.approx(0.0075)
    assert PRICES.cost("anthropic", "claude", 1, 1) is None


def test_the_rendered_price_table_is_the_specs() -> None:
    table = json.loads(render_files(load_spec("local"), COMPOSE)["apps/ai-prices.json"])
    assert table == load_spec("local").data["ai"]["prices"]
    assert PriceTable(table).lookup("anthropic", "claude-sonnet-4-20250514") is not None


def _run_span(attributes: dict, error: bool = False) -> tuple[dict, str]:
    reader = InMemoryMetricReader()
    processor = GenAICostProcessor(PRICES, TheodoreMetrics(MeterProvider(metric_readers=[reader])))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    with tracer_provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes=attributes) as span:
        if error:
            span.set_status(Status(StatusCode.ERROR))
    data = reader.get_metrics_data()
    found = {m.name: list(m.data.data_points) for rm in (data.resource_metrics if data else [])
             for sm in rm.scope_metrics for m in sm.metrics}
    return found, format(span.get_span_context().trace_id, "032x")


GENAI = {"gen_ai.system": "openai", "gen_ai.operation.name": "chat",
         "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
         "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500}


def test_a_genai_span_becomes_tokens_cost_and_duration() -> None:
    found, trace_id = _run_span(GENAI)
    tokens = {p.attributes["token_type"]: p.value for p in found["theodore_ai_tokens"]}
    assert tokens == {"input": 1000, "output": 500}
    (cost,) = found["theodore_ai_cost"]
    assert cost.value == pytest.approx(0.0075)
    assert cost.attributes == {"provider": "openai", "model": "gpt-4o", "operation": "chat",
                               "success": "True"}
    (duration,) = found["theodore_ai_operation_duration_seconds"]
    assert duration.count == 1
    assert format(duration.exemplars[0].trace_id, "032x") == trace_id
    assert "theodore_errors" not in found


def test_failed_calls_count_as_errors_and_other_spans_are_ignored() -> None:
    found, _ = _run_span(GENAI, error=True)
    (error,) = found["theodore_errors"]
    assert error.attributes["error_type"] == "ai_operation_failure"
    assert _run_span({"http.request.method": "GET"})[0] == {}


def test_a_failed_call_without_usage_still_counts_as_an_ai_failure() -> None:
    """A provider's 5xx carries no token usage; AIOperationFailureSpike must still see it."""
    no_usage = {k: v for k, v in GENAI.items() if not k.startswith("gen_ai.usage")}
    found, _ = _run_span(no_usage, error=True)
    (error,) = found["theodore_errors"]
    assert error.attributes["error_type"] == "ai_operation_failure"
    assert _run_span(no_usage)[0] == {}
