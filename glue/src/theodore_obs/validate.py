"""Check rendered output with the tool that consumes each file.

Each check is a named command over one file; a failure names the tool, the file and what the
tool said. Tools come from the per-version cache built by ``make tools``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .chart import chart_dir, chart_problems
from .paths import rendered_root
from .tools import ToolError, binary_path, module_file

#: Stand-ins for what Kubernetes gives the collector agent (its node, the host's root, a
#: service account): `otelcol validate` builds the pipelines, which reads them.
CHECK_ENV = {"K8S_NODE_NAME": "validate-node", "HOSTFS": "/", "K8S_AUTH_TYPE": "none"}


@dataclass(frozen=True)
class Finding:
    """The outcome of one check on one file."""

    tool: str
    file: Path
    ok: bool
    output: str

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        text = f"{status} {self.tool:<28} {self.file}"
        if not self.ok:
            text += "\n" + "\n".join("     " + row for row in self.output.strip().splitlines())
        return text


def run_check(tool: str, argv: list[str], file: Path) -> Finding:
    """Run one check of ``checks_for`` (the binary from the tool cache)."""
    try:
        cmd = [str(binary_path(argv[0])), *argv[1:]]
    except ToolError as exc:
        return Finding(tool, file, False, str(exc))
    with tempfile.TemporaryDirectory(prefix="validate-") as scratch:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=scratch,
                              check=False, env={**os.environ, **CHECK_ENV})
    return Finding(tool, file, proc.returncode == 0, proc.stdout + proc.stderr)


def check_compose(file: Path) -> Finding:
    """The compose file against the Compose Specification's JSON Schema."""
    try:
        schema = json.loads(module_file("compose").read_text())
    except ToolError as exc:
        return Finding("compose-spec schema", file, False, str(exc))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(yaml.safe_load(file.read_text())), key=str)
    output = "\n".join(f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                       for e in errors)
    return Finding("compose-spec schema", file, not errors, output)


def checks_for(env_dir: Path) -> list[tuple[str, list[str], Path]]:
    """(tool label, argv, file) for every check of one rendered environment."""
    prom = env_dir / "prometheus" / "prometheus.yml"
    rules = sorted((env_dir / "prometheus" / "rules").glob("*.yml"))
    rule_tests = sorted((env_dir / "prometheus" / "tests").glob("*.test.yml"))
    log_rules = sorted((env_dir / "vmalert" / "rules").glob("*.yml"))
    found = [
        ("promtool check config", ["promtool", "check", "config", str(prom)], prom),
        *[("promtool check rules", ["promtool", "check", "rules", str(r)], r) for r in rules],
        *[("promtool test rules", ["promtool", "test", "rules", str(t)], t) for t in rule_tests],
        ("amtool check-config", ["amtool", "check-config",
                                 str(env_dir / "alertmanager" / "alertmanager.yml")],
         env_dir / "alertmanager" / "alertmanager.yml"),
        ("otelcol validate", ["otelcol-theodore", "validate",
                              f"--config={env_dir / 'otel-collector' / 'config.yaml'}"],
         env_dir / "otel-collector" / "config.yaml"),
        ("otelcol validate", ["otelcol-theodore", "validate",
                              f"--config={env_dir / 'otel-collector' / 'agent.yaml'}"],
         env_dir / "otel-collector" / "agent.yaml"),
        # vmauth loads its users and routes (token placeholders stay unfilled).
        ("vmauth -dryRun", ["vmauth", "-dryRun", f"-auth.config={env_dir / 'vmauth' / 'auth.yml'}"],
         env_dir / "vmauth" / "auth.yml"),
        # vmalert parses every LogsQL expression (a `stats` query for vlogs groups) and template.
        *[("vmalert -dryRun", ["vmalert", "-dryRun", f"-rule={r}"], r) for r in log_rules],
        ("jaeger validate", ["jaeger", "validate", f"--config={env_dir / 'jaeger' / 'config.yaml'}"],
         env_dir / "jaeger" / "config.yaml"),
        ("blackbox --config.check", ["blackbox_exporter", "--config.check",
                                     f"--config.file={env_dir / 'prometheus' / 'blackbox.yml'}"],
         env_dir / "prometheus" / "blackbox.yml"),
    ]
    return found


def validate_env(env_dir: Path) -> list[Finding]:
    findings = [run_check(tool, argv, file) for tool, argv, file in checks_for(env_dir)]
    compose = env_dir / "compose.yaml"
    if compose.exists():
        findings.append(check_compose(compose))
    if env_dir.resolve().parent == rendered_root().resolve() and chart_dir().is_dir():
        findings.append(check_chart(env_dir.name))
    return findings


def check_chart(environment: str) -> Finding:
    """The Helm chart with this environment: lint, then its manifests against Kubernetes' schemas."""
    problems = chart_problems(environment)
    return Finding("helm lint + k8s schemas", chart_dir(), not problems, "\n".join(problems))
