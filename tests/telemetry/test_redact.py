"""Redaction: secrets go, look-alikes stay."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
from theodore_telemetry import configure_logging
from theodore_telemetry.logs import (
    JSONFormatter,
    _NamedWriteLogger,
    failed_line,
    safe_bound_logger,
)
from theodore_telemetry.redact import REDACTED, Redactor

from . import secret_corpus

SENSITIVE = ["password", "token", "key", "secret", "api_key", "authorization", "credential",
             "auth", "session_id", "apiKey", "X-Auth-Token", "sessionId", "passwordHash",
             "db_credentials", "Authorization", "client_secret", "refresh_token", "pwd", "pass",
             "passwd", "db_pass", "apikey", "api-key", "x-api-key", "cookie", "set-cookie", "session",
             "sessionid", "private_key", "access_token", "PGPASSWORD", "clientSecret", "api_key_b64"]
NOT_SENSITIVE = ["monkey", "keyboard", "author", "turkey", "token_count", "input_tokens",
                 "auth_method", "keynote", "secretary_name", "passenger", "primary_key", "cache_key",
                 "key_count", "sort_key", "public_key", "page_token", "partitionKey"]


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


def test_card_numbers_are_luhn_checked() -> None:
    assert Redactor().text("card 4111 1111 1111 1111 ok") == f"card {REDACTED} ok"
    assert Redactor().text("card 4111-1111-1111-1112 ok") == "card 4111-1111-1111-1112 ok"


@pytest.mark.parametrize("uid", ["51b9ea42-0549-4471-9989-168a66e21ce1", "042b3e38-5785-4483-9571-4634a0f2918c",
                                 "41234567-1234-4567-a5d7-a7ccc58571e3"])
def test_uuids_are_never_read_as_card_numbers(uid: str) -> None:
    """Luhn-valid digit runs across a UUID's groups (about one UUID4 in a thousand): a
    correlation ID must reach the logs whole."""
    assert Redactor().text(f"id {uid} card 4111 1111 1111 1111") == f"id {uid} card {REDACTED}"
    assert Redactor().text(f"token={uid}") == f"token={REDACTED}"


def test_containers_of_any_kind_keep_their_harmless_values() -> None:
    redacted = Redactor().value({(1, 2): "x", 3: {"a"}, "pairs": [("name", "ada"), ("token", "t")]})
    assert redacted == {"(1, 2)": "x", 3: ["a"], "pairs": [["name", "ada"], ["token", REDACTED]]}


# --- The corpus, through the real pipeline of logs.py ---------------------------------------

@dataclasses.dataclass
class Holder:
    """A dataclass: orjson writes its fields, so the redactor must see them."""
    label: str
    detail: object


class Pipeline:
    """``configure_logging`` writing to a buffer; ``emit`` returns what one case wrote."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        configure_logging(service="svc", environment="test", otlp=False, stream=self.stream)

    def output(self, emit: Callable[[], None]) -> str:
        start = len(self.stream.getvalue())
        emit()
        return self.stream.getvalue()[start:]

    def lines(self, emit: Callable[[], None]) -> list[dict]:
        return [json.loads(line) for line in self.output(emit).splitlines()]


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    yield Pipeline()
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    structlog.reset_defaults()


def _raise(text: str) -> None:
    raise ValueError(f"upstream said: {text}")


def _every_placement(text: str) -> None:
    """``text`` logged every way an application or a library can: message, ``%s`` arguments,
    exception text and traceback, containers of every kind, a dataclass, reserved fields."""
    log, lib = structlog.get_logger("app"), logging.getLogger("lib")
    log.info(f"seen {text}")
    log.info("seen %s", text)
    log.info("nested", payload={"list": [text], "pair": ("note", text), "set": {text}, "frozen": frozenset([text]),
                                (1, text): "tuple key", "deep": [{"x": (text,)}]}, holder=Holder("h", [text]))
    log.info("reserved", component=text, category=text, service=text, span_id=text, level_note=text)
    try:
        _raise(text)
    except ValueError as error:
        log.exception("failed", error=error)
        lib.exception("library failed on %s", text)
    lib.warning("seen %s", text)
    lib.warning(text)
    lib.warning("extra", extra={"payload": [("note", text)], "component": text, "category": text})


@pytest.mark.parametrize(("text", "secret"), secret_corpus.SECRET_TEXTS)
def test_every_secret_shape_is_caught_everywhere(pipeline: Pipeline, text: str, secret: str) -> None:
    raw = pipeline.output(lambda: _every_placement(text))
    assert len(raw.splitlines()) == 9
    assert secret not in raw
    assert secret not in raw.replace("\\n", "\n")  # nor in a PEM block's lines once unescaped


@pytest.mark.parametrize(("key", "secret"), secret_corpus.SECRET_KEYS)
def test_every_secret_key_is_caught_everywhere(pipeline: Pipeline, key: str, secret: str) -> None:
    def emit() -> None:
        structlog.get_logger("app").info("kw", **{key: secret})
        structlog.get_logger("app").info("nested", payload={"headers": {key: secret}, "pairs": [(key, secret)]})
        structlog.get_logger("app").info(f"{key}={secret}")
        logging.getLogger("lib").warning("extra", extra={key: secret})
        logging.getLogger("lib").warning("%s: %s", key, secret)

    raw = pipeline.output(emit)
    assert len(raw.splitlines()) == 5 and secret not in raw


@pytest.mark.parametrize("text", secret_corpus.HARMLESS_TEXTS)
def test_every_harmless_text_is_kept_verbatim(pipeline: Pipeline, text: str) -> None:
    def emit() -> None:
        structlog.get_logger("app").info(text, value=text, nested={"list": [text]}, component=text)
        logging.getLogger("lib").warning("%s", text, extra={"value": text})

    ours, library = pipeline.lines(emit)
    assert ours["message"] == ours["value"] == ours["component"] == text
    assert ours["nested"] == {"list": [text]}
    assert library["message"] == library["value"] == text


@pytest.mark.parametrize(("key", "value"), secret_corpus.HARMLESS_KEYS)
def test_every_harmless_key_is_kept(pipeline: Pipeline, key: str, value: str) -> None:
    (record,) = pipeline.lines(lambda: structlog.get_logger("app").info("kw", **{key: value},
                                                                       nested={key: value}))
    assert record[key] == value and record["nested"] == {key: value}


def test_the_corpus_is_big_enough() -> None:
    print(f"secret cases: {secret_corpus.SECRET_CASES}, harmless cases: {secret_corpus.HARMLESS_CASES}")
    assert secret_corpus.SECRET_CASES >= 100
    assert secret_corpus.HARMLESS_CASES >= 50


class Unprintable:
    """An object whose ``repr`` raises, holding a secret."""

    def __init__(self) -> None:
        self.token = "sk-proj-" + "u" * 30

    def __repr__(self) -> str:
        raise RuntimeError(self.token)


def test_a_log_call_never_raises_and_never_leaks(pipeline: Pipeline, capfd, monkeypatch) -> None:
    root = logging.getLogger()  # pytest's capture handler fails a test on a bad record: only ours
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if getattr(h, "theodore", False)])
    looped: list = []
    looped.append(looped)

    def emit() -> None:
        structlog.get_logger("app").info("%s and %s", "only one")
        structlog.get_logger("app").info("odd", thing=Unprintable(), kept="yes", loop=looped, big=2**70)
        logging.getLogger("lib").warning("%d items for sk-proj-%s", "many")  # noqa: PLE1206
        logging.getLogger("lib").warning("odd", extra={"thing": Unprintable(), "kept": "yes"})

    mismatch, odd, library, library_odd = pipeline.lines(emit)
    assert mismatch["message"] == "%s and %s ('only one',)"
    assert odd["thing"] == "[UNREDACTABLE]" and odd["kept"] == "yes" and odd["big"] == 2**70
    assert "[TOO DEEP]" in json.dumps(odd["loop"])
    assert library["message"].startswith("%d items for sk-proj-%s") and library["level"] == "warning"
    assert library_odd["thing"] == "[UNREDACTABLE]" and library_odd["kept"] == "yes"
    captured = capfd.readouterr()
    assert "Logging error" not in captured.err and "uuuuuuuu" not in captured.err + captured.out


def test_async_calls_with_mismatched_arguments_never_raise(pipeline: Pipeline) -> None:
    async def emit() -> None:
        log = structlog.get_logger("app")
        await log.ainfo("%s and %s", "only one")
        await log.alog(logging.WARNING, "%d", "not a number")
        await log.adebug("below the level")

    assert [(r["message"], r["level"]) for r in pipeline.lines(lambda: asyncio.run(emit()))] == [
        ("%s and %s ('only one',)", "info"), ("%d ('not a number',)", "warning")]


def _failing_processor(logger: object, method: str, event_dict: dict) -> dict:
    raise RuntimeError(f"processor broke on {event_dict}")


def test_a_failing_processor_still_writes_a_safe_line() -> None:
    """An exception anywhere in the chain becomes a line saying so, with none of the event's
    values, for structlog calls and stdlib records alike."""
    stream = io.StringIO()
    structlog.configure(processors=[_failing_processor], wrapper_class=safe_bound_logger(logging.INFO),
                        logger_factory=lambda *args: _NamedWriteLogger(stream, "app"))
    try:
        structlog.get_logger("app").error("boom", password="hunter2")
        structlog.get_logger("app").debug("filtered out")
    finally:
        structlog.reset_defaults()
    record = logging.LogRecord("lib", logging.WARNING, __file__, 1, "login %s", ("hunter2",), None)
    lines = [json.loads(line) for line in [*stream.getvalue().splitlines(),
                                           JSONFormatter([_failing_processor]).format(record)]]
    assert [(line["message"], line["level"], line["logger"]) for line in lines] == [
        ("[UNREDACTABLE]", "error", "app"), ("[UNREDACTABLE]", "warning", "lib")]
    assert all(line["log_failure"] == "RuntimeError" for line in lines)
    assert "hunter2" not in json.dumps(lines)
    assert json.loads(failed_line("error", "sk-proj-" + "x" * 30, "E"))["logger"] == REDACTED


def test_a_luhn_valid_digit_run_inside_a_hex_id_is_kept() -> None:
    """Request ids, trace ids and uuid4().hex hold Luhn-valid runs of 13-19 digits (about one
    in a thousand): glued to letters they are part of the id, not a card number."""
    for value in ["ec61ce35199942919183c625b61b587a", "id=ec61ce35199942919183c625b61b587a"]:
        assert Redactor().text(value) == value
    assert Redactor().text("card 35199942919183 on file") == "card [REDACTED] on file"


def test_plain_ids_skip_the_pattern_and_the_pattern_agrees() -> None:
    """Trace and span IDs, digests and UUIDs are returned as they are without a scan (and not
    remembered); the full scan keeps each of them too, while an all-digit string is still scanned."""
    import random
    import uuid

    from theodore_telemetry.redact import PLAIN_ID

    rng = random.Random(7)
    ids = [format(rng.getrandbits(bits), f"0{bits // 4}x") for bits in (64, 128, 160) for _ in range(300)]
    ids += [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(300)]
    ids += [secret_corpus.hexits(40) + "a"]
    redactor = Redactor()
    for found in ids:
        if any(c in "abcdef" for c in found):
            assert PLAIN_ID.fullmatch(found), found
        assert redactor.text(found) == found and redactor._rewrite(found) == found
    assert not redactor._texts
    card = "4111111111111111"
    assert not PLAIN_ID.fullmatch(card) and redactor.text(card) == REDACTED
    assert not PLAIN_ID.fullmatch("SK" + secret_corpus.hexits(32))
