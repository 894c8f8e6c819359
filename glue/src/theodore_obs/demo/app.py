"""The demo Theodore service: company research over HTTP.

``GET /research?company=NAME`` scrapes the company's page, asks the LLM for a summary, stores
the result and returns it. ``GET /companies`` lists the companies researched most recently
(one small query: the cheapest request the service answers). It contains no observability
code beyond domain metrics through the catalogue helpers (plus the correlation-ID and health
middlewares); traces, logs, HTTP and AI metrics come from ``opentelemetry-instrument`` with
the ``theodore`` distro.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path

import requests
import structlog
from flask import Flask, g, jsonify, request
from openai import OpenAI, OpenAIError
from theodore_telemetry import CorrelationIdWSGIMiddleware
from theodore_telemetry.health import HealthChecks, HealthWSGIMiddleware
from theodore_telemetry.metrics import get_metrics
from theodore_telemetry.tracing import trace_research_operation, trace_storage_operation

from theodore_obs.demo.enrichment import Enricher

log = structlog.get_logger("theodore_demo")

SLOWDOWN_ENV = "THEODORE_DEMO_SLOWDOWN"
"""``ROUTE=SECONDS[,ROUTE=SECONDS]`` (e.g. ``/research=0.3``): a planted slowdown, standing in for
a release that made those operations slower (how the regression alerts are shown to fire)."""


def planted_slowdown(value: str | None = None) -> dict[str, float]:
    """Seconds added to each route, from :data:`SLOWDOWN_ENV`."""
    routes = {}
    for item in filter(None, (value if value is not None else os.environ.get(SLOWDOWN_ENV, "")).split(",")):
        route, _, seconds = item.partition("=")
        routes[route.strip()] = float(seconds)
    return routes


def create_app(upstream: str, store: Path, model: str) -> Flask:
    app = Flask("theodore_demo")
    llm = OpenAI(base_url=f"{upstream}/v1", api_key=os.environ.get("OPENAI_API_KEY", "local-fake"),
                 max_retries=0, timeout=10)
    db = sqlite3.connect(store, check_same_thread=False)
    db.execute("CREATE TABLE IF NOT EXISTS research (company TEXT, summary TEXT, at REAL)")
    db.execute("CREATE INDEX IF NOT EXISTS research_at ON research (at)")
    enricher = Enricher()
    slowdown = planted_slowdown()

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        if request.url_rule and request.url_rule.rule in slowdown:
            time.sleep(slowdown[request.url_rule.rule])

    @app.after_request
    def count_request(response):
        get_metrics().record_request(request.url_rule.rule if request.url_rule else "unmatched",
                                     request.method, response.status_code,
                                     time.perf_counter() - g.started)
        return response

    @app.get("/research")
    def research():
        company = request.args.get("company", "acme")
        log.info("research requested", company=company, params=dict(request.args))
        started, metrics = time.perf_counter(), get_metrics()
        with trace_research_operation(company), metrics.track_operation("company_research"):
            page = requests.get(f"{upstream}/companies/{company}", timeout=5)
            if page.status_code != 200:
                metrics.record_company_research(company, "full", False, time.perf_counter() - started)
                log.error("scrape failed", company=company, status=page.status_code)
                return jsonify(error="scrape failed", company=company), 502
            try:
                answer = llm.chat.completions.create(model=model, messages=[
                    {"role": "system", "content": "Summarise the company in one sentence."},
                    {"role": "user", "content": page.text + " " + request.args.get("note", "")}])
            except OpenAIError as exc:
                metrics.record_company_research(company, "full", False, time.perf_counter() - started, 1)
                log.error("summary failed", company=company, error=str(exc))
                return jsonify(error="llm failed", company=company), 503
            summary = answer.choices[0].message.content
            store_started = time.perf_counter()
            with trace_storage_operation("sqlite", "insert"):
                db.execute("INSERT INTO research VALUES (?, ?, ?)", (company, summary, time.time()))
                db.commit()
            metrics.record_storage_operation("sqlite", "insert", True, time.perf_counter() - store_started)
            metrics.record_company_research(company, "full", True, time.perf_counter() - started, 1)
            enricher.enrich(company, page.text, request.args.get("note", ""))
        log.info("research done", company=company, tokens=answer.usage.total_tokens)
        return jsonify(company=company, summary=summary)

    @app.get("/companies")
    def companies():
        rows = db.execute("SELECT company, at FROM research ORDER BY at DESC LIMIT 10").fetchall()
        return jsonify(companies=[{"company": company, "at": at} for company, at in rows])

    checks = HealthChecks("theodore-demo")
    checks.add_http("upstreams", f"{upstream}/healthz")
    checks.add_callable("store", lambda: db.execute("SELECT 1").fetchone())
    app.wsgi_app = CorrelationIdWSGIMiddleware(HealthWSGIMiddleware(app.wsgi_app, checks))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--upstream", default="http://127.0.0.1:8001")
    parser.add_argument("--store", type=Path, default=Path("research.db"))
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()
    create_app(args.upstream, args.store, args.model).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
