"""Dev-only measurements of theodore-observability (``make bench``), kept out of the shipped package.

- :mod:`theodore_bench.bench`: every figure of ``docs/benchmarks.md`` (``report_all``);
- :mod:`theodore_bench.distros`: the demo bare, under the stock OpenTelemetry distro and under ours,
  in a venv of its own (``python -m theodore_bench.distros``); :mod:`theodore_bench.distro_profile`:
  where each spends its CPU (py-spy);
- :mod:`theodore_bench.logstore`: the log store's memory, ingest rate and lookup;
- :mod:`theodore_bench.drill`: the alert drill (faults into the demo → PagerDuty at a local receiver).
"""
