"""Every rendered file, parsed back as its consumer will parse it, must mean what the spec said.

YAML files are read with a YAML parser and JSON files with a strict JSON parser (no ``NaN``).
Each string a template passed through a serializer must come back as one whole scalar (a key
or a value) of the parsed file: if a value had broken out of its quotes, or been pasted into a
larger scalar around its quotes, it would not. A problem names the file and, where the value
came from the spec, the spec path holding it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from .spec import SAFE_LOADER
from .template_filters import PLAIN, Serialized


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    spec_path: str | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(relative: str, text: str) -> list[Any] | None:
    """The documents of a YAML or JSON file (None for other kinds); ValueError if it does not parse."""
    if relative.endswith(".json"):
        return [json.loads(text, parse_constant=_refuse_constant)]
    if relative.endswith((".yaml", ".yml")):
        try:
            return list(yaml.load_all(text, Loader=SAFE_LOADER))
        except yaml.YAMLError as exc:
            raise ValueError(f"does not parse as YAML: {exc}") from exc
    return None


def strings(data: Any) -> Iterator[str]:
    """Every string in ``data``, keys included."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def spec_paths_holding(spec: dict[str, Any], value: Any, plain_too: bool = False) -> str | None:
    """The dotted spec path of the longest string that ``value`` (a string) is or contains;
    strings of plain characters only count with ``plain_too`` (they are everywhere)."""
    if not isinstance(value, str):
        return None
    best: tuple[int, str] | None = None
    stack: list[tuple[str, Any]] = [("", spec)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}".lstrip("."), v) for i, v in enumerate(item))
        elif (isinstance(item, str) and len(item) > 2 and item in value
              and (plain_too or not PLAIN.fullmatch(item)) and (best is None or len(item) > best[0])):
            best = (len(item), path)
    return best[1] if best else None


def check_file(relative: str, text: str, serialized: list[Serialized],
               spec: dict[str, Any]) -> Problem | None:
    """The first way ``text`` fails to parse or to carry a serialized string whole, if any."""
    try:
        documents = parse(relative, text)
    except ValueError as exc:
        return Problem(relative, str(exc)[:300])
    if documents is None:
        return None
    scalars = set(strings(documents))
    for made in serialized:
        for value in strings(made.value):
            if value not in scalars:
                return Problem(relative, f"the value {value[:80]!r} does not come back whole "
                                         "when the file is parsed", spec_paths_holding(spec, value))
    return None
