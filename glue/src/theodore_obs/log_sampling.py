"""The collector's log sampling policy, from the spec's ``sampling.logs`` to template values.

Always kept: WARN and above, every line of a sampled trace, and the audit trail (which leaves
for its own store before sampling). DEBUG and INFO lines are kept at the service's percent
(``services``), else at ``keep_percent``. With every percent at 100 nothing is rendered: the
pipeline has no sampler at all.
"""

from __future__ import annotations

from typing import Any

PRIORITY_ATTRIBUTE = "theodore.sampling.priority"
"""Per record, the percent of its kind kept (the sampler's ``sampling_priority``); removed after."""

KEY_ATTRIBUTE = "theodore.sampling.key"
"""Per record, a random key: the sampler's randomness for a line outside a trace; removed after."""

PROCESSORS = ["transform/log-sampling-priority", "probabilistic_sampler/logs",
              "transform/log-sampling-cleanup"]


def log_sampling_context(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The ``log_sampling`` template value, or None when every line is kept."""
    policy = spec["sampling"]["logs"]
    services = {name: _percent(p) for name, p in sorted(policy["services"].items())}
    if policy["keep_percent"] >= 100 and all(p >= 100 for p in services.values()):
        return None
    return {"keep_percent": _percent(policy["keep_percent"]), "services": services,
            "priority": PRIORITY_ATTRIBUTE, "key": KEY_ATTRIBUTE, "processors": PROCESSORS}


def _percent(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)
