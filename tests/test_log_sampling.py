"""Log sampling as the spec states it, on the native stack: numbered lines sent to the collector,
counted in the log stores. WARN and above, lines of sampled traces and the audit trail are never
dropped; DEBUG/INFO lines are kept at their service's percent."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from theodore_obs.timing import wait_until

from .conftest import native_stack
from .support.victorialogs import logsql_string, query_logs

PORT_OFFSET = 3300
KEEP_PERCENT = 10
SAMPLED, KEPT_WHOLE = "sampling-info", "sampling-keep-all"
INFO_LINES, WARN_LINES, TRACED_LINES, AUDIT_LINES, KEEP_ALL_LINES = 2000, 200, 200, 100, 300


def _policy(spec: dict[str, Any]) -> None:
    spec["sampling"]["logs"] = {"keep_percent": KEEP_PERCENT, "services": {KEPT_WHOLE: 100}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield from native_stack(tmp_path_factory.mktemp("log-sampling"), PORT_OFFSET, _policy)


def _attribute(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _record(marker: str, kind: str, n: int, severity: tuple[int, str], *, trace: bool = False,
            category: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timeUnixNano": str(time.time_ns()), "severityNumber": severity[0], "severityText": severity[1],
        "body": {"stringValue": f"{marker} {kind} {n}"},
        "attributes": [_attribute("kind", kind)] + ([_attribute("category", category)] if category else []),
    }
    if trace:
        record.update(traceId=secrets.token_hex(16), spanId=secrets.token_hex(8), flags=1)
    return record


def _send(stack: dict[str, Any], service: str, records: list[dict[str, Any]]) -> None:
    payload = {"resourceLogs": [{"resource": {"attributes": [_attribute("service.name", service)]},
                                 "scopeLogs": [{"scope": {"name": "sampling-test"}, "logRecords": records}]}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack['spec']['ports']['otlp_http']}/v1/logs", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


INFO, WARN = (9, "INFO"), (13, "WARN")


@pytest.fixture(scope="module")
def stored(stack: dict[str, Any]) -> dict[str, Any]:
    """Send every kind of line once; then what each store holds of them, by kind."""
    assert stack["up"].returncode == 0, stack["up"].stdout + stack["up"].stderr
    marker = f"m{secrets.token_hex(6)}"
    batches = {
        SAMPLED: [_record(marker, "info", n, INFO) for n in range(INFO_LINES)]
        + [_record(marker, "warn", n, WARN) for n in range(WARN_LINES)]
        + [_record(marker, "traced", n, INFO, trace=True) for n in range(TRACED_LINES)]
        + [_record(marker, "audit", n, INFO, category="audit") for n in range(AUDIT_LINES)],
        KEPT_WHOLE: [_record(marker, "keep-all", n, INFO) for n in range(KEEP_ALL_LINES)],
    }
    for service, records in batches.items():
        for start in range(0, len(records), 500):
            _send(stack, service, records[start:start + 500])
    ports = stack["spec"]["ports"]

    def rows(port: str) -> list[dict[str, str]]:
        return query_logs(f"http://127.0.0.1:{ports[port]}", logsql_string(marker), limit=10_000)

    def by_kind(found: list[dict[str, str]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in found:
            counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        return counts

    expected = {"warn": WARN_LINES, "traced": TRACED_LINES, "keep-all": KEEP_ALL_LINES}

    def landed(port: str, wanted: dict[str, int]) -> dict[str, int] | None:
        counts = by_kind(rows(port))
        return counts if all(counts.get(k) == v for k, v in wanted.items()) else None

    wait_until(lambda: landed("victorialogs", expected), 60, every=1,
               what=lambda: f"app store holds {by_kind(rows('victorialogs'))}")
    audit = wait_until(lambda: landed("victorialogs_audit", {"audit": AUDIT_LINES}), 60, every=1,
                       what=lambda: f"audit store holds {by_kind(rows('victorialogs_audit'))}")
    time.sleep(3)  # anything late would have landed by now
    found = rows("victorialogs")
    return {"store": by_kind(found), "audit": audit, "rows": found}


def test_warnings_traced_lines_and_kept_services_all_land(stored: dict[str, Any]) -> None:
    store = stored["store"]
    assert (store["warn"], store["traced"], store["keep-all"]) == (WARN_LINES, TRACED_LINES, KEEP_ALL_LINES)


def test_info_lines_are_kept_at_the_services_percent(stored: dict[str, Any]) -> None:
    kept = stored["store"].get("info", 0)
    print(f"log sampling at {KEEP_PERCENT} %: {INFO_LINES} INFO lines in, {kept} stored")
    # Binomial(2000, 0.10): mean 200, standard deviation 13.4; these bounds are 7 deviations out.
    assert 105 <= kept <= 295, f"{kept} of {INFO_LINES} INFO lines kept at {KEEP_PERCENT} %"


def test_the_audit_trail_is_never_sampled_and_never_in_the_app_store(stored: dict[str, Any]) -> None:
    assert stored["audit"] == {"audit": AUDIT_LINES}
    assert "audit" not in stored["store"]


def test_the_sampler_leaves_no_attributes_of_its_own(stored: dict[str, Any]) -> None:
    fields = {key for row in stored["rows"] for key in row}
    assert not {f for f in fields if f.startswith("theodore.sampling")}, fields


def test_no_line_is_stored_twice(stored: dict[str, Any]) -> None:
    bodies = [row["_msg"] for row in stored["rows"]]
    assert len(bodies) == len(set(bodies))

