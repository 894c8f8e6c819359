"""The spec: stack.yaml against its schema, overlays, and the errors a user sees."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from theodore_obs.schema_overlay import overlay_of
from theodore_obs.spec import SpecError, deep_merge, environments, load_spec

from .conftest import ROOT, load_stack, run_cli


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_every_environment_of_the_committed_spec_is_valid(env: str) -> None:
    """Each overlay merges over the base into a spec the schema accepts."""
    spec = load_spec(env)
    assert spec.environment == env
    assert spec.data["services"]["theodore-demo"]["port"] == 8000


def test_overlay_values_win_over_the_base() -> None:
    """local's short intervals and prod's long retention replace the base values."""
    assert load_spec("local").data["intervals"]["scrape"] == "5s"
    assert load_spec("prod").data["retention"]["prometheus"]["time"] == "30d"
    assert load_spec("staging").data["intervals"]["scrape"] == "15s"


def test_deep_merge_merges_maps_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base["a"]["c"] == [1, 2]


def test_environments_lists_the_overlays() -> None:
    assert environments() == ["local", "prod", "staging"]


def _broken(mutate) -> dict:
    spec = copy.deepcopy(load_stack())
    mutate(spec)
    return spec


CASES = {
    "missing field": (lambda s: s["ports"].pop("victorialogs"), "ports",
                      "missing required key: 'victorialogs'"),
    "wrong type": (lambda s: s["ports"].__setitem__("prometheus", "ninety"), "ports.prometheus",
                   "expected a value of type integer"),
    "unknown key": (lambda s: s["retention"]["victorialogs"].__setitem__("perod", "1d"),
                    "retention.victorialogs.perod", "unknown key 'perod'"),
    "bad duration": (lambda s: s["intervals"].__setitem__("scrape", "5 seconds"),
                     "intervals.scrape", "Prometheus-style duration"),
    "bad overlay": (lambda s: s["environments"]["prod"]["retention"]["prometheus"].__setitem__("time", 30),
                    "environments.prod.retention.prometheus.time", "expected a value of type string"),
    "unknown key in overlay": (lambda s: s["environments"]["local"].__setitem__("colector", {}),
                               "environments.local.colector", "unknown key 'colector'"),
    "unknown log tenant": (lambda s: s["log_store"].__setitem__("tenant", "nobody"),
                           "log_store.tenant", "names no tenant (defined: theodore)"),
    "secret inline": (lambda s: s["alerting"]["receivers"]["slack"].__setitem__(
        "api_url_file", "https://hooks.slack.com/services/T000/B000/XXXX"),
        "alerting.receivers.slack.api_url_file", "never the secret itself"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_exits_2_naming_the_path_and_writes_nothing(case: str, write_spec, tmp_path: Path) -> None:
    """render on a bad spec: exit code 2, file + YAML path + expectation, output untouched."""
    mutate, path, expected = CASES[case]
    spec_file = write_spec(_broken(mutate))
    out = tmp_path / "out"
    (out / "local").mkdir(parents=True)
    (out / "local" / "keep.txt").write_text("previous output")
    result = run_cli("render", "--spec", str(spec_file), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert str(spec_file) in result.stderr
    assert f": {path}" in result.stderr
    assert expected in result.stderr
    assert "line " in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["keep.txt", "local"]
    assert (out / "local" / "keep.txt").read_text() == "previous output"


def test_broken_yaml_names_the_line(write_spec) -> None:
    spec_file = write_spec("project: theodore\nports:\n  victorialogs: [9428\n")
    result = run_cli("render", "--spec", str(spec_file), "--out", str(spec_file.parent / "out"))
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr
    assert "(line 4)" in result.stderr or "(line 3)" in result.stderr
    assert not (spec_file.parent / "out").exists()


def test_unknown_environment_is_named(write_spec) -> None:
    spec_file = write_spec(load_stack())
    with pytest.raises(SpecError, match=r"environments\.qa.*defined: local, prod, staging"):
        load_spec("qa", spec_file)


def test_missing_spec_file_is_named(tmp_path: Path) -> None:
    result = run_cli("render", "--spec", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "cannot read" in result.stderr


def test_the_published_overlay_schema_is_the_one_generated_from_the_base() -> None:
    """`$defs.overlay` is generated (`make schema`); the loader uses the generated one anyway."""
    schema = json.loads((ROOT / "stack.schema.json").read_text())
    assert schema["$defs"]["overlay"] == overlay_of(schema), "run `make schema` and commit stack.schema.json"


def _requirements(schema: object) -> list[str]:
    """Requirement keywords anywhere in a schema (property names are not keywords)."""
    if isinstance(schema, list):
        return [k for item in schema for k in _requirements(item)]
    if not isinstance(schema, dict):
        return []
    found = [k for k in ("required", "if", "then", "else") if k in schema]
    for key, value in schema.items():
        children = value.values() if key == "properties" and isinstance(value, dict) else [value]
        found += [k for child in children for k in _requirements(child)]
    return found


def test_an_overlay_may_set_any_base_key_but_requires_none() -> None:
    schema = json.loads((ROOT / "stack.schema.json").read_text())
    overlay = overlay_of(schema)
    assert set(overlay["properties"]) == set(schema["properties"]) - {"environments"}
    assert _requirements(schema["properties"]) != []
    assert _requirements(overlay) == []
