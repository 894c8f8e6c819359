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

VALUE_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),   # JWT
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"),                          # OpenAI / Anthropic
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),                                            # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),                                  # GitHub token
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),                                 # Slack token
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),                                       # Google API key
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),                                 # user:pass@ in URLs
)

NAMED_VALUE = re.compile(
    r"(?i)\b(password|passwd|secret|token|api_key|apikey|authorization)([=:]\s*)[^\s,;&\"']+")
"""`password=hunter2`, `token: abc` written into a message: the name stays, the value goes."""


def words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


class Redactor:
    """Replaces sensitive values in nested dicts, lists and strings with ``[REDACTED]``."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self.single = {k for k in sensitive_keys if len(words(k)) == 1}
        self.compound = {tuple(words(k)) for k in sensitive_keys if len(words(k)) > 1}

    def is_sensitive(self, key: str) -> bool:
        parts = words(key)
        if not parts:
            return False
        if any(part in ALWAYS_SECRET for part in parts) or parts[-1] in self.single:
            return True
        return any(tuple(parts[-len(c):]) == c for c in self.compound)

    def text(self, value: str) -> str:
        for pattern in VALUE_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return NAMED_VALUE.sub(rf"\1\2{REDACTED}", value)

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
        return self.value(event_dict)
