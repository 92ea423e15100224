"""Reflector: the wildcard Secret reaches exactly the namespaces that serve TLS."""

from __future__ import annotations

from typing import Any

from config import pins
from config.loader import validate_config
from homelab.engine import Render
from tests.contracts import component_records, validate_helm_values, validate_objects
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config

REFLECTOR = "homelab:platform:Reflector"
RELEASE = "kubernetes:helm.sh/v3:Release"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"
PREFIX = "reflector.v1.k8s.emberstack.com/"
MEDIA_APP = {"name": "jellyfin", "namespace": "media", "service": "jellyfin", "port": 8096}


def secret_annotations(render: Render) -> dict[str, str]:
    annotations = render.one(CERTIFICATE).input("spec.secretTemplate.annotations")
    assert isinstance(annotations, dict)
    return annotations


def listed(annotations: dict[str, str], name: str) -> set[str]:
    return set(annotations[PREFIX + name].split(","))


def tls_serving_namespaces(raw: dict[str, Any], render: Render) -> set[str]:
    """Traefik's namespace (default certificate) and every exposed host's (its route's TLS)."""
    config = validate_config(raw)
    traefik_namespace = render.one(RELEASE, "traefik").input("namespace")
    return {traefik_namespace, *(h.namespace for h in config.exposed_hosts())}


def test_every_reflector_object_meets_its_schema() -> None:
    assert validate_objects(component_records(homelab_render(), REFLECTOR)) == 1


def test_chart_is_pinned_and_sets_only_values_the_chart_has() -> None:
    release = homelab_render().one(RELEASE, "reflector")
    assert release.input("version") == pins.REFLECTOR_CHART_VERSION
    validate_helm_values("reflector", helm_values(release))


def test_secret_is_allowed_and_auto_mirrored_into_exactly_the_tls_namespaces() -> None:
    render = homelab_render()
    annotations = secret_annotations(render)
    expected = tls_serving_namespaces(stack_raw_config(), render)
    assert annotations[PREFIX + "reflection-allowed"] == "true"
    assert annotations[PREFIX + "reflection-auto-enabled"] == "true"
    # Both lists: auto mirrors must also be allowed (reflector #525).
    assert listed(annotations, "reflection-allowed-namespaces") == expected
    assert listed(annotations, "reflection-auto-namespaces") == expected


def test_every_route_finds_the_secret_in_its_own_namespace() -> None:
    render = homelab_render()
    mirrored = listed(secret_annotations(render), "reflection-auto-namespaces")
    secret_name = render.one(CERTIFICATE).input("spec.secretName")
    for route in render.by_type(INGRESS_ROUTE):
        assert route.input("spec.tls.secretName") == secret_name
        assert route.input("metadata.namespace") in mirrored


def test_a_new_app_namespace_is_added_and_nothing_else() -> None:
    raw = stack_raw_config()
    raw["apps"] = [*raw["apps"], MEDIA_APP]
    render = render_stack("homelab", overrides={"apps": raw["apps"]})
    annotations = secret_annotations(render)
    before = listed(secret_annotations(homelab_render()), "reflection-auto-namespaces")
    after = listed(annotations, "reflection-auto-namespaces")
    assert after - before == {MEDIA_APP["namespace"]}
    assert after == tls_serving_namespaces(raw, render)
    assert listed(annotations, "reflection-allowed-namespaces") == after


def test_the_mirror_list_is_what_the_certificate_component_reports() -> None:
    render = homelab_render()
    (outputs,) = [
        v
        for urn, v in render.component_outputs.items()
        if urn.endswith("CertManager::cert-manager")
    ]
    assert set(outputs["namespaces"]) == listed(
        secret_annotations(render), "reflection-auto-namespaces"
    )
