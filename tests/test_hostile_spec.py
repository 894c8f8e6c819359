"""Hostile spec strings: each is refused naming its field, or reaches every output as data.

Every string of stack.yaml (base and overlays) is replaced in turn by each hostile value. The
render must either stop with a ``SpecError``/``RenderError`` naming that field, or produce files
that parse (as their consumers parse them) to the same structure as a render with a harmless
value in that place, with the hostile value inside a parsed string, byte for byte, once the
consumer's own escapes (Go templates' ``{{ "{{" }}``, ``$$`` for environment expansion, string
literals of a query language) are read.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from theodore_obs.render import COMPOSE, RenderError, render_files
from theodore_obs.render_check import parse, strings
from theodore_obs.spec import SpecError, load_spec

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

from .conftest import ROOT, run_cli

SYNTAX = "a#b: c 'd' \"e\" [f] {g}, *h &i !j | k > l % m @n `o` \\p"
"""Everything YAML, JSON and flow collections read as syntax, in one value."""

TEMPLATES = "{{ .ExternalURL }} {% if x %}{{ template \"y\" . }}{% endif %} {{/* z */}}"
"""Go-template and Jinja syntax: Alertmanager and Prometheus would execute the first."""

EXPANSION = "${env:HOME} $HOME ${HOME}"
"""What the collector, compose and Grafana expand from the environment."""

RENDERED_VALUES = {"syntax": SYNTAX, "templates": TEMPLATES, "expansion": EXPANSION}

REFUSED_AT_LOAD = {
    "newline-and-key": "x\nGF_AUTH_ANONYMOUS_ENABLED: \"true\"",
    "trailing-newline": "theodore\n",
    "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b",
    "nul": "a\x00b",
    "one-megabyte": "x" * 1_000_000,
}
"""Values no field may hold: the spec loader refuses them, naming the field."""

HARMLESS = ("harmless-value", "harmless@example.com", "https://harmless.example/x")
"""Plain values, one of which each field accepts (a name, an address, a URL)."""


def _string_leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _string_leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _string_leaves(value, (*path, index))
    elif isinstance(data, str):
        yield path


DOCUMENT = yaml.safe_load((ROOT / "stack.yaml").read_text())
FIELDS = list(_string_leaves(DOCUMENT))


def _with(path: tuple[Any, ...], value: str) -> dict[str, Any]:
    doc = copy.deepcopy(DOCUMENT)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _environment(path: tuple[Any, ...]) -> str:
    """The environment to render for a field: its overlay's, or ``local`` for a base field (a
    base value reaches every environment through the same templates)."""
    return path[1] if path[0] == "environments" else "local"


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def _render(doc: dict[str, Any], tmp: Path, env: str) -> dict[str, list[Any]]:
    """Every YAML and JSON output of ``env`` (compose addressing, which Helm ships too), parsed."""
    spec_file = tmp / "stack.yaml"
    spec_file.write_text(yaml.dump(doc, Dumper=DUMPER, allow_unicode=True, sort_keys=False))
    files = render_files(load_spec(env, spec_file), COMPOSE)
    return {relative: docs for relative, text in files.items()
            if (docs := parse(relative, text)) is not None}


def _shape(data: Any) -> Any:
    """The structure of parsed data: nesting, key types and value types, strings all alike."""
    if isinstance(data, dict):
        return ("map", tuple(sorted(repr((type(k).__name__, _shape(v))) for k, v in data.items())))
    if isinstance(data, list):
        return ("seq", tuple(_shape(v) for v in data))
    return type(data).__name__


def _consumer_reading(text: str) -> str:
    return text.replace('{{ "{{" }}', "{{").replace("$$", "$")


def _carries(documents: dict[str, list[Any]], value: str) -> bool:
    """Whether ``value`` is inside a parsed string, as it is or as the body of a string literal
    of the language that string is written in (OTTL, PromQL, LogQL: JSON's escapes)."""
    forms = (value, json.dumps(value, ensure_ascii=False)[1:-1])
    return any(form in _consumer_reading(s) for docs in documents.values() for s in strings(docs)
               for form in forms)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory) -> dict[tuple[Any, ...], tuple[str, dict[str, list[Any]]]]:
    """Per field, a harmless value it accepts and the render with it there: the structure a
    hostile render must keep."""
    tmp = tmp_path_factory.mktemp("baseline")
    found = {}
    for path in FIELDS:
        for harmless in HARMLESS:
            try:
                found[path] = (harmless, _render(_with(path, harmless), tmp, _environment(path)))
                break
            except (SpecError, RenderError):
                continue
    return found


@pytest.mark.parametrize("kind", sorted(RENDERED_VALUES))
def test_a_hostile_string_in_any_field_is_refused_by_name_or_kept_as_data(kind, baselines, tmp_path) -> None:
    value, outcomes = RENDERED_VALUES[kind], {"refused": 0, "kept": 0}
    for path in FIELDS:
        try:
            parsed = _render(_with(path, value), tmp_path, _environment(path))
        except (SpecError, RenderError) as exc:
            assert _dotted(path) in str(exc) or _dotted(path[2:]) in str(exc), (path, str(exc))
            outcomes["refused"] += 1
            continue
        harmless, baseline = baselines[path]
        assert parsed.keys() == baseline.keys(), path
        for file, documents in parsed.items():
            assert _shape(documents) == _shape(baseline[file]), (path, file)
        if _carries(baseline, harmless):
            assert _carries(parsed, value), (path, "the value does not come back whole")
        outcomes["kept"] += 1
    assert outcomes["kept"] > 0 and outcomes["refused"] > 0, outcomes


@pytest.mark.parametrize("kind", sorted(REFUSED_AT_LOAD))
def test_control_characters_and_huge_strings_are_refused_naming_the_field(kind, tmp_path) -> None:
    spec_file = tmp_path / "stack.yaml"
    for path in FIELDS:
        spec_file.write_text(yaml.dump(_with(path, REFUSED_AT_LOAD[kind]), Dumper=DUMPER, allow_unicode=True))
        with pytest.raises(SpecError) as refused:
            load_spec(_environment(path), spec_file)
        assert refused.value.path == _dotted(path), (path, str(refused.value))
        assert len(str(refused.value)) < 600


def test_the_grafana_admin_user_cannot_enable_anonymous_admin(tmp_path) -> None:
    """A newline in grafana.admin_user cannot add environment keys (anonymous Admin access)."""
    doc = _with(("grafana", "admin_user"), "admin\n      GF_AUTH_ANONYMOUS_ENABLED: \"true\"")
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(doc))
    result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "grafana.admin_user" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "local").exists()


def test_a_runbook_url_with_go_template_syntax_is_refused(tmp_path) -> None:
    """Prometheus templates annotations: a runbook URL holding `{{ .ExternalURL }}` is refused."""
    doc = _with(("alerting", "runbook_base_url"), "https://runbooks.example/{{ .ExternalURL }}")
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="is not a 'uri'") as refused:
        load_spec("local", tmp_path / "stack.yaml")
    assert refused.value.path == "alerting.runbook_base_url"


def test_a_slack_channel_is_data_for_alertmanager_templating(tmp_path) -> None:
    """Alertmanager templates the channel: Go-template text is printed as text, `#` is kept
    (a YAML comment would cut the value); a newline is refused at load, like in every field."""
    rendered = {}
    for channel in ("#alerts-prod", '{{ .ExternalURL }} {{ template "x" . }}'):
        doc = _with(("alerting", "receivers", "slack", "channel"), channel)
        (tmp_path / "stack.yaml").write_text(yaml.safe_dump(doc))
        config = yaml.safe_load(render_files(load_spec("local", tmp_path / "stack.yaml"), COMPOSE)[
            "alertmanager/alertmanager.yml"])
        rendered[channel] = {c["channel"] for r in config["receivers"] for c in r.get("slack_configs", [])}
    assert rendered["#alerts-prod"] == {"#alerts-prod"}
    assert rendered['{{ .ExternalURL }} {{ template "x" . }}'] == {
        '{{ "{{" }} .ExternalURL }} {{ "{{" }} template "x" . }}'}


def test_non_finite_numbers_never_reach_json(tmp_path) -> None:
    for text in (".nan", ".inf", "-.inf"):
        spec = (ROOT / "stack.yaml").read_text().replace("head_ratio: 1.0", f"head_ratio: {text}")
        (tmp_path / "stack.yaml").write_text(spec)
        with pytest.raises(SpecError, match="finite"):
            load_spec("local", tmp_path / "stack.yaml")


def test_an_alias_bomb_is_refused_in_under_a_second(tmp_path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (tmp_path / "stack.yaml").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "alias" in result.stderr and len(result.stderr.splitlines()) == 1
    assert time.monotonic() - started < 5  # the CLI's own start-up included; the check is ~ms


@pytest.mark.parametrize(("content", "expected"), [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"- a\n- b\n", "mapping at the top level"),
    (b"", "mapping at the top level"),
    (b"project: theodore\n", "missing required key"),
])
def test_malformed_specs_exit_2_with_one_line(tmp_path, content, expected) -> None:
    (tmp_path / "stack.yaml").write_bytes(content)
    result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_environments_that_are_not_a_mapping_or_empty_exit_2(tmp_path) -> None:
    for value in ("5", "{}", "[]"):
        doc = (ROOT / "stack.yaml").read_text()
        start = doc.index("\nenvironments:")
        (tmp_path / "stack.yaml").write_text(doc[:start] + f"\nenvironments: {value}\n")
        result = run_cli("render", "--spec", str(tmp_path / "stack.yaml"), "--out", str(tmp_path / "out"))
        assert result.returncode == 2, (value, result.stderr)
        assert "environments" in result.stderr


@pytest.mark.parametrize("name", ["..", "../etc/passwd", ".hidden", "a/b", "a..b"])
def test_a_secret_file_name_cannot_leave_the_secrets_folder(tmp_path, name) -> None:
    doc = _with(("alerting", "receivers", "slack", "api_url_file"), name)
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as refused:
        load_spec("local", tmp_path / "stack.yaml")
    assert refused.value.path == "alerting.receivers.slack.api_url_file"
