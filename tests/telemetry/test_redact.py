"""Redaction: secrets go, look-alikes stay."""

from __future__ import annotations

import pytest
from theodore_obs.telemetry.redact import REDACTED, Redactor

SENSITIVE = ["password", "token", "key", "secret", "api_key", "authorization", "credential",
             "auth", "session_id", "apiKey", "X-Auth-Token", "sessionId", "passwordHash",
             "db_credentials", "Authorization", "client_secret", "refresh_token"]
NOT_SENSITIVE = ["monkey", "keyboard", "author", "turkey", "token_count", "input_tokens",
                 "auth_method", "keynote", "secretary_name", "passenger"]


@pytest.mark.parametrize("key", SENSITIVE)
def test_sensitive_keys_are_redacted(key: str) -> None:
    assert Redactor().value({key: "s3cr3t-value"}) == {key: REDACTED}


@pytest.mark.parametrize("key", NOT_SENSITIVE)
def test_look_alike_keys_are_kept(key: str) -> None:
    assert Redactor().value({key: "visible"}) == {key: "visible"}


def test_nested_dicts_and_lists_are_walked() -> None:
    event = {"user": {"name": "ada", "password": "p"},
             "attempts": [{"token": "t", "n": 1}, "Bearer abcdefghijklmnop"]}
    assert Redactor().value(event) == {
        "user": {"name": "ada", "password": REDACTED},
        "attempts": [{"token": REDACTED, "n": 1}, REDACTED]}


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "key sk-proj-abcdefghijklmnopqrstuvwx",
    "anthropic sk-ant-api03-abcdefghijklmnopqrstuv",
    "aws AKIAIOSFODNN7EXAMPLE",
    "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "slack xoxb-1234567890-abcdefghij",
    "google AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
])
def test_secret_shaped_values_are_redacted_anywhere(text: str) -> None:
    redacted = Redactor().text(text)
    assert REDACTED in redacted
    secret = text.split()[-1]
    assert secret not in redacted


def test_credentials_in_urls_and_named_values_in_messages() -> None:
    text = "connect postgres://app:hunter2@db:5432/x with password=hunter2, token: abc123"
    redacted = Redactor().text(text)
    assert "hunter2" not in redacted and "abc123" not in redacted
    assert "postgres://[REDACTED]@db:5432/x" in redacted
    assert "password=[REDACTED]" in redacted


def test_named_values_percent_encoded_in_an_access_log_line() -> None:
    """werkzeug logs the raw request line: a query value holding `password=…` arrives encoded."""
    line = '"GET /research?company=acme&note=password%3De2e-hunter2&t=token%3aabc123 HTTP/1.1" 200 -'
    redacted = Redactor().text(line)
    assert "e2e-hunter2" not in redacted and "abc123" not in redacted
    assert "note=password%3D[REDACTED]&t=token%3a[REDACTED] HTTP/1.1" in redacted
    assert Redactor().text("GET /search?q=50%3D50&page=2") == "GET /search?q=50%3D50&page=2"


def test_ordinary_text_is_untouched() -> None:
    text = "monkey typed on the keyboard; author=bob used 1200 tokens=5 in skeleton mode"
    assert Redactor().text(text) == text


def test_extra_sensitive_keys_are_configurable() -> None:
    redactor = Redactor(["password", "ssn"])
    assert redactor.value({"ssn": "123", "token": "kept: not in this list"}) == {
        "ssn": REDACTED, "token": "kept: not in this list"}
