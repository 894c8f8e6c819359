"""Limits a spec must keep before it is used: size, alias expansion, and what a value may hold.

A spec is hostile until checked. These checks run before the schema and name the YAML path of
what they refuse:
- the file is at most ``MAX_SPEC_BYTES`` and UTF-8;
- aliases cannot multiply the document: the tree as expanded has at most ``MAX_NODES`` nodes
  (a "billion laughs" spec is refused from its node graph, before anything is built from it);
- every key is a string; every string is at most ``MAX_STRING`` characters and holds no control
  character, line or paragraph separator, byte-order mark or lone surrogate (a value is one line
  of data, never syntax of the files it is rendered into); every number is finite.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import yaml

MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 100_000
MAX_STRING = 4096

FORBIDDEN_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")
"""C0 and C1 controls (newline and tab among them), DEL, U+2028/U+2029, BOM, lone surrogates."""


class Refusal(ValueError):
    """A limit the spec broke, with the key path (a list) where it broke it."""

    def __init__(self, keys: list[Any], message: str) -> None:
        self.keys = keys
        super().__init__(message)


def decode(raw: bytes) -> str:
    """The spec's text, or a Refusal saying where it is not UTF-8 or that it is too large."""
    if len(raw) > MAX_SPEC_BYTES:
        raise Refusal([], f"{len(raw)} bytes is larger than the {MAX_SPEC_BYTES} a spec may have")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal([], f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from exc


def expanded_size(root: yaml.Node | None) -> int:
    """Nodes in the tree ``root`` stands for once every alias is expanded, counted over the graph
    (each node once, shared children counted by their expanded size), stopping past the limit."""
    if root is None:
        return 0
    sizes: dict[int, int] = {}
    for node in _post_order(root):
        children = _children(node)
        sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(sizes[id(child)] for child in children))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _post_order(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every distinct node, children before parents, without recursion (deep specs are fine)."""
    done: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)


def check_graph(root: yaml.Node | None) -> None:
    if expanded_size(root) > MAX_NODES:
        raise Refusal([], f"aliases expand it past {MAX_NODES} values (an alias bomb?)")


def check_values(data: Any) -> None:
    """Refuse the first key or value that breaks a limit, naming its path."""
    stack: list[tuple[list[Any], Any]] = [([], data)]
    while stack:
        keys, value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if not isinstance(key, str):
                    raise Refusal([*keys, key], f"keys must be strings, got {type(key).__name__} {key!r}")
                _check_string(keys, key, "key")
                stack.append(([*keys, key], child))
        elif isinstance(value, list):
            stack.extend(([*keys, index], child) for index, child in enumerate(value))
        elif isinstance(value, str):
            _check_string(keys, value, "value")
        elif isinstance(value, float) and not math.isfinite(value):
            raise Refusal(keys, f"expected a finite number, got {value}")


def _check_string(keys: list[Any], text: str, what: str) -> None:
    if len(text) > MAX_STRING:
        raise Refusal(keys, f"this {what} has {len(text)} characters, more than the {MAX_STRING} allowed")
    bad = FORBIDDEN_CHARACTERS.search(text)
    if bad:
        raise Refusal(keys, f"this {what} contains the control or separator character "
                            f"U+{ord(bad.group()):04X} at position {bad.start()}: "
                            "a value is one line of text")
