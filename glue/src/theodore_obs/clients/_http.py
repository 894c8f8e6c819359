"""The one HTTP helper the clients and commands share: JSON over urllib, failures as clear errors.

Every request of the operator CLI goes through :func:`open_url`. Base URLs are checked once
(:func:`check_url`); credentials in them (``http://user:pass@host``) become a Basic
``Authorization`` header and are masked (``http://user:***@host``) in every message. Answers
are checked against the shape the caller relies on (:meth:`HttpBackend.shaped`), so a backend
that answers something else is named, not a ``KeyError``.
"""

from __future__ import annotations

import base64
import functools
import html
import http.client
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import jsonschema

START_HINT = "start the stack with `make up` (or `theodore-obs up`)"
"""What to do when a backend does not answer."""

TIMEOUT_ENV = "THEODORE_OBS_HTTP_TIMEOUT"
"""Seconds to wait for each backend answer (default 10)."""

SUMMARY_CHARS = 200
"""An error body longer than this is cut (after HTML is reduced to its title or text)."""


class BackendUnavailable(RuntimeError):
    """A backend did not answer at all (refused, timed out, unresolvable)."""

    def __init__(self, name: str, url: str, hint: str = START_HINT,
                 problem: str = "is not answering") -> None:
        self.name, self.url, self.hint = name, mask_url(url), hint
        super().__init__(f"{name} at {self.url} {problem} — {hint}")


class BackendError(RuntimeError):
    """A backend answered, but with an error (bad query, unknown id, unexpected shape, …)."""

    def __init__(self, name: str, url: str, status: int, detail: str) -> None:
        self.name, self.url, self.status, self.detail = name, mask_url(url), status, one_line(detail)
        super().__init__(f"{name} at {self.url} answered HTTP {status}: {self.detail}")


class BadURL(ValueError):
    """A base URL that cannot be requested (no http(s) scheme, no host, bad port, bad IPv6)."""


def one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` with runs of whitespace (newlines too) as one space, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def mask_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (anything else unchanged)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}{slash}{path}"


def check_url(url: str) -> str:
    """``url`` if it can be requested; else :class:`BadURL` saying why (credentials masked)."""
    shown = mask_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port out of range or not a number)
    except ValueError as exc:
        raise BadURL(f"{shown!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise BadURL(f"{shown!r}: the URL must start with http:// or https://")
    if not parts.hostname:
        raise BadURL(f"{shown!r}: the URL has no host")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise BadURL(f"{shown!r}: the URL contains whitespace or control characters")
    return url


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its user info, and the Basic ``Authorization`` header it stood for."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    netloc = parts.netloc.rpartition("@")[2]
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(pair.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": header}


def path_segment(value: str) -> str:
    """``value`` quoted as one URL path segment: ``../status`` cannot climb out of the path."""
    return urllib.parse.quote(value, safe="")


def open_url(request: urllib.request.Request | str, timeout: float) -> tuple[int, bytes, str]:
    """``(status, body, content type)``; an HTTP error status is an answer too. ``OSError`` or
    ``ValueError`` when nothing answered."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked URLs)
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        kind = exc.headers.get_content_type() if exc.headers else ""
        try:
            body = exc.read()
        except OSError:
            body = b""
        return exc.code, body, kind


def get_json(url: str, timeout: float = 3.0) -> tuple[int | None, Any]:
    """``(status, parsed body)`` of a GET, ``None`` for what did not answer or was not JSON."""
    try:
        status, body, _kind = open_url(check_url(url), timeout)
    except (OSError, ValueError):
        return None, None
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, None


def summarise(body: bytes, content_type: str = "") -> str:
    """An error body in one line: the JSON ``error``/``message``, an HTML page's title (else its
    text), or the first characters of plain text."""
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return one_line(str(data.get("error") or data.get("message") or data.get("errors") or data))
    if content_type == "text/html" or re.match(r"(?is)\s*(<!doctype|<html|<head|<body)", text):
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
        inner = title.group(1) if title else re.sub(r"(?is)<(script|style).*?</\1>|<[^>]+>", " ", text)
        return one_line(html.unescape(inner)) or "an HTML page"
    return one_line(text)


@functools.cache
def _validator(schema_json: str) -> jsonschema.Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json))


def shape_error(answer: Any, schema: dict[str, Any]) -> str | None:
    """Where and how ``answer`` differs from ``schema`` (one line), or None when it fits."""
    errors = list(_validator(json.dumps(schema, sort_keys=True)).iter_errors(answer))
    if not errors:
        return None
    error = min(errors, key=lambda e: len(e.absolute_path))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(top)"
    return one_line(f"{where}: {error.message}", 160)


class HttpBackend:
    """A backend's base URL and display name; ``get``/``post``/``delete`` return parsed JSON."""

    name = "backend"
    hint = START_HINT

    def __init__(self, base_url: str, timeout: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        try:
            check_url(base_url)
        except BadURL as exc:
            raise BackendUnavailable(self.name, base_url, str(exc), "cannot be asked") from None
        self.shown_url = mask_url(base_url).rstrip("/")
        plain, auth = split_credentials(base_url)
        self.base_url, self.headers = plain.rstrip("/"), {**auth, **(headers or {})}
        self.timeout = timeout or float(os.environ.get(TIMEOUT_ENV) or 10)

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send(urllib.request.Request(self.url(path, params)))  # noqa: S310 (scheme checked)

    def get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        """The body of a GET whose answer is not one JSON document (e.g. JSON lines)."""
        return self._answer(urllib.request.Request(self.url(path, params)))[1]  # noqa: S310 (scheme checked)

    def post(self, path: str, body: Any) -> Any:
        return self._send(urllib.request.Request(  # noqa: S310 (scheme checked)
            self.url(path), data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"}))

    def delete(self, path: str) -> Any:
        return self._send(urllib.request.Request(self.url(path), method="DELETE"))  # noqa: S310

    def shaped(self, answer: Any, schema: dict[str, Any]) -> Any:
        """``answer`` if it has the shape ``schema`` describes, else a :class:`BackendError`."""
        problem = shape_error(answer, schema)
        if problem:
            raise BackendError(self.name, self.shown_url, 200, f"unexpected answer: {problem}")
        return answer

    def _answer(self, request: urllib.request.Request) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` of a 2xx answer; else the error :meth:`_refusal` names."""
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            status, body, kind = open_url(request, self.timeout)
        except (OSError, ValueError) as exc:
            raise self._unavailable(exc) from None
        if status >= 400:
            raise self._refusal(status, body, kind)
        return status, body, kind

    @contextmanager
    def stream(self, path: str, params: dict[str, Any]) -> Iterator[Iterator[bytes]]:
        """The lines of a GET whose answer never ends (a live tail), as they arrive.

        The connection and the status wait at most the timeout; the lines then wait as long as
        the backend takes. Leaving the context closes the connection, which also ends a read
        another thread is blocked in."""
        target = urllib.parse.urlsplit(self.url(path, params))
        kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        connection = kind(target.netloc, timeout=self.timeout)
        try:
            try:
                connection.request("GET", f"{target.path}?{target.query}", headers=self.headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(exc) from None
            if response.status >= 400:
                raise self._refusal(response.status, response.read(), response.headers.get_content_type())
            if connection.sock is not None:
                connection.sock.settimeout(None)
            yield self._lines(response)
        finally:
            if connection.sock is not None:
                with suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _lines(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        try:
            yield from response
        # A read ended by closing the connection from another thread fails inside http.client
        # with any of these.
        except (OSError, ValueError, AttributeError, http.client.HTTPException) as exc:
            raise BackendUnavailable(self.name, self.shown_url, self.hint, "stopped answering") from exc

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
            return BackendUnavailable(self.name, self.shown_url,
                                      f"it may be overloaded (wait longer with {TIMEOUT_ENV})",
                                      f"did not answer within {self.timeout:g}s")
        return BackendUnavailable(self.name, self.shown_url, self.hint)

    def _refusal(self, status: int, body: bytes, kind: str) -> BackendError:
        """The error of an HTTP error answer (a backend can tell bad input from failure)."""
        return BackendError(self.name, self.shown_url, status, summarise(body, kind) or "no detail")

    def _send(self, request: urllib.request.Request) -> Any:
        status, body, kind = self._answer(request)
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            detail = summarise(body, kind)
            raise BackendError(self.name, self.shown_url, status, "answer is not JSON (another service on "
                               "this port?)" + (f": {detail}" if detail else "")) from None
