"""Collector-side redaction (stack.yaml `redaction:`): for apps that do not run our Python distro.

Offline: the spec's patterns do what their comments say (Python's `re`, which reads them as RE2
does), and the rendered collector configs carry exactly those patterns, escaped for the
collector's `${...}` expansion and for OTTL string literals, in every logs and traces pipeline.

Native: a raw OTLP/HTTP log and span with planted secrets, posted straight to the collector
(no SDK, no distro), arrive in VictoriaLogs, Jaeger and the span metrics in Prometheus without a trace
of any secret, while the harmless attributes next to them are kept.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import ROOT, load_stack, native_stack
from .support.victorialogs import logsql_string, query_logs
from .test_native import eventually, get_json, post_json, url

PORT_OFFSET = 800
"""Ports no other native-stack test module uses (checked against their offsets)."""

POLICY = load_stack()["redaction"]
MARK = POLICY["replacement"]
MASK = "****"
"""What the redaction processor writes over the value of a sensitive key."""

KEPT_GROUPS = ("before", "after")


def scrub(text: str) -> str:
    """The transform processor's rewrite, in Python: every value pattern in list order."""
    for entry in POLICY["secret_values"]:
        text = re.sub(entry["pattern"], lambda m: "".join(
            [m.groupdict().get("before") or "", MARK, m.groupdict().get("after") or ""]), text)
    return text


def sensitive(key: str) -> bool:
    return any(re.search(entry["pattern"], key) for entry in POLICY["sensitive_keys"])


# -- the policy itself -----------------------------------------------------------------------

SAMPLES = [
    ("Authorization: Bearer abcdefgh12345678", "Authorization: [REDACTED] [REDACTED]"),
    ("GET /cb?password=hunter2&token=abc123&page=2", "GET /cb?password=[REDACTED]&token=[REDACTED]&page=2"),
    ('{"api_key": "k-123", "user": "bob"}', '{"api_key": "[REDACTED]", "user": "bob"}'),
    ("note=password%3Dhunter2", "note=password%3D[REDACTED]"),
    ("SELECT 1 FROM u WHERE password = 'hunter2'", "SELECT 1 FROM u WHERE password = '[REDACTED]'"),
    ("postgres://admin:hunter2@db:5432/app", "postgres://[REDACTED]@db:5432/app"),
    ("id AKIAIOSFODNN7EXAMPLE used", "id [REDACTED] used"),
    ("gh ghp_" + "a" * 36, "gh [REDACTED]"),
    ("slack xoxb-123456789012-abcdef", "slack [REDACTED]"),
    ("openai sk-proj-" + "x" * 24, "openai [REDACTED]"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl!", "jwt [REDACTED]!"),
    ("k -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- ok", "k [REDACTED] ok"),
    ("k -----BEGIN PRIVATE KEY-----\nMIIE cut short", "k [REDACTED]"),
    ("card 4111 1111 1111 1111, amex 3782-822463-10005", "card [REDACTED], amex [REDACTED]"),
]
"""Secret-bearing text and what the policy leaves of it."""

ORDINARY = ["token_count=5 input_tokens: 7", "ts 1712345678901 trace 4bf92f3577b34da6a3ce929d0e0e4736",
            "https://api.example:8443/v1/items?page=2", "basic settings were saved",
            "monkey keyboard author"]
"""Text without secrets, some of it close to a pattern."""


@pytest.mark.parametrize(("text", "expected"), SAMPLES)
def test_value_patterns_redact_each_secret_shape(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize("text", ORDINARY)
def test_value_patterns_leave_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(("key", "expected"), [
    ("http.request.header.authorization", True), ("http.request.header.proxy-authorization", True),
    ("http.request.header.cookie", True), ("http.response.header.set-cookie", True),
    ("http.request.header.x-api-key", True), ("X-Auth-Token", True), ("password_hash", True),
    ("clientSecret", True), ("accessToken", True), ("session.id", True), ("db.password", True),
    ("token_count", False), ("gen_ai.usage.input_tokens", False), ("secretary", False),
    ("author", False), ("oauth.provider", False), ("user.id", False), ("url.full", False),
])
def test_key_patterns_name_the_sensitive_keys(key: str, expected: bool) -> None:
    assert sensitive(key) is expected


def test_patterns_use_only_what_re2_reads_the_same_way() -> None:
    """No lookaround or backreferences (RE2 has none), no global flag after the start."""
    for entry in POLICY["sensitive_keys"] + POLICY["secret_values"]:
        pattern = entry["pattern"]
        assert not re.search(r"\(\?<?[=!]|\\[1-9]|\(\?P=", pattern), entry["name"]
        assert not re.search(r".\(\?[a-z]+\)", pattern), entry["name"]
        groups = set(re.compile(pattern).groupindex)
        assert groups <= set(KEPT_GROUPS), (entry["name"], groups)


# -- the rendered collector configs ----------------------------------------------------------

def _ottl_strings(statement: str) -> list[str]:
    """The string literals of an OTTL statement, unescaped as OTTL does."""
    return [json.loads(f'"{body}"') for body in re.findall(r'"((?:\\.|[^\\"])*)"', statement)]


def _config(env: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "rendered" / env / "otel-collector" / name).read_text())


CONFIGS = [(env, name) for env in ("local", "staging", "prod") for name in ("config.yaml", "agent.yaml")]


@pytest.mark.parametrize(("env", "name"), CONFIGS)
def test_every_logs_and_traces_pipeline_redacts_before_it_batches(env: str, name: str) -> None:
    pipelines = _config(env, name)["service"]["pipelines"]
    for signal in ("logs", "traces"):
        processors = pipelines[signal]["processors"]
        assert "transform/redact" in processors and "redaction" in processors, (signal, processors)
        assert processors.index("transform/redact") < processors.index("redaction")
        later = [p for p in ("tail_sampling", "batch") if p in processors]
        assert all(processors.index("redaction") < processors.index(p) for p in later), processors
    if "traces/spanmetrics" in pipelines:
        assert "transform/redact-span-names" in pipelines["traces/spanmetrics"]["processors"]


def _unescape(text: str) -> str:
    """A config string as the collector reads it: every `$` was written `$$`."""
    assert "$" not in text.replace("$$", ""), f"a lone $ the collector would expand: {text}"
    return text.replace("$$", "$")


@pytest.mark.parametrize(("env", "name"), CONFIGS)
def test_rendered_statements_rewrite_as_the_spec_says(env: str, name: str) -> None:
    """Undo the collector's `$$` and OTTL's escapes, run each target's (regex, replacement)
    pairs with Python's `re`: every target rewrites every sample as the spec's patterns do."""
    transform = _config(env, name)["processors"]["transform/redact"]
    assert transform["error_mode"] == "ignore"
    pairs: dict[str, list[tuple[str, str]]] = {}
    for signal in ("log_statements", "trace_statements"):
        for group in transform[signal]:
            for statement in group["statements"]:
                target = re.match(r"\w+\(([\w.]+)", statement).group(1)
                key = f"{signal}:{target}:{statement.rpartition(')')[2]}"
                *_, regex, replacement = _ottl_strings(_unescape(statement))
                pairs.setdefault(key, []).append((regex, replacement))
    targets = {key.split(":")[1] for key in pairs}
    assert targets == {"resource.attributes", "log.body", "log.attributes", "span.name",
                       "span.attributes", "span.status.message", "spanevent.attributes"}
    for key, rewrites in pairs.items():
        for text, expected in SAMPLES + [(t, t) for t in ORDINARY]:
            for regex, replacement in rewrites:
                text = re.sub(regex, re.sub(r"\$\{(\w+)\}", r"\\g<\1>", replacement), text)
            assert text == expected, key


@pytest.mark.parametrize(("env", "name"), CONFIGS)
def test_redaction_processor_masks_the_spec_keys(env: str, name: str) -> None:
    redaction = _config(env, name)["processors"]["redaction"]
    assert redaction["allow_all_keys"] is True and redaction["summary"] == "silent"
    assert [_unescape(p) for p in redaction["blocked_key_patterns"]] == \
        [e["pattern"] for e in POLICY["sensitive_keys"]]
    unkept = [e["pattern"] for e in POLICY["secret_values"]
              if not set(re.compile(e["pattern"]).groupindex) & set(KEPT_GROUPS)]
    assert [_unescape(p) for p in redaction["blocked_values"]] == unkept


# -- end to end: raw OTLP into the native stack ----------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for info in native_stack(tmp_path_factory.mktemp("redaction"), PORT_OFFSET):
        assert info["up"].returncode == 0, info["up"].stdout + info["up"].stderr
        yield info


def _value(value: Any) -> dict[str, Any]:
    """An OTLP JSON AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attributes(value)}}
    return {"stringValue": value}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in values.items()]


class Planted:
    """Secrets unique to one run, in every shape the policy knows, and where they go."""

    WORDS = ("bearer", "header", "cookie", "url_pw", "api_key", "db_pw", "cmd_pw", "event_pw",
             "span_token", "nested", "map_token")
    """Secrets found by where they stand (after a name, in a URL, under a key), not by shape."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4).upper()
        self.word = {name: f"PLANTED{name.upper()}{tag}" for name in self.WORDS}
        self.shape = {
            "aws": f"AKIA{tag}PLANTED0",
            "github": f"ghp_PLANTED{tag}" + "g" * 30,
            "slack": f"xoxb-PLANTED{tag}-123456",
            "openai": f"sk-proj-PLANTED{tag}abcdefgh",
            "jwt": f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVEVE{tag}.PLANTEDSIG{tag}",
            "pem_body": f"PLANTEDPEMBODY{tag}",
            "card": "4111 1111 1111 1111",
        }
        self.all = [*self.word.values(), *self.shape.values()]

    @property
    def url_full(self) -> str:
        return (f"https://alice:{self.word['url_pw']}@api.example/v1/items"
                f"?api_key={self.word['api_key']}&page=2")

    def attributes(self) -> dict[str, Any]:
        """Sensitive attributes (by key or by value) and harmless ones beside them."""
        word, shape = self.word, self.shape
        return {
            "url.full": self.url_full,
            "url.query": f"api_key={word['api_key']}&page=2",
            "db.query.text": f"UPDATE users SET password = '{word['db_pw']}' WHERE id = 7",
            "db.statement": f"SELECT 1 -- {shape['aws']}",
            "http.request.header.authorization": [f"Bearer {word['header']}"],
            "http.request.header.cookie": [f"session={word['cookie']}"],
            "vendor.tokens": f"{shape['github']} {shape['slack']} {shape['openai']}",
            "auth.jwt.raw": shape["jwt"],
            "tls.key.pem": f"-----BEGIN PRIVATE KEY-----\n{shape['pem_body']}\n-----END PRIVATE KEY-----",
            "payment.note": f"paid with {shape['card']}",
            "user.id": "bob",
            "http.request.method": "POST",
            "http.response.status_code": 401,
            "token_count": 42,
        }

    def resource(self, service: str) -> dict[str, Any]:
        return {"attributes": _attributes({
            "service.name": service,
            "process.command_line": f"worker --db-password={self.word['cmd_pw']} --verbose"})}


def test_raw_otlp_log_and_span_arrive_redacted(stack: dict[str, Any]) -> None:
    planted, service = Planted(), f"raw-otlp-{secrets.token_hex(3)}"
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    message = f"login failed for bob: Authorization: Bearer {planted.word['bearer']} from {planted.url_full}"
    logs = {"resourceLogs": [{"resource": planted.resource(service), "scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(now), "severityText": "WARN", "severityNumber": 13,
         "traceId": trace_id, "spanId": span_id,
         "body": {"stringValue": message},
         "attributes": _attributes(planted.attributes())},
        {"timeUnixNano": str(now + 1000), "severityText": "INFO", "severityNumber": 9,
         "traceId": trace_id, "spanId": span_id,
         "body": _value({"event": "signup", "msg": f"token={planted.word['map_token']} ok",
                         "user": {"name": "carol", "password": planted.word['nested']}})},
    ]}]}]}
    span = {"traceId": trace_id, "spanId": span_id, "kind": 2,
            "name": f"GET /callback?token={planted.word['span_token']}",
            "startTimeUnixNano": str(now - 25_000_000), "endTimeUnixNano": str(now),
            "status": {"code": 2, "message": f"upstream refused Bearer {planted.word['bearer']}"},
            "attributes": _attributes(planted.attributes()),
            "events": [{"timeUnixNano": str(now - 1_000_000), "name": "exception",
                        "attributes": _attributes({
                            "exception.type": "ConnectionError",
                            "exception.message": f"cannot reach postgres://app:{planted.word['event_pw']}@db/app"})}]}
    traces = {"resourceSpans": [{"resource": planted.resource(service),
                                 "scopeSpans": [{"spans": [span]}]}]}
    assert post_json(url(stack, "otlp_http", "/v1/logs"), logs) == 200
    assert post_json(url(stack, "otlp_http", "/v1/traces"), traces) == 200

    # VictoriaLogs: both records, secrets gone from messages and fields, the rest kept.
    def stored() -> list[dict[str, str]]:
        rows = query_logs(url(stack, "victorialogs", ""), f"service.name:={logsql_string(service)}")
        return rows if len(rows) >= 2 else []

    rows = eventually(stored, timeout=90)
    raw = json.dumps(rows)
    assert [s for s in planted.all if s in raw] == []
    (fields,) = [row for row in rows if row["_msg"].startswith("login failed")]
    assert fields["_msg"] == scrub(message) == (
        "login failed for bob: Authorization: [REDACTED] [REDACTED] from "
        "https://[REDACTED]@api.example/v1/items?api_key=[REDACTED]&page=2")
    assert fields["user.id"] == "bob" and fields["http.request.method"] == "POST"
    assert fields["url.full"] == "https://[REDACTED]@api.example/v1/items?api_key=[REDACTED]&page=2"
    assert fields["db.query.text"] == "UPDATE users SET password = '[REDACTED]' WHERE id = 7"
    assert fields["process.command_line"] == "worker --db-password=[REDACTED] --verbose"
    assert fields["trace_id"] == trace_id
    # A map body is stored as fields of its own (nested keys joined by dots).
    (map_fields,) = [row for row in rows if row is not fields]
    assert map_fields["event"] == "signup" and map_fields["msg"] == "token=[REDACTED] ok"
    assert map_fields["user.name"] == "carol" and map_fields["user.password"] == MASK

    # Jaeger: the span, its event and its process, secrets gone, harmless tags kept.
    def trace() -> list[Any]:
        return get_json(url(stack, "jaeger_query", f"/api/traces/{trace_id}"))["data"]

    (found,) = eventually(trace, timeout=90)
    raw = json.dumps(found)
    assert [s for s in planted.all if s in raw] == []
    (got,) = found["spans"]
    tags = {t["key"]: t["value"] for t in got["tags"]}
    assert got["operationName"] == "GET /callback?token=[REDACTED]"
    assert tags["otel.status_description"] == "upstream refused Bearer [REDACTED]"
    assert tags["url.full"] == "https://[REDACTED]@api.example/v1/items?api_key=[REDACTED]&page=2"
    assert tags["url.query"] == "api_key=[REDACTED]&page=2"
    assert tags["db.query.text"] == "UPDATE users SET password = '[REDACTED]' WHERE id = 7"
    assert tags["db.statement"] == "SELECT 1 -- [REDACTED]"
    assert tags["http.request.header.authorization"] == MASK
    assert tags["http.request.header.cookie"] == MASK
    assert tags["vendor.tokens"] == "[REDACTED] [REDACTED] [REDACTED]"
    assert tags["auth.jwt.raw"] == "[REDACTED]" and tags["tls.key.pem"] == "[REDACTED]"
    assert tags["payment.note"] == "paid with [REDACTED]"
    assert tags["user.id"] == "bob" and tags["http.request.method"] == "POST"
    assert tags["http.response.status_code"] == 401 and tags["token_count"] == 42
    (event,) = got["logs"]
    fields = {f["key"]: f["value"] for f in event["fields"]}
    assert fields["exception.message"] == "cannot reach postgres://[REDACTED]@db/app"
    assert fields["exception.type"] == "ConnectionError"
    process_tags = {t["key"]: t["value"] for t in found["processes"][got["processID"]]["tags"]}
    assert process_tags["process.command_line"] == "worker --db-password=[REDACTED] --verbose"

    # Prometheus: the span metrics carry the redacted span name as their label.
    def span_names() -> set[str]:
        query = urllib.parse.quote(f'traces_span_metrics_calls_total{{service_name="{service}"}}')
        result = get_json(url(stack, "prometheus", f"/api/v1/query?query={query}"))["data"]["result"]
        return {series["metric"]["span_name"] for series in result}

    assert eventually(span_names, timeout=120, every=2) == {"GET /callback?token=[REDACTED]"}


def test_spec_redaction_section_is_documented() -> None:
    """Every pattern in stack.yaml's `redaction:` has a name, and the section a comment block."""
    text = (ROOT / "stack.yaml").read_text()
    before = text[:text.index("\nredaction:\n")].rsplit("\n\n", 1)[-1]
    assert before.startswith("# ") and "transform/redact" in before and "redaction" in before
    names = [e["name"] for e in POLICY["sensitive_keys"] + POLICY["secret_values"]]
    assert len(names) == len(set(names))

