"""Contract checks against upstream schemas: custom resources and Helm values.

Custom resources are checked against the CRD's own OpenAPI schema, made strict: CRD schemas leave
`additionalProperties` unset (the API server prunes unknown fields silently), so a misspelled field
would pass; `strict_schema` closes every object that lists its properties. Their `metadata` (left
open by CRDs) is checked against the strict Kubernetes ObjectMeta.

Helm values are checked the way `helm install` does: the chart's defaults coalesced with ours, then
the chart's values.schema.json (with the draft its `$schema` names, picked explicitly because
jsonschema does not recognise MetalLB's https draft-07 URI). A chart without a schema (Reflector)
has our keys checked against its values.yaml instead.

Everything upstream is read through `tests.harness.reference*`, which skips when it is absent.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml

from homelab.engine import Render, ResourceRecord
from tests.harness import (
    is_kubernetes_object,
    manifest,
    reference,
    reference_json,
    validate_kubernetes,
    yaml_documents,
)

# API group of a custom resource -> its folder under the upstream reference.
CRD_PROJECTS: dict[str, str] = {
    "cert-manager.io": "cert-manager",
    "metallb.io": "metallb",
    "traefik.io": "traefik",
}
UPSTREAM = "upstream"
# Custom resources whose CRD no upstream file in the reference carries: their openAPIV3Schema,
# ported here with its source. Talos applies the ServiceAccount CRD itself, from Go code
# (siderolabs/talos@v1.13.9:internal/app/machined/pkg/controllers/k8s/internal/k8stemplates/
# crds.go; its rendered form testdata/talos-service-account-crd.yaml, openAPIV3Schema).
PORTED_CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("talos.dev/v1alpha1", "ServiceAccount"): {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {"roles": {"type": "array", "items": {"type": "string"}}},
            },
            "status": {"type": "object", "properties": {"failureReason": {"type": "string"}}},
        },
    },
}
PORTED_CRD_GROUPS = frozenset(api.rpartition("/")[0] for api, _ in PORTED_CRD_SCHEMAS)
STRICT_OBJECT_META = f"{UPSTREAM}/kubernetes/standalone-strict-1.35/namespace-v1.json"


# --- custom resources ------------------------------------------------------------------------


def strict_schema(schema: Any) -> Any:
    """A copy of an OpenAPI schema where every object with `properties` rejects unknown keys.

    Objects that already say what extra keys may hold (`additionalProperties`) or that keep
    unknown fields on purpose (`x-kubernetes-preserve-unknown-fields`) are left as they are.
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def is_custom_resource(document: Mapping[str, Any]) -> bool:
    group = str(document.get("apiVersion", "")).rpartition("/")[0]
    return group in CRD_PROJECTS or group in PORTED_CRD_GROUPS


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    ported = PORTED_CRD_SCHEMAS.get((api_version, kind))
    if ported is not None:
        return jsonschema.Draft202012Validator(strict_schema(ported))
    group, _, version = api_version.rpartition("/")
    project = CRD_PROJECTS.get(group)
    if project is None:
        raise LookupError(f"no upstream CRD schemas known for API group {group!r}")
    schema = strict_schema(
        reference_json(f"{UPSTREAM}/{project}/crd-schemas/{group}/{kind}_{version}.json")
    )
    # Structural OpenAPI schemas are valid 2020-12 JSON Schema (upstream/SOURCES.md).
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _object_meta_validator() -> jsonschema.protocols.Validator:
    meta = reference_json(STRICT_OBJECT_META)["properties"]["metadata"]
    return jsonschema.Draft202012Validator(meta)


def _messages(errors: Iterable[jsonschema.ValidationError]) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors
    )


def custom_resource_errors(document: Mapping[str, Any]) -> list[str]:
    """Every way `document` breaks its strict CRD schema (empty when it conforms)."""
    validator = _crd_validator(str(document["apiVersion"]), str(document["kind"]))
    errors = _messages(validator.iter_errors(dict(document)))
    meta_errors = _messages(_object_meta_validator().iter_errors(document.get("metadata", {})))
    return errors + [f"metadata.{m}" for m in meta_errors]


def validate_custom_resource(document: Mapping[str, Any]) -> None:
    errors = custom_resource_errors(document)
    if errors:
        raise AssertionError(
            f"{document.get('kind')} {document.get('metadata', {}).get('name')!r} breaks its "
            "CRD schema:\n  " + "\n  ".join(errors)
        )


def validate_object(record: ResourceRecord) -> None:
    """A Kubernetes record against its contract: the CRD schema or the strict built-in schema."""
    document = manifest(record)
    if is_custom_resource(document):
        validate_custom_resource(document)
    else:
        validate_kubernetes(document)


def validate_objects(records: Iterable[ResourceRecord]) -> int:
    """Validate every plain Kubernetes object among `records`; returns how many were checked."""
    checked = 0
    for record in records:
        if is_kubernetes_object(record):
            validate_object(record)
            checked += 1
    return checked


# --- Helm values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartContract:
    """Where a chart's upstream values live, and which JSON Schema draft its schema uses."""

    folder: str
    validator: type[jsonschema.protocols.Validator] | None


CHARTS: dict[str, ChartContract] = {
    # metallb declares draft-07 with an https URI that jsonschema does not map: pick it here.
    "metallb": ChartContract(f"{UPSTREAM}/metallb/chart", jsonschema.Draft7Validator),
    "traefik": ChartContract(f"{UPSTREAM}/traefik/chart", jsonschema.Draft202012Validator),
    "cert-manager": ChartContract(f"{UPSTREAM}/cert-manager/chart", jsonschema.Draft7Validator),
    # No values.schema.json upstream: keys are checked against values.yaml.
    "reflector": ChartContract(f"{UPSTREAM}/reflector/chart", None),
}


@functools.cache
def _chart_defaults(folder: str) -> Any:
    return yaml.safe_load(reference(f"{folder}/values.yaml").read_text()) or {}


def chart_defaults(chart: str) -> dict[str, Any]:
    """The chart's own values.yaml (a fresh copy)."""
    defaults = _chart_defaults(CHARTS[chart].folder)
    assert isinstance(defaults, dict)
    return copy.deepcopy(defaults)


def helm_coalesce(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over chart defaults: maps merge, null deletes, rest replaces."""
    merged: dict[str, Any] = copy.deepcopy(dict(defaults))
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = helm_coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def unknown_value_keys(defaults: Any, values: Mapping[str, Any], path: str = "") -> list[str]:
    """Dotted paths in `values` that the chart's values.yaml does not have.

    Below a default that is an empty map (e.g. `podAnnotations: {}`) any key is accepted.
    """
    unknown: list[str] = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else str(key)
        if not isinstance(defaults, Mapping) or key not in defaults:
            unknown.append(here)
            continue
        default = defaults[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            unknown.extend(unknown_value_keys(default, value, here))
    return sorted(unknown)


def helm_values_errors(chart: str, values: Mapping[str, Any]) -> list[str]:
    """Every way `values` would fail `helm install` of `chart`'s pinned version."""
    contract = CHARTS[chart]
    defaults = chart_defaults(chart)
    if contract.validator is None:
        return [f"{key}: not a value of the chart" for key in unknown_value_keys(defaults, values)]
    schema = reference_json(f"{contract.folder}/values.schema.json")
    validator = contract.validator(schema)
    return _messages(validator.iter_errors(helm_coalesce(defaults, values)))


def validate_helm_values(chart: str, values: Mapping[str, Any]) -> None:
    errors = helm_values_errors(chart, values)
    if errors:
        raise AssertionError(f"values for chart {chart!r} are invalid:\n  " + "\n  ".join(errors))


# --- Talos machine configuration ------------------------------------------------------------

Document = dict[str, Any]
TALOS_SCHEMA = f"{UPSTREAM}/talos/config.schema.json"


def patch_documents(apply: ResourceRecord) -> list[Document]:
    return [d for patch in apply.input("configPatches") for d in yaml_documents(patch)]


def v1alpha1_part(documents: list[Document]) -> Document:
    """The v1alpha1 document: the only one without a `kind`."""
    (found,) = [d for d in documents if "kind" not in d]
    return found


def of_kind(documents: list[Document], kind: str) -> list[Document]:
    return [d for d in documents if d.get("kind") == kind]


def strategic_merge(target: Document, patch: Document) -> None:
    """Talos' strategic merge, as far as these patches use it (pkg/machinery/config/merge and
    configpatcher @ v1.13.9): maps merge key by key, `{$patch: delete}` removes the key, lists
    are appended."""
    for key, value in patch.items():
        if isinstance(value, dict) and value.get("$patch") == "delete":
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            strategic_merge(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + copy.deepcopy(value)
        else:
            target[key] = copy.deepcopy(value)


def merged_machine_config(apply: ResourceRecord) -> list[Document]:
    """The documents a node ends up with: its patches merged onto its role's generated config.

    Documents are matched as configpatcher does: the v1alpha1 document by having no `kind`,
    others by kind and (for named documents) name; an unmatched patch document is appended.
    """
    documents = yaml_documents(apply.input("machineConfigurationInput"))
    for patch in patch_documents(apply):
        key = (patch.get("kind"), patch.get("name"))
        target = next((d for d in documents if (d.get("kind"), d.get("name")) == key), None)
        if target is None:
            target = {}
            documents.append(target)
        strategic_merge(target, patch)
    return documents


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def talos_config_errors(apply: ResourceRecord) -> list[str]:
    """Every document of a node's final config (patches merged onto the generated base) that
    breaks the Talos schema. Each document is checked on its own: the schema's top level is a
    oneOf over document kinds (upstream/SOURCES.md)."""
    validator = jsonschema.Draft202012Validator(reference_json(TALOS_SCHEMA))
    errors: list[str] = []
    for document in merged_machine_config(apply):
        kind = document.get("kind", "v1alpha1")
        errors += [f"{kind}: {m}" for m in _messages(validator.iter_errors(document))]
    return errors


# --- records of one component ----------------------------------------------------------------


def component_records(render: Render, component_type: str) -> list[ResourceRecord]:
    """Every resource created under the one component of `component_type`, at any depth."""
    component = render.one(component_type)
    return [r for r in render.resources if any(a.urn == component.urn for a in render.ancestors(r))]


def depends_on(record: ResourceRecord, other: ResourceRecord) -> bool:
    """Whether `record` waits for `other` (an explicit or a data dependency)."""
    return other.urn in record.dependencies or any(
        other.urn in urns for urns in record.property_dependencies.values()
    )
