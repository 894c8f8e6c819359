"""Validate Kubernetes manifests offline and strictly against the API's own schemas.

The schemas are the OpenAPI (swagger) document a Kubernetes release ships
(``api/openapi-spec/swagger.json``) and the CustomResourceDefinitions of the operators the chart
integrates with, all read from Go modules pinned in versions.yaml (``schemas:``). Validation is
strict the way ``kubectl apply --validate=strict`` is: a field the API does not define is an
error, not something the server would silently drop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import jsonschema
import yaml

from .tools import module_file

#: The Kubernetes versions every manifest is checked against (schema names in versions.yaml).
KUBERNETES_SCHEMAS = ("kubernetes-1.33", "kubernetes-1.34")

#: CRDs of optional integrations (schema names in versions.yaml).
CRD_SCHEMAS = ("instrumentation-crd", "servicemonitor-crd", "podmonitor-crd")

_INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_QUANTITY = {"anyOf": [{"type": "number"}, {"type": "string"}]}


def _strict(node: Any) -> Any:
    """A copy of a schema where objects that list their properties allow no others."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        return _INT_OR_STRING
    out = {key: _strict(value) for key, value in node.items()}
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _api_version(gvk: dict[str, str]) -> str:
    return f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]


class ManifestValidator:
    """Checks manifests of the kinds one Kubernetes version (plus some CRDs) serves."""

    def __init__(self, swagger: dict[str, Any], crds: Iterable[dict[str, Any]] = ()) -> None:
        definitions = {name: _strict(schema) for name, schema in swagger["definitions"].items()}
        definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = _INT_OR_STRING
        definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = _QUANTITY
        self._root = {"definitions": definitions}
        self._kinds: dict[tuple[str, str], dict[str, Any]] = {}
        for name, schema in swagger["definitions"].items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                self._kinds[(_api_version(gvk), gvk["kind"])] = {"$ref": f"#/definitions/{name}"}
        for crd in crds:
            self._add_crd(crd)
        self._validators: dict[tuple[str, str], jsonschema.Validator] = {}

    def _add_crd(self, crd: dict[str, Any]) -> None:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema.setdefault("properties", {})["metadata"] = {
                "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            self._kinds[(f"{group}/{version['name']}", kind)] = schema

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._kinds)

    def _validator(self, key: tuple[str, str]) -> jsonschema.Validator:
        if key not in self._validators:
            schema = {**self._kinds[key], "definitions": self._root["definitions"]}
            self._validators[key] = jsonschema.Draft4Validator(schema)
        return self._validators[key]

    def errors(self, manifest: dict[str, Any]) -> list[str]:
        """Every problem of one manifest, each naming the field path; [] when it is valid."""
        key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
        name = f"{key[1]}/{manifest.get('metadata', {}).get('name', '?')}"
        if key not in self._kinds:
            return [f"{name}: the API does not serve {key[1]} in {key[0] or '(no apiVersion)'}"]
        found = sorted(self._validator(key).iter_errors(manifest), key=lambda e: list(e.path))
        return [f"{name}: {'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in found]


def _load(schema: str) -> Any:
    text = module_file(schema).read_text()
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)


@cache
def validator_for(kubernetes: str) -> ManifestValidator:
    """The validator of one pinned Kubernetes version, with the pinned CRDs."""
    return ManifestValidator(_load(kubernetes), [_load(crd) for crd in CRD_SCHEMAS])
