"""Alertmanager's API v2 (alerts, silences, status) and routing through ``amtool``."""

from __future__ import annotations

import re
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ..tools import ToolError, binary_path
from ._http import HttpBackend, path_segment
from .shapes import BOOL, LABELS, STR, arr, obj

MATCH_OPERATORS = ("!~", "=~", "!=", "=")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A label name as ``amtool`` takes it on its command line (never an ``--option``)."""
SILENCE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""Alertmanager's silence ids are UUIDs."""
FINGERPRINT = re.compile(r"[0-9a-f]{16}")
"""An alert's fingerprint as API v2 writes it: 16 lower-case hex digits."""

ALERTS = arr(obj(labels=LABELS,
                 status=obj(state=STR, optional={"silencedBy": arr(STR), "inhibitedBy": arr(STR)}),
                 optional={"annotations": LABELS, "fingerprint": STR, "startsAt": STR, "endsAt": STR,
                           "updatedAt": STR, "generatorURL": STR, "receivers": arr(obj(name=STR))}))
SILENCES = arr(obj(id=STR, status=obj(state=STR), startsAt=STR, endsAt=STR, createdBy=STR, comment=STR,
                   matchers=arr(obj(name=STR, value=STR, isRegex=BOOL)),
                   optional={"updatedAt": STR, "annotations": LABELS}))
CREATED = obj(silenceID=STR)
STATUS = obj(config=obj(original=STR))


def parse_matcher(text: str) -> dict[str, Any]:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex`` as an API v2 matcher."""
    for op in MATCH_OPERATORS:
        name, found, value = text.partition(op)
        if found and name.strip():
            return {"name": name.strip(), "value": value.strip().strip('"'),
                    "isRegex": "~" in op, "isEqual": not op.startswith("!")}
    raise ValueError(f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~RE or NAME!~RE")


def label_name(text: str) -> str:
    """``text`` if it is a plain label name, else ``ValueError``."""
    if not LABEL_NAME.fullmatch(text):
        raise ValueError(f"label name {text!r}: expected letters, digits and _ (not starting with a digit)")
    return text


def silence_id(text: str) -> str:
    """``text`` if it is a silence id (a UUID), else ``ValueError``."""
    if not SILENCE_ID.fullmatch(text):
        raise ValueError(f"silence id {text!r}: expected a UUID like 1b4d3c2a-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
    return text


def fingerprint(text: str) -> str:
    """``text`` if it is an alert fingerprint (16 hex digits), else ``ValueError``."""
    if not FINGERPRINT.fullmatch(text):
        raise ValueError(f"fingerprint {text!r}: expected 16 hex digits like 3a1f09c2b4d5e6f7")
    return text


def matcher_text(matcher: dict[str, Any]) -> str:
    """An API v2 matcher as amtool writes it: ``name=value``, ``name!=value``, ``name=~re``, ``name!~re``."""
    op = ("=" if matcher.get("isEqual", True) else "!") + ("~" if matcher["isRegex"] else "")
    return f"{matcher['name']}{'!=' if op == '!' else op}{matcher['value']}"


def matches(matcher: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy one API v2 matcher (a missing label is the empty string, as in
    Alertmanager)."""
    value = labels.get(matcher["name"], "")
    found = (re.fullmatch(matcher["value"], value) is not None if matcher["isRegex"]
             else value == matcher["value"])
    return found == matcher.get("isEqual", True)


def silences_alert(silence: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether ``silence``'s matchers all match ``labels`` (whatever the silence's state)."""
    try:
        return all(matches(m, labels) for m in silence["matchers"])
    except re.error:
        return False


def utc(moment: datetime) -> str:
    """``moment`` as API v2 takes times: RFC 3339 in UTC."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def routing_only(config_text: str) -> str:
    """The config without its ``event_recorder``: the running Alertmanager shows that section's
    URL masked (``<secret>``), which amtool refuses, and routing does not read it."""
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return config_text
    if not isinstance(config, dict) or "event_recorder" not in config:
        return config_text
    config.pop("event_recorder")
    return yaml.safe_dump(config, sort_keys=False)


class Alertmanager(HttpBackend):
    name = "Alertmanager"

    def alerts(self) -> list[dict[str, Any]]:
        return self.shaped(self.get("/api/v2/alerts") or [], ALERTS)

    def silences(self) -> list[dict[str, Any]]:
        return self.shaped(self.get("/api/v2/silences") or [], SILENCES)

    def create_silence(self, matchers: list[dict[str, Any]], duration: timedelta, comment: str,
                       author: str, update: str | None = None,
                       annotations: dict[str, str] | None = None) -> str:
        """A new silence from now for ``duration`` (or silence ``update`` changed to that), with
        ``annotations`` (Alertmanager 0.34 keeps them with the silence); its id."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {"matchers": matchers, "startsAt": now.isoformat(),
                                "endsAt": (now + duration).isoformat(), "comment": comment,
                                "createdBy": author}
        if annotations:
            body["annotations"] = annotations
        if update is not None:
            body["id"] = silence_id(update)
        return self.shaped(self.post("/api/v2/silences", body), CREATED)["silenceID"]

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Send alerts as a rule evaluator does (labels, annotations, startsAt, endsAt,
        generatorURL); an ``endsAt`` in the past resolves the alert."""
        self.post("/api/v2/alerts", alerts)

    def expire_silence(self, silence: str) -> None:
        self.delete(f"/api/v2/silence/{path_segment(silence_id(silence))}")

    def config(self) -> str:
        """The configuration the running Alertmanager loaded (YAML text)."""
        return self.shaped(self.get("/api/v2/status"), STATUS)["config"]["original"]

    def receivers_for(self, labels: dict[str, str], config_text: str | None = None) -> list[str]:
        """Receivers the running configuration (or ``config_text``) routes ``labels`` to, as
        ``amtool`` computes it."""
        config_text = routing_only(self.config() if config_text is None else config_text)
        try:
            amtool = binary_path("amtool")
        except ToolError as exc:
            raise RuntimeError(f"{exc}; build it with `theodore-obs tools alertmanager`") from None
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "alertmanager.yml"
            config.write_text(config_text)
            run = subprocess.run([str(amtool), "config", "routes", "test", f"--config.file={config}",
                                  *(f"{label_name(k)}={v}" for k, v in labels.items())],
                                 capture_output=True, text=True, timeout=30, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"amtool config routes test failed: {(run.stderr or run.stdout).strip()}")
        return [r.strip() for r in run.stdout.strip().split(",") if r.strip()]
