"""The distro comparison's report: what each setup adds to bare, ours against the stock distro,
and both against the stock distro's spans alone, computed from the runs' own figures."""

from __future__ import annotations

from theodore_bench.bench import BARE, OURS, SPANS_ONLY, STOCK, report_request_overhead


def _run(cpu_ms: float, p50_ms: float, spans: float, logs: float | None = None) -> dict[str, float]:
    figures = {"seconds": 15.0, "requests": 1000.0, "cpu_ms": cpu_ms, "p50_ms": p50_ms, "p99_ms": p50_ms * 2,
               "rps": 1000 / p50_ms}
    if logs is not None:
        figures.update(spans_per_request=spans, log_records_per_request=logs)
    return figures


def test_the_report_sets_ours_against_the_stock_distro_and_its_spans_alone() -> None:
    runs = {"research": {BARE: _run(4.0, 5.0, 0), STOCK: _run(5.2, 6.0, 6.4, 1.0),
                         SPANS_ONLY: _run(5.0, 5.8, 6.4, 0.0), OURS: _run(5.1, 6.1, 6.4, 6.0)}}
    text = "\n".join(report_request_overhead(runs, rounds=3))
    assert "stock distro, spans only sends 6.4 spans and 0.0 log lines" in text
    assert "stock distro adds 1000 µs at p50 and 1200 µs of server CPU per request" in text
    assert "ours / stock distro: added CPU 0.92x, added p50 1.10x" in text
    assert ("the stock distro's spans alone add 1000 µs of CPU, 0.83x of all it adds; "
            "ours adds 1.10x what those spans alone cost") in text


def test_without_the_spans_only_setup_the_report_leaves_that_line_out() -> None:
    runs = {"companies": {BARE: _run(0.7, 0.8, 0), STOCK: _run(1.1, 1.1, 1.0, 1.0), OURS: _run(1.0, 1.0, 1.0, 1.0)}}
    text = "\n".join(report_request_overhead(runs, rounds=3))
    assert "ours / stock distro: added CPU 0.75x" in text
    assert "spans alone" not in text
