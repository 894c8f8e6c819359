"""The collector's outbound integrations, from the spec's ``integrations`` section to template values.

Each integration is one exporter of the collector gateway (``config.yaml``), off unless an
environment turns it on, placed after the stack's own processors so it gets what Jaeger,
Prometheus and VictoriaLogs get: redacted, tail-sampled, queued on disk and retried.

=========  =======================  ==========================================  =================
spec key   exporter                 protocol                                    secret file field
=========  =======================  ==========================================  =================
elk        ``elasticsearch/elk``    Elasticsearch bulk API                      ``api_key_file``
                                                                                (or ``user`` +
                                                                                ``password_file``)
splunk     ``splunk_hec/splunk``    Splunk HTTP Event Collector                 ``token_file``
newrelic   ``otlphttp/newrelic``    OTLP/HTTP, ``api-key`` header               ``license_key_file``
datadog    ``otlphttp/datadog``     OTLP/HTTP to an Agent or Datadog's intake   ``api_key_file``
loki       ``otlphttp/loki``        OTLP/HTTP to ``<endpoint>/otlp``            —
zipkin     ``zipkin/zipkin``        Zipkin v2 JSON; ``receiver``: spans in      —
=========  =======================  ==========================================  =================

Secrets never enter the rendered files: a secret field names a file in the runtime's secrets
directory and the collector reads it when it loads its config (``${file:<path>}``), so a
missing file stops ``otelcol validate`` and the collector's start with the file's path.
:func:`secret_problems` checks the files themselves before the native runtime starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .spec import Spec, SpecError

__all__ = ["EXPORTERS", "Integration", "enabled_integrations", "integration_context",
           "integration_secret_files", "secret_problems"]

EXPORTERS = {
    "elk": "elasticsearch/elk",
    "splunk": "splunk_hec/splunk",
    "newrelic": "otlphttp/newrelic",
    "datadog": "otlphttp/datadog",
    "loki": "otlphttp/loki",
    "zipkin": "zipkin/zipkin",
}
"""Spec key → the collector exporter it turns on (the self-monitoring alert matches these)."""

SECRET_FIELDS = {
    "elk": ("api_key_file", "password_file"),
    "splunk": ("token_file",),
    "newrelic": ("license_key_file",),
    "datadog": ("api_key_file",),
}
"""The fields of each integration that name a secret file."""

FIXED_SIGNALS = {"loki": ("logs",), "zipkin": ("traces",)}
"""Integrations that carry one signal whatever the spec says."""

DEFAULT_SIGNALS = {"elk": ("logs",), "splunk": ("logs",), "newrelic": ("traces", "metrics", "logs"),
                   "datadog": ("traces", "logs")}
"""The signals of the others when their ``signals`` is not given."""

DATADOG_INTAKE = re.compile(r"(^|\.)(datadoghq\.(com|eu)|ddog-gov\.com|datad0g\.com)$")
"""Hosts of Datadog's own intake (which needs an API key; an Agent does not)."""

SECRET_TEXT = re.compile(r"[\x21-\x7e]+")
"""What a token, key or password file may hold: printable ASCII without blanks (one line)."""


class _Runtime(Protocol):
    secrets_dir: str


@dataclass(frozen=True)
class Integration:
    """One enabled integration: its spec key, exporter, pipelines and secret files."""

    name: str
    exporter: str
    signals: tuple[str, ...]
    secret_files: dict[str, str]  # spec field → file name in the secrets directory


def _exporter_of(name: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a spec entry that configures the exporter, or None when it is off."""
    if name == "zipkin":
        entry = entry["exporter"]
    return entry if entry.get("enabled") else None


def enabled_integrations(data: dict[str, Any]) -> list[Integration]:
    """The integrations one environment's merged spec turns on, in the table's order."""
    found, integrations = [], data.get("integrations", {})  # a partial spec has none
    for name, exporter in EXPORTERS.items():
        entry = _exporter_of(name, integrations[name]) if name in integrations else None
        if entry is None:
            continue
        signals = FIXED_SIGNALS.get(name) or tuple(entry.get("signals", DEFAULT_SIGNALS[name]))
        files = {f: entry[f] for f in SECRET_FIELDS.get(name, ()) if entry.get(f)}
        found.append(Integration(name, exporter, signals, files))
    return found


def integration_secret_files(data: dict[str, Any]) -> dict[str, str]:
    """Each secret file the enabled integrations read, with the environment variable that fills
    it natively (the file name in upper case, as for the alert receivers)."""
    return {file: file.upper() for i in enabled_integrations(data) for file in i.secret_files.values()}


def _fail(spec: Spec, field: str, message: str) -> SpecError:
    return SpecError(spec.source, f"integrations.{field}", f"{message} (environment {spec.environment})")


def _check(spec: Spec) -> None:
    """What the schema cannot say: which credentials each enabled integration needs."""
    integrations = spec.data["integrations"]
    elk = integrations["elk"]
    if elk["enabled"]:
        basic = bool(elk.get("user")) or bool(elk.get("password_file"))
        if basic and not (elk.get("user") and elk.get("password_file")):
            raise _fail(spec, "elk.user", "basic auth needs both user and password_file")
        if basic == bool(elk.get("api_key_file")):
            raise _fail(spec, "elk.api_key_file", "give either api_key_file or user + password_file")
    datadog = integrations["datadog"]
    host = urlsplit(datadog.get("endpoint", "")).hostname or ""
    if datadog["enabled"] and DATADOG_INTAKE.search(host) and not datadog.get("api_key_file"):
        raise _fail(spec, "datadog.api_key_file", f"required to send to Datadog's intake ({host}); "
                    "only a Datadog Agent's endpoint takes data without it")
    receiver = integrations["zipkin"]["receiver"]
    taken = {port: key for key, port in spec.data["ports"].items()}
    if receiver["enabled"] and receiver["port"] in taken:
        raise _fail(spec, "zipkin.receiver.port",
                    f"{receiver['port']} is already ports.{taken[receiver['port']]}")


def _file_reference(runtime: _Runtime, file: str) -> str:
    """The collector's reference to a secret file: its config loader reads the file."""
    path = f"{runtime.secrets_dir}/{file}"
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", path):
        raise ValueError(f"secrets directory {runtime.secrets_dir!r}: expected a plain path")
    return "${file:" + path + "}"


def integration_context(spec: Spec, runtime: _Runtime) -> dict[str, Any]:
    """The ``integration_*`` template values of one environment and runtime (checked first)."""
    _check(spec)
    enabled = enabled_integrations(spec.data)
    return {
        "integration_exporters": {
            signal: [i.exporter for i in enabled if signal in i.signals]
            for signal in ("traces", "metrics", "logs")},
        "integration_secrets": {
            i.name: {field: _file_reference(runtime, file) for field, file in i.secret_files.items()}
            for i in enabled},
        "integration_secret_files": integration_secret_files(spec.data),
        "integration_exporter_regex": "|".join(re.escape(e) for e in EXPORTERS.values()),
        "zipkin_receiver": spec.data["integrations"]["zipkin"]["receiver"],
    }


def secret_problems(data: dict[str, Any], secrets_dir: Path) -> list[str]:
    """What is wrong with the enabled integrations' secret files (empty when nothing is).

    Each problem names the spec field, the file and the environment variable that fills it
    natively; the secret itself is never quoted."""
    problems = []
    for integration in enabled_integrations(data):
        for field, file in integration.secret_files.items():
            where = (f"integrations.{integration.name}.{field}: {secrets_dir / file} "
                     f"(natively from ${file.upper()})")
            try:
                text = (secrets_dir / file).read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                problems.append(f"{where}: missing")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{where}: unreadable ({exc.__class__.__name__})")
                continue
            if not text:
                problems.append(f"{where}: empty")
            elif not SECRET_TEXT.fullmatch(text):
                problems.append(f"{where}: expected one token (printable, no blanks or line breaks)")
    return problems
