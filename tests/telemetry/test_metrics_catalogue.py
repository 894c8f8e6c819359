"""Metric names in the code come from the catalogue: every ``record()`` call site and every name
``cost`` queries is a catalogue metric of the type the code expects, and a rename in the
catalogue (theodore_catalogue/metrics.json) that the code does not follow fails loudly."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import theodore_catalogue
import theodore_obs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from theodore_catalogue import MetricName, catalogue, catalogued
from theodore_telemetry import ai_cost
from theodore_telemetry import metrics as metrics_mod
from theodore_telemetry.metrics import TheodoreMetrics

PACKAGES = (Path(metrics_mod.__file__).resolve().parent, Path(theodore_obs.__file__).resolve().parent)
"""The app side (``theodore_telemetry``) and the tooling with its demo (``theodore_obs``)."""
NOT_IN_CATALOGUE = r"not in the metric catalogue \(theodore_catalogue/metrics.json\)"


@dataclass(frozen=True)
class Site:
    where: str
    name: str
    expected_type: str | None
    """The type a constant declares; a string literal declares none."""
    labels: frozenset[str]


def _module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _module(package: Path, path: Path) -> ModuleType:
    dotted = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    return importlib.import_module(dotted)


def record_sites() -> list[Site]:
    """``<x>.record(name, value, ...)`` calls whose name is a string literal or a module-level
    constant; ``record`` methods of other kinds (a histogram's, a log client's) take locals."""
    sites = []
    for package, path in sorted((root, path) for root in PACKAGES for path in root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module_level = _module_level_names(tree)
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "record" and call.args):
                continue
            first, where = call.args[0], f"{path.relative_to(package.parent)}:{call.lineno}"
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name, expected = first.value, None
            elif isinstance(first, ast.Name) and first.id in module_level:
                name = getattr(_module(package, path), first.id)
                assert isinstance(name, MetricName), f"{where}: {first.id} is not declared by catalogued()"
                expected = name.type
            else:
                continue
            labels = frozenset(k.arg for k in call.keywords if k.arg is not None)
            sites.append(Site(where, str(name), expected, labels))
    return sites


def test_every_record_call_site_names_a_catalogue_metric_of_its_type() -> None:
    sites = record_sites()
    specs = catalogue()
    for site in sites:
        assert site.name in specs, f"{site.where}: {site.name} is not in the catalogue"
        spec = specs[site.name]
        assert site.expected_type in (None, spec.type), \
            f"{site.where}: {site.name} is recorded as a {site.expected_type}, catalogued as a {spec.type}"
        assert site.labels <= spec.label_set, f"{site.where}: {sorted(site.labels - spec.label_set)}"
    # The scan found the sites it is there for (it would pass vacuously otherwise).
    files = {site.where.split(":")[0] for site in sites}
    assert {"theodore_telemetry/metrics.py", "theodore_telemetry/ai_cost.py", "theodore_obs/demo/enrichment.py"} <= files
    declared = {v for v in vars(metrics_mod).values() if isinstance(v, MetricName)}
    assert declared <= {site.name for site in sites}, "a declared metric that nothing records"
    assert all(site.expected_type for site in sites if site.where.startswith("theodore_telemetry/"))


def test_no_theodore_metric_name_is_typed_outside_its_declaration() -> None:
    """Telemetry and ``cost`` name a metric once, in ``catalogued()``; everything else uses the
    constant (the demo's seed-000 literals are checked by the call-site test)."""
    declared = {v for v in vars(metrics_mod).values() if isinstance(v, MetricName)}
    telemetry, tooling = PACKAGES
    for path in (telemetry / "metrics.py", telemetry / "ai_cost.py", tooling / "commands/cost.py"):
        literals = [node for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and node.value in declared]
        declarations = [node for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "catalogued"]
        assert len(literals) == len(declarations), path.name


def test_the_names_cost_queries_are_catalogue_metrics_of_their_types() -> None:
    cost = importlib.import_module("theodore_obs.commands.cost")  # the package's ``cost`` is the command
    used = [v for module in (metrics_mod, ai_cost, cost) for v in vars(module).values()
            if isinstance(v, MetricName)]
    assert {"theodore_ai_cost_total", "theodore_ai_tokens_total", "theodore_ai_operation_duration_seconds",
            "theodore_companies_researched_total"} <= set(used)
    for name in used:
        assert catalogue()[name].type == name.type, name
    assert cost.CALLS == "theodore_ai_operation_duration_seconds_count"


def test_a_renamed_or_retyped_catalogue_entry_fails_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    real = catalogue()
    assert catalogued("theodore_requests_total", "counter") == "theodore_requests_total"
    renamed = {("theodore_http_requests_total" if n == "theodore_requests_total" else n): s
               for n, s in real.items()}
    monkeypatch.setattr(theodore_catalogue, "catalogue", lambda: renamed)
    with pytest.raises(LookupError, match=f"theodore_requests_total: {NOT_IN_CATALOGUE}"):
        catalogued("theodore_requests_total", "counter")
    with pytest.raises(LookupError, match="a histogram in the metric catalogue, used as a counter"):
        catalogued("theodore_request_duration_seconds", "counter")


def test_recording_a_name_the_catalogue_lacks_fails() -> None:
    theodore = TheodoreMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    with pytest.raises(LookupError, match=f"theodore_http_requests_total: {NOT_IN_CATALOGUE}"):
        theodore.record("theodore_http_requests_total", 1)


RENAME_ON_LOAD = """
import json
load = json.loads
def renamed(text, **kwargs):
    data = load(text, **kwargs)
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if isinstance(metrics, dict) and "theodore_ai_cost_total" in metrics:
        metrics["theodore_ai_spend_total"] = metrics.pop("theodore_ai_cost_total")
    return data
json.loads = renamed
import theodore_telemetry.metrics
"""


def test_renaming_a_metric_in_the_catalogue_fails_the_import() -> None:
    run = subprocess.run([sys.executable, "-c", RENAME_ON_LOAD], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode != 0
    assert "LookupError: theodore_ai_cost_total: not in the metric catalogue" in run.stderr
