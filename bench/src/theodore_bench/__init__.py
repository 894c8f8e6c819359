"""Dev-only measurements of theodore-observability (``make bench``), kept out of the shipped package.

- :mod:`theodore_bench.bench`: every figure of ``docs/benchmarks.md`` (``report_all``);
- :mod:`theodore_bench.logstore`: the log store's memory, ingest rate and lookup;
- :mod:`theodore_bench.drill`: the alert drill (faults into the demo → PagerDuty at a local receiver).
"""
