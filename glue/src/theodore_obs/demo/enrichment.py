"""After a company is researched: seed 000's event pipeline, in miniature and simulated.

The demo finds events near the company, verifies them, writes an outreach message and an
image for each verified one, compares the company with the last few it saw, and keeps a cache
and a work queue. Nothing leaves the process; each step records its catalogue metrics through
``get_metrics()`` and logs through seed 003's component loggers (categories and components
reach the log store as fields of their own), so every KPI panel has live data. Outcomes are drawn from
a random generator seeded by the company name and a per-process counter: varied but
reproducible within one run.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from opentelemetry.trace import StatusCode
from theodore_telemetry import LogCategory, get_logger
from theodore_telemetry.metrics import TheodoreMetrics, get_metrics
from theodore_telemetry.tracing import trace_ai_operation

from theodore_obs.demo import IMAGE_FAILURE_NOTE

LOCATIONS = ("berlin", "london", "new-york", "singapore")
SOURCES = ("meetup", "eventbrite", "news")
LANGUAGES = ("en", "de")
IMAGE_PROVIDER = "local-diffusion"
IMAGE_MODEL = "sd-turbo"
VERIFY_FAILURE_RATE = 0.2

events_log = get_logger("event-discovery", LogCategory.BUSINESS)
verify_log = get_logger("event-verification", LogCategory.DATA_PROCESSING)
content_log = get_logger("content-generation", LogCategory.AI_OPERATIONS)
cache_log = get_logger("research-cache", LogCategory.PERFORMANCE)


@dataclass
class Enricher:
    """The per-process state: a bounded cache of researched companies and a work queue."""

    metrics: TheodoreMetrics | None = None
    cache: dict[str, int] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    runs: int = 0
    cache_limit: int = 50

    def enrich(self, company: str, page: str, note: str = "") -> dict[str, int]:
        """Run the pipeline for one researched company; return what it produced."""
        images_fail = IMAGE_FAILURE_NOTE in note
        metrics, self.runs = self.metrics or get_metrics(), self.runs + 1
        rng = random.Random(f"{company}-{self.runs}")  # noqa: S311 (simulated outcomes)
        self._remember(metrics, company, page)
        self._compare(metrics, company, rng)
        location = rng.choice(LOCATIONS)
        events = self._discover(metrics, company, location, rng)
        metrics.record("queue_size", events, queue_name="verification")
        verified = sum(self._verify(metrics, location, rng) for _ in range(events))
        metrics.record("queue_size", 0, queue_name="verification")
        metrics.record("queue_size", verified, queue_name="content")
        images = sum(self._create_content(metrics, company, location, rng, images_fail)
                     for _ in range(verified))
        metrics.record("queue_size", 0, queue_name="content")
        return {"events": events, "verified": verified, "images": images}

    def _remember(self, metrics: TheodoreMetrics, company: str, page: str) -> None:
        hit = company in self.cache
        self.cache[company] = len(page.encode())
        while len(self.cache) > self.cache_limit:
            self.cache.pop(next(iter(self.cache)))
        metrics.record("cache_items", len(self.cache), type="company_page")
        metrics.record("cache_size_bytes", sum(self.cache.values()))
        cache_log.debug("cache updated", company=company, hit=hit, items=len(self.cache))

    def _compare(self, metrics: TheodoreMetrics, company: str, rng: random.Random) -> None:
        for _ in self.recent:
            metrics.record("theodore_similarity_calculations_total", 1,
                           method=rng.choice(("embedding", "keyword")))
        self.recent.append(company)

    def _discover(self, metrics: TheodoreMetrics, company: str, location: str,
                  rng: random.Random) -> int:
        events = rng.randint(1, 3)
        for _ in range(events):
            metrics.record("event_discovery_total", 1, location=location, source=rng.choice(SOURCES))
        metrics.record("event_discovery_duration_seconds", rng.uniform(0.2, 3), location=location)
        metrics.record("opportunity_score", rng.uniform(0.2, 1.0), location=location)
        events_log.info("events discovered", company=company, location=location, events=events)
        return events

    def _verify(self, metrics: TheodoreMetrics, location: str, rng: random.Random) -> bool:
        confidence = rng.uniform(0.3, 1.0)
        verified = rng.random() >= VERIFY_FAILURE_RATE and confidence > 0.4
        metrics.record("event_verification_total", 1, location=location,
                       result="verified" if verified else "rejected")
        metrics.record("verification_duration_seconds", rng.uniform(0.1, 2.5))
        metrics.record("verification_confidence", confidence)
        if not verified:
            verify_log.warn("event rejected", location=location, confidence=round(confidence, 2))
        return verified

    def _create_content(self, metrics: TheodoreMetrics, company: str, location: str,
                        rng: random.Random, image_fails: bool) -> int:
        language = rng.choice(LANGUAGES)
        metrics.record("message_generation_total", 1, language=language,
                       format=rng.choice(("email", "linkedin")))
        metrics.record("message_generation_duration_seconds", rng.uniform(0.3, 4), language=language)
        metrics.record("message_quality_score", rng.uniform(0.5, 1.0), language=language)
        return self._image(metrics, company, location, rng, image_fails)

    def _image(self, metrics: TheodoreMetrics, company: str, location: str, rng: random.Random,
               failed: bool) -> int:
        duration = rng.uniform(1, 12)
        # The GenAI span carries the usage; the distro's cost processor turns it into metrics.
        with trace_ai_operation(IMAGE_PROVIDER, IMAGE_MODEL, "image_generation") as span:
            span.set_attribute("gen_ai.usage.input_tokens", len(company) + len(location))
            span.set_attribute("gen_ai.usage.output_tokens", 0)
            if failed:
                span.set_status(StatusCode.ERROR, "image backend refused the prompt")
        if failed:
            content_log.error("image generation failed", company=company, location=location)
            return 0
        metrics.record("image_generation_total", 1, provider=IMAGE_PROVIDER)
        metrics.record("image_generation_duration_seconds", duration, provider=IMAGE_PROVIDER)
        content_log.info("image generated", company=company, location=location)
        return 1
