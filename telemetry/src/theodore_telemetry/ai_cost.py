"""AI tokens and USD cost from GenAI spans, with no app code.

The OpenAI/Anthropic instrumentations put the model and token counts on each call's span
(OpenTelemetry GenAI semantic conventions). This span processor, installed by the
``theodore`` configurator, turns every such span into ``theodore_ai_tokens_total``,
``theodore_ai_cost_total`` and ``theodore_ai_operation_duration_seconds`` using the price
table rendered from ``stack.yaml`` (``ai.prices``).

It runs in the app rather than the collector: the collector has no component that multiplies
span attributes by a configured price table, and here the metrics are recorded inside the
span's context, so their exemplars point at the very call that cost the money.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from .metrics import AI_COST, AI_DURATION, AI_TOKENS, ERRORS, TheodoreMetrics, get_metrics

_log = logging.getLogger(__name__)

PRICES_ENV = "THEODORE_AI_PRICES_FILE"
"""Path of the JSON price table (``rendered/<env>/apps/ai-prices.json``)."""


@dataclass(frozen=True)
class Price:
    input_per_1k: float
    output_per_1k: float


class PriceTable:
    """USD per 1,000 tokens by provider and model; a dated model id matches its family."""

    def __init__(self, prices: dict[str, dict[str, dict[str, float]]]) -> None:
        self._prices = {provider.lower(): {model.lower(): Price(**p) for model, p in models.items()}
                        for provider, models in prices.items()}
        self._families: dict[tuple[str, str], str | None] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        return cls(json.loads(Path(path).read_text()))

    def family(self, provider: str, model: str) -> str | None:
        """The table's name for ``model``: itself, or the longest name it extends with ``-…``
        (remembered per provider and model: a service calls few)."""
        key = (provider, model)
        if key not in self._families:
            if len(self._families) >= CACHED_MODELS:
                self._families.clear()
            self._families[key] = self._family(provider.lower(), model.lower())
        return self._families[key]

    def _family(self, provider: str, model: str) -> str | None:
        matches = [name for name in self._prices.get(provider, {})
                   if model == name or model.startswith(name + "-")]
        return max(matches, key=len) if matches else None

    def lookup(self, provider: str, model: str) -> Price | None:
        family = self.family(provider, model)
        return self._prices[provider.lower()][family] if family else None

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.lookup(provider, model)
        if price is None:
            return None
        return (input_tokens * price.input_per_1k + output_tokens * price.output_per_1k) / 1000


CACHED_MODELS = 256
"""Distinct (provider, model) pairs whose price-table family is remembered."""

PROVIDER_ATTRIBUTES = ("gen_ai.provider.name", "gen_ai.system")
"""Where a GenAI span names its provider: a span with neither is left alone at once."""


def _attr(attributes: Any, *names: str) -> Any:
    return next((attributes[n] for n in names if n in attributes), None)


class GenAICostProcessor(SpanProcessor):
    """Records token and cost metrics when a GenAI span with token usage ends."""

    def __init__(self, prices: PriceTable, metrics: TheodoreMetrics | None = None) -> None:
        self.prices = prices
        self._metrics = metrics

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        provider = _attr(attributes, *PROVIDER_ATTRIBUTES)
        if provider is None:  # not a GenAI span: most spans end here
            return
        input_tokens = _attr(attributes, "gen_ai.usage.input_tokens")
        output_tokens = _attr(attributes, "gen_ai.usage.output_tokens")
        model = _attr(attributes, "gen_ai.response.model", "gen_ai.request.model")
        success = span.status.status_code is not StatusCode.ERROR
        # A failed call often has no usage (the provider answered 5xx): still an AI failure.
        if model is None or provider is None or (success and input_tokens is None
                                                 and output_tokens is None):
            return
        input_tokens, output_tokens = int(input_tokens or 0), int(output_tokens or 0)
        operation = _attr(attributes, "gen_ai.operation.name") or "unknown"
        family = self.prices.family(provider, model) or model
        labels = {"provider": provider, "model": family, "operation": operation, "success": success}
        metrics = self._metrics or get_metrics()
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span.context)))
        try:
            metrics.record(AI_TOKENS, input_tokens, token_type="input", **labels)
            metrics.record(AI_TOKENS, output_tokens, token_type="output", **labels)
            if span.end_time and span.start_time:
                metrics.record(AI_DURATION, (span.end_time - span.start_time) / 1e9, **labels)
            cost = self.prices.cost(provider, model, input_tokens, output_tokens)
            if cost is not None:
                metrics.record(AI_COST, cost, **labels)
            if not success:
                metrics.record(ERRORS, 1, error_type="ai_operation_failure", provider=provider,
                               model=family, operation=operation)
        finally:
            otel_context.detach(token)


def processor_from_env() -> GenAICostProcessor | None:
    """The processor for the table ``THEODORE_AI_PRICES_FILE`` names; ``None`` when it names
    none, or (with a warning naming the file) one that cannot be read as a price table: the
    app and its other telemetry must not fail over the AI cost."""
    path = os.environ.get(PRICES_ENV, "").strip()
    if not path:
        return None
    try:
        return GenAICostProcessor(PriceTable.from_file(path))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        _log.warning("%s=%s is not a readable price table (%s); AI cost is off",
                     PRICES_ENV, path, error)
        return None
