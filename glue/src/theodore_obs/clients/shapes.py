"""Builders for the JSON Schemas of backend answers: only what the commands rely on.

A key the commands read is required with its type; anything else is allowed, so a newer
backend that adds fields still fits.
"""

from __future__ import annotations

from typing import Any

STR: dict[str, Any] = {"type": "string"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}
LABELS: dict[str, Any] = {"type": "object", "additionalProperties": STR}
"""A label set: names to string values."""
DIGITS: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]+$"}
SAMPLE_VALUE: dict[str, Any] = {
    "type": "string", "pattern": r"^([-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?|Inf)|NaN)$"}
"""A Prometheus sample value as its API writes it (``"1.5"``, ``"NaN"``, ``"+Inf"``)."""


def obj(optional: dict[str, Any] | None = None, **required: dict[str, Any]) -> dict[str, Any]:
    """An object with the ``required`` keys and, when present, the ``optional`` ones."""
    return {"type": "object", "required": sorted(required),
            "properties": {**(optional or {}), **required}}


def arr(items: dict[str, Any], min_items: int = 0, nullable: bool = False) -> dict[str, Any]:
    """An array of ``items`` (or ``null`` when ``nullable``: Jaeger answers ``"data": null``)."""
    return {"type": ["array", "null"] if nullable else "array", "items": items, "minItems": min_items}


def pair(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """An array starting ``[first, second]`` (more elements may follow)."""
    return {"type": "array", "prefixItems": [first, second], "minItems": 2}


SAMPLE = pair(NUM, SAMPLE_VALUE)
"""``[unix seconds, "value"]``."""


def log_record(time_pattern: str) -> dict[str, Any]:
    """One log of a VictoriaLogs JSON-lines answer: field names to string values, ``_time``
    required and matching ``time_pattern`` (the other fields are optional: empty ones are left out)."""
    return {"type": "object", "required": ["_time"],
            "properties": {"_time": {"type": "string", "pattern": f"^{time_pattern}$"}},
            "additionalProperties": STR}
