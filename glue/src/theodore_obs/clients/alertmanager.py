"""Alertmanager's API v2 (alerts, silences, status) and routing through ``amtool``."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..tools import ToolError, binary_path
from ._http import HttpBackend

MATCH_OPERATORS = ("!~", "=~", "!=", "=")


def parse_matcher(text: str) -> dict[str, Any]:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex`` as an API v2 matcher."""
    for op in MATCH_OPERATORS:
        name, found, value = text.partition(op)
        if found and name.strip():
            return {"name": name.strip(), "value": value.strip().strip('"'),
                    "isRegex": "~" in op, "isEqual": not op.startswith("!")}
    raise ValueError(f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~RE or NAME!~RE")


class Alertmanager(HttpBackend):
    name = "Alertmanager"

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v2/alerts") or []

    def silences(self) -> list[dict[str, Any]]:
        return self.get("/api/v2/silences") or []

    def create_silence(self, matchers: list[dict[str, Any]], duration: timedelta, comment: str,
                       author: str) -> str:
        now = datetime.now(UTC)
        body = {"matchers": matchers, "startsAt": now.isoformat(), "endsAt": (now + duration).isoformat(),
                "comment": comment, "createdBy": author}
        return self.post("/api/v2/silences", body)["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        self.delete(f"/api/v2/silence/{silence_id}")

    def config(self) -> str:
        """The configuration the running Alertmanager loaded (YAML text)."""
        return self.get("/api/v2/status")["config"]["original"]

    def receivers_for(self, labels: dict[str, str]) -> list[str]:
        """Receivers the running configuration routes ``labels`` to, as ``amtool`` computes it."""
        try:
            amtool = binary_path("amtool")
        except ToolError as exc:
            raise RuntimeError(f"{exc}; build it with `theodore-obs tools alertmanager`") from None
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "alertmanager.yml"
            config.write_text(self.config())
            run = subprocess.run([str(amtool), "config", "routes", "test", f"--config.file={config}",
                                  *(f"{k}={v}" for k, v in labels.items())],
                                 capture_output=True, text=True, timeout=30, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"amtool config routes test failed: {(run.stderr or run.stdout).strip()}")
        return [r.strip() for r in run.stdout.strip().split(",") if r.strip()]
