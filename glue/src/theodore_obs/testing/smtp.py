"""A minimal SMTP server on 127.0.0.1 that takes Alertmanager's mail and hands it over parsed.

It speaks what Go's ``net/smtp`` client sends (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT),
advertises no STARTTLS (the receiver must say ``require_tls: false``) and records each message
with its envelope, headers, text and HTML parts and the credentials it was sent with.
"""

from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import threading
from collections.abc import Callable
from typing import Any


def parse_message(sender: str, recipients: list[str], data: str, auth: list[str] | None) -> dict[str, Any]:
    message = email.message_from_string(data, policy=email.policy.default)
    parts = {part.get_content_type(): part.get_content() for part in message.walk()
             if part.get_content_maintype() == "text"}
    return {"from": sender, "to": recipients, "subject": str(message["Subject"] or ""),
            "headers": {k: str(v) for k, v in message.items()}, "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""), "auth": auth}


class _Session(socketserver.StreamRequestHandler):
    record: Callable[[dict[str, Any]], None]

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def _data(self) -> str:
        lines = []
        while (line := self.rfile.readline()) and line not in (b".\r\n", b".\n"):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines).decode(errors="replace")

    def handle(self) -> None:
        self._say("220 localhost theodore-obs test SMTP")
        sender, recipients, auth = "", [], None
        while line := self.rfile.readline():
            command = line.decode(errors="replace").strip()
            verb, _, argument = command.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self._say("250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME")
            elif verb == "AUTH":
                _, _, initial = argument.partition(" ")
                if not initial:
                    self._say("334 ")
                    initial = self.rfile.readline().decode().strip()
                auth = base64.b64decode(initial).decode(errors="replace").split("\0")
                self._say("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                sender, recipients = argument.partition(":")[2].split(" ")[0].strip("<>"), []
                self._say("250 OK")
            elif verb == "RCPT":
                recipients.append(argument.partition(":")[2].strip().strip("<>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 End data with <CR><LF>.<CR><LF>")
                self.record(parse_message(sender, recipients, self._data(), auth))
                self._say("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                self._say("250 OK")
            elif verb == "QUIT":
                self._say("221 Bye")
                return
            else:
                self._say("502 Command not implemented")


class SMTPSink:
    """The SMTP server; ``record`` gets each message as a dict (see ``parse_message``)."""

    def __init__(self, record: Callable[[dict[str, Any]], None]) -> None:
        handler = type("Session", (_Session,), {"record": staticmethod(record)})
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
