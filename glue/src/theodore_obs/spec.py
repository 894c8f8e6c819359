"""Load ``stack.yaml``, check it against ``stack.schema.json`` and merge an environment over it."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import spec_guard
from .paths import repo_root
from .schema_overlay import with_overlay
from .tenants import problems as tenant_problems

SCHEMA_FILE = "stack.schema.json"

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (the same YAML, much faster)."""

MAX_MESSAGE = 300
"""Characters of an error message; longer ones (a huge value quoted back) are cut."""


class SpecError(ValueError):
    """A spec that cannot be used: names the file, the YAML path and what was expected."""

    def __init__(self, file: Path | str, path: str, message: str, line: int | None = None) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        self.file, self.path, self.message, self.line = str(file), path, message, line
        where = f"{self.file}: {path or '(top level)'}"
        if line is not None:
            where += f" (line {line})"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Spec:
    """The merged spec of one environment."""

    environment: str
    data: dict[str, Any]
    source: Path


def _load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document and its node graph, once the limits of ``spec_guard`` hold for both."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(path, "", f"cannot read: {exc.strerror}") from exc
    node: yaml.Node | None = None
    try:
        text = spec_guard.decode(raw)
        node = yaml.compose(text, Loader=SAFE_LOADER)
        spec_guard.check_graph(node)
        data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader, libyaml's where built)
        spec_guard.check_values(data)
    except spec_guard.Refusal as exc:
        raise SpecError(path, _dotted(exc.keys), str(exc), _line_of(node, exc.keys)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(path, "", f"not valid YAML: {problem}",
                        mark.line + 1 if mark else None) from exc
    except RecursionError as exc:
        raise SpecError(path, "", "nested too deeply to be a spec") from exc
    return data, node


def _line_of(node: yaml.Node | None, keys: list[Any]) -> int | None:
    """The line of the deepest node on ``keys`` that exists in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == str(key)]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _dotted(keys: list[Any]) -> str:
    return ".".join(str(k) for k in keys)


def _first_error(validator: jsonschema.Validator, data: Any) -> jsonschema.ValidationError | None:
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    return errors[0] if errors else None


def _explain(error: jsonschema.ValidationError) -> tuple[list[Any], str]:
    keys = list(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
        return keys + extra[:1], f"unknown key {extra[0]!r} (allowed here: {allowed})"
    if error.validator == "required":
        return keys, f"missing required key: {error.message.split(' is a required')[0]}"
    return keys, f"expected {_expected(error)}, got {json.dumps(error.instance)}"


def _expected(error: jsonschema.ValidationError) -> str:
    schema, kind = error.schema, error.validator
    if kind == "type":
        return f"a value of type {schema['type']}"
    if kind == "pattern":
        return f"a string matching {schema['pattern']}" + (
            f" ({schema['description']})" if "description" in schema else "")
    if kind == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"a number with {kind} {schema[kind]}"
    return error.message


@functools.cache
def _spec_validator(root: Path) -> jsonschema.Validator:
    """The schema's validator (formats such as ``uri`` checked), built once per repository root."""
    schema = with_overlay(json.loads((root / SCHEMA_FILE).read_text()))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _check(validator: jsonschema.Validator, data: Any, file: Path, node: yaml.Node | None,
           prefix: list[Any]) -> None:
    error = _first_error(validator, data)
    if error is not None:
        keys, message = _explain(error)
        raise SpecError(file, _dotted(prefix + keys), message, _line_of(node, prefix + keys))


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Maps merge key by key; lists and scalars of the overlay replace the base's."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_document(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """The whole spec file, its base and overlays checked against the schema."""
    data, node = _load_yaml(path)
    if not isinstance(data, dict):
        shape = "nothing" if data is None else f"a {type(data).__name__}"
        raise SpecError(path, "", f"expected a mapping at the top level, got {shape}")
    _check(_spec_validator(repo_root()), data, path, node, [])
    if not data.get("environments"):
        raise SpecError(path, "environments", "no environment defined: name at least one under "
                        "`environments:` (an empty overlay `local: {}` is enough)")
    return data, node


def environments(path: Path | None = None) -> list[str]:
    """The environment names of the spec, once the whole file has been checked."""
    data, _ = _load_document(path or repo_root() / "stack.yaml")
    return sorted(data["environments"])


def load_spec(environment: str, path: Path | None = None) -> Spec:
    """The spec of ``environment``: the base checked, its overlay checked, then merged."""
    path = path or repo_root() / "stack.yaml"
    data, node = _load_document(path)
    overlays = data["environments"]
    if environment not in overlays:
        known = ", ".join(sorted(overlays))
        raise SpecError(path, f"environments.{environment}",
                        f"no such environment (defined: {known})", _line_of(node, ["environments"]))
    base = {k: v for k, v in data.items() if k != "environments"}
    merged = deep_merge(base, overlays[environment] or {})
    _check(_spec_validator(repo_root()), merged, path, node, [])
    _check_references(merged, path, node)
    return Spec(environment=environment, data=merged, source=path)


def _check_references(data: dict[str, Any], path: Path, node: yaml.Node | None) -> None:
    """Names the schema cannot check: the demo service must be one of ``services``, the log
    store's tenant one of ``tenants``; tenants' ports, spaces and tokens apart."""
    demo = data["demo"]["service"]
    if demo not in data["services"]:
        known = ", ".join(sorted(data["services"]))
        raise SpecError(path, "demo.service", f"names no service (defined: {known})",
                        _line_of(node, ["demo", "service"]))
    tenant = data["log_store"]["tenant"]
    if tenant not in data["tenants"]:
        known = ", ".join(sorted(data["tenants"])) or "none"
        raise SpecError(path, "log_store.tenant", f"names no tenant (defined: {known})",
                        _line_of(node, ["log_store", "tenant"]))
    for keys, message in tenant_problems(data):
        raise SpecError(path, _dotted(keys), message, _line_of(node, keys))


def log_tenant(spec: dict[str, Any], name: str | None = None) -> tuple[int, int]:
    """(AccountID, ProjectID) of a tenant's logs: ``name``, else the log store's own tenant."""
    tenant = spec["tenants"][name or spec["log_store"]["tenant"]]
    return tenant.get("account_id", 0), tenant.get("project_id", 0)


def observed_services(spec: dict[str, Any]) -> dict[str, Any]:
    """The services that run in this environment: all but a disabled demo."""
    demo = spec["demo"]
    return {name: svc for name, svc in spec["services"].items()
            if demo["enabled"] or name != demo["service"]}
