"""Redaction of secrets in log events: by key name and by the shape of the value.

Key rule, on the key's *words* (split on non-alphanumerics and camelCase, lower-cased, with
trailing qualifiers such as ``_value`` or ``_b64`` dropped):
- a word that always means a secret (``password``, ``pwd``, ``secret``, ``cookie``,
  ``apikey``, ``sessionid``…) makes the key sensitive wherever it stands: ``password_hash``;
- the other sensitive words and compounds count only as the key's last words, which name what
  the value is: ``api_key``, ``X-Auth-Token``, ``db_pass``, ``session`` are redacted, while
  ``token_count`` (a number of tokens) is not; ``key`` and ``token`` after a word that makes
  them an identifier (``primary_key``, ``cache_key``, ``page_token``) are not secrets either.
Substring matching is used only for unmistakable fused stems (``PGPASSWORD``, ``XAPIKEY``):
in general it would hide ``monkey``, ``keyboard`` and ``author``.

Value rule: one compiled pattern, run once over every string that leaves the process (the
message, formatted arguments, exception text, keys and values of nested containers, fields
our own processors fill, all but the timestamp), replaces what is a secret wherever it
appears: vendor tokens by their published prefixes, JWTs, PEM private keys, credentials in
URLs, bearer and basic credentials, Luhn-valid card numbers, and ``name=value`` / ``name:
value`` / ``"name": "value"`` pairs whose name the key rule calls sensitive.

The vendor prefixes follow the rule sets secret scanners publish (Yelp's detect-secrets
1.5.0 plugins, Apache-2.0, and the vendors' own documentation). detect-secrets itself is
not a dependency: its scan runs each plugin's regexes plus entropy checks over a line,
about 650 µs per line here, against a whole log call's budget of about 20 µs.

A redaction that fails never raises into the application: the field becomes
``[UNREDACTABLE]`` and the rest of the event is emitted.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

REDACTED = "[REDACTED]"
UNREDACTABLE = "[UNREDACTABLE]"
"""What a field becomes when redacting it raised: never the original value."""

TOO_DEEP = "[TOO DEEP]"
MAX_DEPTH = 16
"""Containers nested deeper are cut (a self-referencing one would never end)."""

DEFAULT_SENSITIVE_KEYS = ("password", "token", "key", "secret", "api_key", "authorization",
                          "credential", "auth", "session_id", "pass", "session", "dsn", "otp",
                          "private_key", "access_key", "client_secret", "sig")
"""Seed 003's list and the short names real services use; compounds (``api_key``) match
adjacent words."""

ALWAYS_SECRET = frozenset({
    "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "credential",
    "credentials", "authorization", "cookie", "cookies", "apikey", "apikeys", "privatekey",
    "clientsecret", "sessionid", "sessid", "phpsessid", "jsessionid", "accesstoken",
    "refreshtoken", "authtoken", "csrftoken", "xsrftoken"})

SECRET_STEMS = ("password", "passwd", "apikey", "privatekey", "sessionid", "secretkey",
                "clientsecret", "accesstoken", "refreshtoken", "authtoken")
"""Fused into one upper-case word (``PGPASSWORD``, ``XAPIKEY``) they still mean a secret."""

IDENTIFIER_QUALIFIERS = frozenset({
    "primary", "foreign", "cache", "sort", "partition", "idempotency", "dedup", "dedupe",
    "lookup", "group", "routing", "object", "row", "unique", "composite", "natural", "shard",
    "index", "public", "bucket", "map", "dict", "hash", "range", "join", "order", "surrogate",
    "message", "event", "item", "config", "setting", "registry", "translation", "label",
    "metric", "tag", "column", "field", "attribute", "attr", "table", "redis", "s3", "hot",
    "next", "page", "pagination", "continuation", "cursor", "sync", "max", "min", "total",
    "input", "output", "prompt", "completion", "num", "cluster", "sharding", "i18n"})
"""Words before ``key`` / ``token`` that make the value an identifier, not a secret."""

QUALIFIED = frozenset({"key", "token", "sig"})

IGNORED_SUFFIXES = frozenset({"value", "val", "str", "string", "raw", "b64", "base64", "hex",
                              "header", "hdr", "encoded", "plain", "plaintext", "enc", "env"})
"""Trailing words that only say how the value is written: ``api_key_b64`` is an ``api_key``."""

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

VENDOR_TOKENS = (
    r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36,}", r"github_pat_[A-Za-z0-9_]{22,}",   # GitHub
    r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_-]{20,}",
    r"GR1348941[A-Za-z0-9_-]{20,}",                                                   # GitLab
    r"xox[aboprse]-[A-Za-z0-9-]{10,}", r"xapp-\d-[A-Za-z0-9-]{10,}",                  # Slack
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}", r"whsec_[A-Za-z0-9]{24,}",           # Stripe
    r"sk-ant-[A-Za-z0-9_-]{16,}",                                                     # Anthropic
    r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{16,}", r"sk-[A-Za-z0-9]{20,}",          # OpenAI
    r"AIza[0-9A-Za-z_-]{35}", r"GOCSPX-[A-Za-z0-9_-]{24,}", r"ya29\.[0-9A-Za-z_-]{20,}",  # Google
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",                               # AWS key id
    r"npm_[A-Za-z0-9]{36}", r"pypi-[A-Za-z0-9_-]{50,}",                               # npm, PyPI
    r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",                                    # SendGrid
    r"(?:SK|AC)[0-9a-fA-F]{32}",                                                      # Twilio
    r"[0-9a-f]{32}-us\d{1,2}",                                                        # Mailchimp
    r"[MNO][A-Za-z\d_-]{23,25}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,}",                  # Discord
    r"\d{8,10}:[0-9A-Za-z_-]{35}",                                                    # Telegram
    r"sq0(?:csp|atp)-[0-9A-Za-z_-]{22,}",                                             # Square
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",                                            # Shopify
    r"hv[sb]\.[A-Za-z0-9_-]{24,}",                                                    # Vault
    r"do[por]_v1_[a-f0-9]{64}",                                                       # DigitalOcean
    r"hf_[A-Za-z0-9]{30,}",                                                           # Hugging Face
    r"dapi[a-f0-9]{32}",                                                              # Databricks
    r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}", r"glc_[A-Za-z0-9+/]{32,}={0,2}",          # Grafana
    r"NRAK-[A-Z0-9]{27}", r"sntrys_[A-Za-z0-9+/=_]{50,}", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    r"ATATT3[A-Za-z0-9_=-]{20,}", r"lin_api_[A-Za-z0-9]{40}", r"dp\.pt\.[A-Za-z0-9]{40,}",
    r"AGE-SECRET-KEY-1[0-9A-Z]{58}", r"AKC[a-zA-Z0-9]{10,}",                          # age, Artifactory
)
"""Tokens by their published prefixes, each a whole word."""

HEADER_NAMES = r"(?:set-)?cookie|proxy-authorization|authorization"
"""Headers whose whole value (to the end of the line) is a secret, cookies after the first."""

NAME = r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]{0,63}+)"
SEPARATOR = r"(?P<sep>\\*[\"'](?:\s*[:=,]\s*|\s*%3[aAdD])|\s*[:=](?!//)\s*|%3[aAdD])"
VALUE = re.compile(r"\\*\"(?:[^\"\\\r\n]|\\++[^\"\\\r\n])*\\*\"|'[^'\r\n]*'"
                   r"|(?:(?i:bearer|basic|digest|token|negotiate)\s+)?[^\s,;&\"'<>\\]+")
"""A quoted value (its quotes escaped once, or twice in a ``repr``) or a bare one: matched
after a sensitive name only, so a long run of harmless ``a:b:c…`` pairs is read once."""

SHAPES = {
    "pem": r"(?s:-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,10}-----.*?"
           r"(?:-----END[A-Z0-9 ]{0,40}-----|\Z))",
    "header": rf"(?i:\b(?P<header>{HEADER_NAMES}))(?P<hsep>\s*:\s*)[^\r\n]+",
    "userinfo": r"(?<=://)(?:[^\s/@:]*:[^\s/@]+|[A-Za-z0-9_-]{20,})(?=@)",
    "slack_hook": r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]+",
    "vendor": r"(?<![\w-])(?:" + "|".join(VENDOR_TOKENS) + r")(?![\w-])",
    "jwt": r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    "bearer": r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    "basic": r"\b(?i:basic)\s+(?P<basic>[A-Za-z0-9+/]{8,}={0,2})",
    "named": NAME + SEPARATOR,
    "uuid": r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])",
    "card": r"(?<![0-9A-Za-z.])[2-6]\d(?:[ -]?\d){11,17}(?![0-9A-Za-z])",
    "aws_secret": r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
}
"""Every value shape, in the order tried at one position: a URL's credentials or a header before
the ``name: value`` pair that would otherwise swallow them."""

SECRET_PATTERN = re.compile("|".join(f"(?P<{name}_>{shape})" for name, shape in SHAPES.items()))
"""All of the above as one pattern: one pass over a string."""

SHORTEST_SECRET = 7
"""No shape above matches a shorter string (``token:x``), so shorter ones skip the pattern."""

SHORTEST_TOKEN = 13
"""No vendor token, JWT or AWS key is shorter (``AKC`` and ten characters)."""

MARKS = (":", "=", "%3", "@", "-----BEGIN", "earer", "asic", "EARER", "ASIC")
"""What every other shape holds: a separator, a URL's ``@``, a PEM header, ``Bearer``/``Basic``."""

_DIGITS = re.compile(r"\d\d\d\d")
"""Four digits in a row: what every way of writing a card number holds."""

PLAIN_ID = re.compile(r"[0-9]*+[a-f][0-9a-f]*+|[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
"""A whole string no shape can match: lower-case hex with a letter in it (a trace or span ID,
a digest; every vendor token needs a prefix, separator or capital outside that alphabet, and the
letter breaks a card's digit run), or a UUID (matched whole by ``uuid`` and kept). Each
request's new IDs skip the pattern and are not remembered (they would churn the cache)."""

CACHED_TEXTS = 4096
"""Distinct short strings (log messages, enum-like values) whose redaction is remembered."""

CACHED_TEXT_LENGTH = 256
"""Longer strings (payloads, one-off values) are scanned every time and not kept."""

NATIVE = (bool, int, float, datetime.datetime, datetime.date, datetime.time, uuid.UUID)
"""Values the JSON encoder writes itself, holding no text to scan."""

UNTOUCHED_FIELDS = frozenset({"timestamp"})
"""Fields our chain always overwrites (``ISOTimeStamper`` runs after every user field is in)."""


def words(key: str) -> list[str]:
    """The key's lower-cased words: ``X-Api-Key`` and ``xApiKey`` are both ``x api key``."""
    return [w.lower() for w in _WORD.findall(key)]


def may_hold_secret(text: str) -> bool:
    """A quick test, in a fraction of the pattern's time, that rules out most prose: without
    a mark, four digits or a long word, no shape can match."""
    return (any(mark in text for mark in MARKS) or _DIGITS.search(text) is not None
            or max(map(len, text.split()), default=0) >= SHORTEST_TOKEN)


def luhn(digits: str) -> bool:
    """Whether a card number's check digit is right (ISO/IEC 7812)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn(digits)


def _is_basic_credential(encoded: str) -> bool:
    """``Basic`` followed by base64 of ``user:password`` (not the word ``Basic authentication``)."""
    try:
        return b":" in base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def _is_aws_secret(candidate: str) -> bool:
    """40 base64 characters of every kind, unlike a hex digest or a path of words."""
    return (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and candidate.count("/") + candidate.count("+") <= 4)


def _never(candidate: str) -> bool:
    return False


VALIDATED = {"uuid_": _never, "card_": _is_card, "aws_secret_": _is_aws_secret}
"""Shapes whose match is a secret only if it passes a check. A UUID (a request's correlation
ID, a row's key) is matched whole so that no card number is read into its digit groups (one
UUID4 in a thousand holds a Luhn-valid run), and kept."""


_QUOTE = re.compile(r"\\*[\"']")


def _quoted(value: str) -> str:
    """``REDACTED`` in the quotes ``value`` had, so quoted text stays well-formed."""
    quote = _QUOTE.match(value)
    if quote and len(value) >= 2 * len(quote.group()) and value.endswith(quote.group()):
        return f"{quote.group()}{REDACTED}{quote.group()}"
    return REDACTED


def _replace(match: re.Match[str]) -> str:
    """What one match of a shape of ``SECRET_PATTERN`` other than ``named`` becomes."""
    kind, found = match.lastgroup or "", match.group()
    if kind == "header_":
        return match.group("header") + match.group("hsep") + REDACTED
    if kind == "basic_":
        return REDACTED if _is_basic_credential(match.group("basic")) else found
    check = VALIDATED.get(kind)
    return found if check is not None and not check(found) else REDACTED


class Redactor:
    """structlog processor replacing sensitive values anywhere in an event with ``[REDACTED]``."""

    def __init__(self, sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS) -> None:
        self.single = {k for k in sensitive_keys if len(words(k)) == 1}
        self.compound = {tuple(words(k)) for k in sensitive_keys if len(words(k)) > 1}
        self._verdicts: dict[str, bool] = {}
        self._texts: dict[str, str] = {}

    def is_sensitive(self, key: str) -> bool:
        """Whether ``key`` names a secret; remembered per key (a service logs few distinct keys)."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= CACHED_TEXTS:
                self._verdicts.clear()
            verdict = self._verdicts[key] = self._judge(key)
        return verdict

    def _judge(self, key: str) -> bool:
        parts = words(key)
        while len(parts) > 1 and parts[-1] in IGNORED_SUFFIXES:
            parts.pop()
        if not parts:
            return False
        if any(p in ALWAYS_SECRET or any(s in p for s in SECRET_STEMS) for p in parts):
            return True
        last = parts[-1]
        if last in self.single:
            return not (last in QUALIFIED and len(parts) > 1 and parts[-2] in IDENTIFIER_QUALIFIERS)
        return any(tuple(parts[-len(c):]) == c for c in self.compound)

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced; repeated short strings are remembered."""
        done = self._texts.get(value)
        if done is None:
            if PLAIN_ID.fullmatch(value):
                return value
            done = self._rewrite(value) if len(value) >= SHORTEST_SECRET and may_hold_secret(value) else value
            if len(value) <= CACHED_TEXT_LENGTH:
                if len(self._texts) >= CACHED_TEXTS:
                    self._texts.clear()
                self._texts[value] = done
        return done

    def _rewrite(self, text: str) -> str:
        """One pass of ``SECRET_PATTERN`` over ``text``. After a ``name: `` whose name is not
        sensitive the scan goes on at the value, in its context (``said: Set-Cookie: …``,
        ``url=https://user:pw@…``)."""
        out, pos = [], 0
        while (match := SECRET_PATTERN.search(text, pos)) is not None:
            out.append(text[pos:match.start()])
            pos = match.end()
            if match.lastgroup != "named_":
                out.append(_replace(match))
                continue
            out.append(match.group())
            value = VALUE.match(text, pos) if self.is_sensitive(match.group("name")) else None
            if value is not None:
                out.append(_quoted(value.group()))
                pos = value.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def value(self, value: Any, depth: int = 0) -> Any:
        """``value`` as the JSON encoder would write it, every secret in it replaced."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, NATIVE):
            return value
        return self._object(value, depth) if depth < MAX_DEPTH else TOO_DEEP

    def _object(self, value: Any, depth: int) -> Any:
        """Containers of any kind are walked (a set becomes a list, a non-string key a string);
        dataclasses become their fields, enums their value; other objects their redacted
        ``repr``, which is what ``logs.dumps`` would otherwise write unscanned."""
        if isinstance(value, Mapping):
            return {self._key(k): REDACTED if isinstance(k, str) and self.is_sensitive(k)
                    else self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return self._items(value, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth)
        if isinstance(value, Enum):
            return self.value(value.value, depth)
        return self.text(repr(value))

    def _items(self, items: list | tuple | set | frozenset, depth: int) -> list[Any]:
        """A sequence's items redacted; a ``(name, value)`` pair with a sensitive name (a
        header tuple) loses its value."""
        if (len(items) == 2 and isinstance(items, list | tuple) and isinstance(items[0], str)
                and self.is_sensitive(items[0])):
            return [self.text(items[0]), REDACTED]
        return [self.value(v, depth + 1) for v in items]

    def _key(self, key: Any) -> Any:
        """A mapping key the encoder can write: strings scanned, other objects as text."""
        if isinstance(key, str):
            return self.text(key)
        if key is None or isinstance(key, bool | int | float):
            return key
        return self.text(str(key))

    def field(self, key: str, value: Any) -> Any:
        """One top-level field of an event, redacted."""
        if key in UNTOUCHED_FIELDS or isinstance(value, logging.LogRecord):
            return value  # the stdlib record: read by later processors, never written out
        return REDACTED if self.is_sensitive(key) else self.value(value)

    def __call__(self, logger: object, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """structlog processor: redact every field of the event, the message included."""
        texts, verdicts, text = self._texts, self._verdicts, self.text
        try:  # the usual case inlined: a key and a string value seen before cost two lookups
            return {texts.get(k) or self._key(k):
                    texts.get(v) or text(v) if v.__class__ is str and verdicts.get(k) is False
                    else self.field(k, v) for k, v in event_dict.items()}
        except Exception:
            return self._field_by_field(event_dict)

    def _field_by_field(self, event_dict: dict[str, Any]) -> dict[str, Any]:
        """The slow path once redaction raised: each field on its own, a failing one replaced."""
        redacted: dict[str, Any] = {}
        for key, value in list(event_dict.items()):
            try:
                redacted[self._key(key)] = self.field(key, value)
            except Exception:
                redacted[key if isinstance(key, str) and len(key) < SHORTEST_SECRET
                         else f"field_{len(redacted)}"] = UNREDACTABLE
        return redacted
