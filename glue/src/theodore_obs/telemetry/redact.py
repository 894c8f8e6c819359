"""Redaction of secrets in log events: by key name and by the shape of the value.

Key rule, on the key's *words* (split on non-alphanumerics and camelCase):
- a word that always means a secret (``password``, ``secret``, ``credential``,
  ``authorization``) makes the key sensitive wherever it stands: ``password_hash``;
- the other sensitive words and compounds count only as the key's last words, which name what
  the value is: ``api_key``, ``X-Auth-Token``, ``sessionId`` are redacted, while
  ``token_count`` (a number of tokens) is not.
Substring matching is not used: it would hide ``monkey``, ``keyboard`` and ``author``.

Value rule: substrings shaped like bearer tokens, JWTs, well-known API keys or passwords in
URLs are replaced wherever they appear, whatever the key (a message included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

DEFAULT_SENSITIVE_KEYS = ("password", "token", "key", "secret", "api_key", "authorization",
                          "credential", "auth", "session_id")
"""Seed 003's list; compounds (``api_key``) match two adjacent words."""

ALWAYS_SECRET = frozenset({"password", "passwords", "passwd", "secret", "secrets", "credential",
                           "credentials", "authorization"})

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

SECRET_SHAPES = re.compile("|".join(f"(?:{shape})" for shape in (
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",   # JWT
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}",                          # OpenAI / Anthropic
    r"\bAKIA[0-9A-Z]{16}\b",                                            # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",                                  # GitHub token
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",                                 # Slack token
    r"\bAIza[0-9A-Za-z_-]{35}\b",                                       # Google API key
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",                                 # user:pass@ in URLs
)))
"""Every value shape that is a secret wherever it appears, as one pattern (one pass a string)."""

NAMED_VALUE = re.compile(
    r"(?i)\b(password|passwd|secret|token|api_key|apikey|authorization)([=:]\s*|%3D|%3A)[^\s,;&\"']+")
"""`password=hunter2`, `token: abc` written into a message, or percent-encoded inside a URL
(`note=password%3Dhunter2` in an access log line): the name stays, the value goes."""


ANY_SECRET = re.compile(f"{SECRET_SHAPES.pattern}|{NAMED_VALUE.pattern.removeprefix('(?i)')}", re.IGNORECASE)
"""Either of the above: one scan tells whether a string needs rewriting (most do not)."""

SHORTEST_SECRET = 7
"""No shape above matches a shorter string (``token:x``), so shorter ones skip the regexes."""

OWN_FIELDS = frozenset({"timestamp", "level", "logger", "trace_id", "span_id", "service",
                        "environment", "category", "component"})
"""Fields our own code fills; their values are never secrets, so they are not scanned.
(``correlation_id`` is not one: it comes from a client's header.)"""


CACHED_TEXTS = 4096
"""Distinct short strings (log messages, enum-like values) whose redaction is remembered."""

CACHED_TEXT_LENGTH = 256
"""Longer strings (payloads, one-off values) are scanned every time and not kept."""


def _rewrite(value: str) -> str:
    return NAMED_VALUE.sub(rf"\1\2{REDACTED}", SECRET_SHAPES.sub(REDACTED, value))


def words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


class Redactor:
    """Replaces sensitive values in nested dicts, lists and strings with ``[REDACTED]``."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self.single = {k for k in sensitive_keys if len(words(k)) == 1}
        self.compound = {tuple(words(k)) for k in sensitive_keys if len(words(k)) > 1}
        self._verdicts: dict[str, bool] = {}
        self._texts: dict[str, str] = {}

    def is_sensitive(self, key: str) -> bool:
        """Whether ``key`` names a secret; remembered per key (a service logs few distinct keys)."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._judge(key)
        return verdict

    def _judge(self, key: str) -> bool:
        parts = words(key)
        if not parts:
            return False
        if any(part in ALWAYS_SECRET for part in parts) or parts[-1] in self.single:
            return True
        return any(tuple(parts[-len(c):]) == c for c in self.compound)

    def text(self, value: str) -> str:
        """``value`` with every secret-shaped substring replaced; repeated strings are remembered."""
        if len(value) < SHORTEST_SECRET:
            return value
        done = self._texts.get(value)
        if done is None:
            done = _rewrite(value) if ANY_SECRET.search(value) else value
            if len(value) <= CACHED_TEXT_LENGTH:
                if len(self._texts) >= CACHED_TEXTS:
                    self._texts.clear()
                self._texts[value] = done
        return done

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: REDACTED if isinstance(k, str) and self.is_sensitive(k) else self.value(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.value(v) for v in value]
        return value

    def __call__(self, logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """structlog processor: redact every field of the event, the message included."""
        return {k: v if k in OWN_FIELDS else REDACTED if self.is_sensitive(k) else self.value(v)
                for k, v in event_dict.items()}
