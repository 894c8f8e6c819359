"""The one HTTP helper the clients share: JSON over urllib, failures as two clear errors."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

START_HINT = "start the stack with `make up` (or `theodore-obs up`)"
"""What to do when a backend does not answer."""

TIMEOUT_ENV = "THEODORE_OBS_HTTP_TIMEOUT"
"""Seconds to wait for each backend answer (default 10)."""


class BackendUnavailable(RuntimeError):
    """A backend did not answer at all (refused, timed out, unresolvable)."""

    def __init__(self, name: str, url: str, hint: str = START_HINT,
                 problem: str = "is not answering") -> None:
        self.name, self.url, self.hint = name, url, hint
        super().__init__(f"{name} at {url} {problem} — {hint}")


class BackendError(RuntimeError):
    """A backend answered, but with an error (bad query, unknown id, …)."""

    def __init__(self, name: str, url: str, status: int, detail: str) -> None:
        self.name, self.url, self.status, self.detail = name, url, status, detail
        super().__init__(f"{name} at {url} answered HTTP {status}: {detail}")


class HttpBackend:
    """A backend's base URL and display name; ``get``/``post``/``delete`` return parsed JSON."""

    name = "backend"
    hint = START_HINT

    def __init__(self, base_url: str, timeout: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BackendUnavailable(self.name, base_url, "its URL must start with http:// or https://")
        self.base_url, self.headers = base_url.rstrip("/"), headers or {}
        self.timeout = timeout or float(os.environ.get(TIMEOUT_ENV) or 10)

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send(urllib.request.Request(self.url(path, params)))  # noqa: S310 (scheme checked)

    def post(self, path: str, body: Any) -> Any:
        return self._send(urllib.request.Request(  # noqa: S310 (scheme checked)
            self.url(path), data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"}))

    def delete(self, path: str) -> Any:
        return self._send(urllib.request.Request(self.url(path), method="DELETE"))  # noqa: S310

    def _send(self, request: urllib.request.Request) -> Any:
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace").strip() or exc.reason
            raise BackendError(self.name, self.base_url, exc.code, _error_text(detail)) from None
        except (OSError, ValueError) as exc:
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                raise BackendUnavailable(
                    self.name, self.base_url, f"it may be overloaded (wait longer with {TIMEOUT_ENV})",
                    f"did not answer within {self.timeout:g}s") from None
            raise BackendUnavailable(self.name, self.base_url, self.hint) from exc
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            raise BackendError(self.name, self.base_url, 200, "answer is not JSON (another service on "
                               "this port?)") from None


def _error_text(detail: str) -> str:
    """The ``error`` field of a JSON error body, else the body itself."""
    try:
        data = json.loads(detail)
    except ValueError:
        return detail
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or data.get("errors") or data)
    return detail
