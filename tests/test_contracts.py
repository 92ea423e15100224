"""The contract helpers catch what the upstream schemas alone would let through."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.contracts import (
    UPSTREAM,
    custom_resource_errors,
    helm_coalesce,
    helm_values_errors,
    strict_schema,
    unknown_value_keys,
)
from tests.harness import reference_json

POOL: dict[str, Any] = {
    "apiVersion": "metallb.io/v1beta1",
    "kind": "IPAddressPool",
    "metadata": {"name": "lan", "namespace": "metallb-system"},
    "spec": {"addresses": ["192.168.0.220-192.168.0.239"]},
}


def test_a_valid_custom_resource_has_no_errors() -> None:
    assert custom_resource_errors(POOL) == []


def test_a_misspelled_field_fails_only_once_the_crd_schema_is_strict() -> None:
    typo = {**POOL, "spec": {**POOL["spec"], "autoAsign": False}}
    upstream = reference_json(
        f"{UPSTREAM}/metallb/crd-schemas/metallb.io/IPAddressPool_v1beta1.json"
    )
    # The CRD schema as published accepts it (the API server would silently prune the field).
    assert jsonschema.Draft202012Validator(upstream).is_valid(typo)
    assert any("autoAsign" in error for error in custom_resource_errors(typo))


def test_unknown_metadata_and_top_level_keys_fail() -> None:
    assert custom_resource_errors({**POOL, "metadata": {"name": "lan", "lables": {}}})
    assert custom_resource_errors({**POOL, "extra": True})


def test_wrong_types_fail() -> None:
    assert custom_resource_errors({**POOL, "spec": {"addresses": "192.168.0.220/32"}})


def test_strictness_respects_preserved_unknown_fields_and_declared_maps() -> None:
    schema = strict_schema(
        {
            "type": "object",
            "properties": {
                "open": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {}},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        }
    )
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"open": {"b": 1}, "labels": {"x": "y"}, "closed": {"a": "z"}})
    assert not validator.is_valid({"closed": {"b": "z"}})
    assert not validator.is_valid({"unknown": 1})


def test_helm_coalesce_merges_maps_replaces_the_rest_and_deletes_on_null() -> None:
    defaults = {"a": {"b": 1, "c": [1]}, "d": 2, "e": 3}
    merged = helm_coalesce(defaults, {"a": {"c": [2]}, "d": None, "f": {"g": 4}})
    assert merged == {"a": {"b": 1, "c": [2]}, "e": 3, "f": {"g": 4}}
    assert defaults == {"a": {"b": 1, "c": [1]}, "d": 2, "e": 3}


def test_unknown_value_keys_allow_anything_below_an_empty_map_default() -> None:
    defaults = {"podAnnotations": {}, "image": {"tag": ""}}
    assert unknown_value_keys(defaults, {"podAnnotations": {"any": "x"}}) == []
    assert unknown_value_keys(defaults, {"image": {"tga": "1"}, "imag": {}}) == [
        "imag",
        "image.tga",
    ]


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        ("traefik", {"dashbaord": True}),  # top-level additionalProperties: false
        ("traefik", {"ports": {"web": {"exposedPort": "eighty"}}}),
        ("metallb", {"speaker": {"frr": {"enabled": "no"}}}),
        ("cert-manager", {"crds": {"enabled": "yes"}}),
        ("cert-manager", {"installCRD": True}),
        ("reflector", {"configuration": {"watcher": {"exludedNamespaces": "x"}}}),
    ],
)
def test_bad_helm_values_are_reported(chart: str, values: dict[str, Any]) -> None:
    assert helm_values_errors(chart, values)


@pytest.mark.parametrize("chart", ["traefik", "metallb", "cert-manager", "reflector"])
def test_chart_defaults_alone_are_valid(chart: str) -> None:
    assert helm_values_errors(chart, {}) == []
