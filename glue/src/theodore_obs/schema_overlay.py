"""The schema of an environment overlay, generated from the base schema so the two cannot drift.

An overlay is any part of the spec, deep-merged over the base: the base's schema with nothing
required (``required``, and the conditional requirements ``if``/``then``/``else``, dropped at
every level). ``python -m theodore_obs.schema_overlay`` writes it into ``stack.schema.json`` as
``$defs.overlay`` (what editors read); the loader builds it the same way at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .paths import repo_root

REQUIREMENTS = frozenset({"required", "if", "then", "else", "dependentRequired"})
NAMED_SCHEMAS = frozenset({"properties", "patternProperties"})
BASE_ONLY = frozenset({"environments"})
DESCRIPTION = "An environment overlay: any part of the spec, nothing required, deep-merged over the base."


def optional(schema: Any) -> Any:
    """``schema`` with every requirement dropped (property names are kept as they are)."""
    if isinstance(schema, list):
        return [optional(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {key: ({name: optional(sub) for name, sub in value.items()} if key in NAMED_SCHEMAS
                  else optional(value))
            for key, value in schema.items() if key not in REQUIREMENTS}


def overlay_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``$defs.overlay`` schema the base ``schema`` implies."""
    return {"description": DESCRIPTION, "type": "object", "additionalProperties": False,
            "properties": {name: optional(sub) for name, sub in schema["properties"].items()
                           if name not in BASE_ONLY}}


def with_overlay(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs.overlay`` regenerated."""
    return {**schema, "$defs": {**schema.get("$defs", {}), "overlay": overlay_of(schema)}}


def main(path: Path | None = None) -> int:
    path = path or repo_root() / "stack.schema.json"
    schema = json.loads(path.read_text())
    path.write_text(json.dumps(with_overlay(schema), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote $defs.overlay of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
