"""How a value may enter a rendered file: through a serializer, or as a fragment that cannot be syntax.

Every ``{{ expression }}`` of a template passes ``finalize``: numbers, and strings made only of
``PLAIN`` characters (names, hosts, paths, durations), are written as they are; text that is
already safe is ``Markup`` (the environment autoescapes, so a macro's output is ``Markup`` made of
checked parts, and ``Fragment`` is YAML text that Python helpers built from serialized values);
anything else must have gone through a serializer filter, which returns ``Serialized`` text:
- ``tojson``: a JSON value, which is also a YAML flow scalar (double-quoted strings), so quotes,
  ``#``, ``: `` and brackets in a value stay data in YAML and JSON files alike.
Escapes for what a consumer would otherwise expand in a value, applied before ``tojson``:
- ``gotmpl``: Go-template text (Alertmanager notification fields, Prometheus annotations) gets
  ``{{`` as a literal, so ``{{ .ExternalURL }}`` in a spec value is shown, never executed;
- ``nodollar``: ``$`` doubled where the consumer expands ``$VAR``/``${VAR}`` (the collector's
  config, compose files, Grafana provisioning), so a value cannot read the environment;
- ``promql_str``: a PromQL string literal (``"…"`` with backslash escapes) for label values;
- ``line``: text placed inside a YAML block scalar (``expr: |``) or a comment, where only a line
  break could end it: refused if it has one;
- ``dq`` / ``sq``: text placed inside a double-quoted (JSON escapes) or single-quoted (``''``)
  YAML string that also holds template text, e.g. Go-template annotations.
A string of other characters without a serializer stops the render (``UnsafeValue``). Nothing
is HTML-escaped: every string that reaches the escaper is ``PLAIN`` or already ``Markup``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jinja2 import Undefined
from markupsafe import Markup

from .clients.prometheus import label_value as promql_str

PLAIN = re.compile(r"[A-Za-z0-9_./:@+=-]*| +")
"""Characters no YAML, JSON or Go-template consumer reads as syntax inside a scalar (or only
spaces: the indentation a macro is given)."""


class Fragment(Markup):
    """Config text (e.g. YAML lines) built only from serialized or plain values."""


class Serialized(Markup):
    """Text a serializer produced from ``value``: safe to place as a whole scalar."""

    value: Any

    def __new__(cls, text: str = "", value: Any = None) -> Serialized:
        made = super().__new__(cls, text)
        made.value = value
        return made


class UnsafeValue(ValueError):
    """A value would be pasted into a file as text it could be read as syntax."""

    def __init__(self, value: Any, why: str) -> None:
        self.value = value
        shown = repr(value)
        super().__init__(f"{why}: {shown[:80] + '…' if len(shown) > 80 else shown}")


def tojson(value: Any, indent: int | None = None) -> Serialized:
    """``value`` as JSON (finite numbers only; YAML line breaks escaped too)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)
    except ValueError as exc:
        raise UnsafeValue(value, "not a finite number") from exc
    for char in ("\u2028", "\u2029", "\x85"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return Serialized(text, value)


def gotmpl(value: str) -> str:
    """``value`` as literal text inside a Go template: each ``{{`` printed, not executed."""
    return str(value).replace("{{", '{{ "{{" }}')


def nodollar(value: str) -> str:
    """``value`` with ``$`` doubled, for consumers that expand environment variables."""
    return str(value).replace("$", "$$")


def line(value: str) -> Fragment:
    """``value`` as one line of a YAML block scalar (no line break can end the scalar early)."""
    text = str(value)
    if any(char in text for char in "\r\n\x85\u2028\u2029"):
        raise UnsafeValue(value, "a line break would end the block scalar")
    return Fragment(text)


def dq(value: str) -> Fragment:
    """``value`` escaped for the inside of a double-quoted YAML or JSON string."""
    return Fragment(tojson(str(value))[1:-1])


def sq(value: str) -> Fragment:
    """``value`` escaped for the inside of a single-quoted YAML string (one line)."""
    return line(str(value).replace("'", "''"))


def finalize(value: Any) -> Any:
    """What every ``{{ }}`` writes: serialized text, a finite number, or a plain fragment."""
    if isinstance(value, Markup | Undefined):  # an undefined name raises its own error when written
        return value
    if isinstance(value, bool) or value is None:
        raise UnsafeValue(value, "write booleans and nulls through | tojson")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeValue(value, "not a finite number")
        return value
    if isinstance(value, str) and PLAIN.fullmatch(value):
        return value
    raise UnsafeValue(value, "a value with characters YAML, JSON or Go templates read as syntax "
                             "must pass a serializer (| tojson)")


FILTERS = {"tojson": tojson, "gotmpl": gotmpl, "nodollar": nodollar, "promql_str": promql_str,
           "line": line, "dq": dq, "sq": sq}
