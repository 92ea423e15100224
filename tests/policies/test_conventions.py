"""The conventions the policy pack relies on are the ones the components follow."""

from __future__ import annotations

import functools
import re

import pytest

from components.shared import security
from homelab import engine
from homelab.engine import ResourceRecord
from policies import rules
from tests.harness import PROJECT_ROOT, fixture_stack_config

ROUTE_PROGRAM = PROJECT_ROOT / "tests" / "policies" / "route_program.py"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"


@functools.cache
def homelab_routes() -> tuple[ResourceRecord, ...]:
    """Every exposed host of the committed stack, published through the real `route_host`."""
    config, secret_keys = fixture_stack_config("homelab")
    render = engine.render("homelab", config=config, secret_keys=secret_keys, program=ROUTE_PROGRAM)
    return tuple(render.by_type(INGRESS_ROUTE))


def visibility(route: ResourceRecord) -> str:
    return str(route.input("metadata.annotations")[rules.VISIBILITY_ANNOTATION])


def test_policy_and_components_use_the_same_visibility_annotation() -> None:
    assert rules.VISIBILITY_ANNOTATION == security.VISIBILITY_ANNOTATION
    assert security.visibility_annotations("public") == {rules.VISIBILITY_ANNOTATION: "public"}


def test_route_host_output_passes_the_allowlist_policy_for_every_exposed_host() -> None:
    routes = homelab_routes()
    # Headscale is public; Headplane and Grafana are private (config/model.py exposed_hosts).
    assert sorted(visibility(r) for r in routes) == ["private", "private", "public"]
    for route in routes:
        assert rules.check_private_routes_allowlisted(route.type, route.inputs) == []


def test_a_public_route_without_its_marker_is_refused() -> None:
    (public,) = [r for r in homelab_routes() if visibility(r) == "public"]
    unmarked = {**public.inputs, "metadata": {"name": public.input("metadata.name")}}
    problems = rules.check_private_routes_allowlisted(public.type, unmarked)
    assert len(problems) == 2  # both of its routes


# kubernetes/apimachinery pkg/util/validation/validation.go: IsQualifiedName splits on '/', the
# prefix must pass IsDNS1123Subdomain (dns1123LabelFmt joined by '.', at most 253 characters) and
# the name must match qualifiedNameFmt (at most 63 characters).
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def test_the_visibility_annotation_is_a_kubernetes_qualified_name() -> None:
    """kubernetes/apimachinery pkg/util/validation/validation.go `IsQualifiedName`: an annotation
    key the API server accepts (prefix a DNS-1123 subdomain, name a qualified name)."""
    prefix, slash, name = rules.VISIBILITY_ANNOTATION.partition("/")
    assert slash
    assert _DNS1123_SUBDOMAIN.fullmatch(prefix)
    assert len(prefix) <= 253
    assert _QUALIFIED_NAME.fullmatch(name)
    assert len(name) <= 63


@pytest.mark.stack_files  # whatever domain the committed (and a fork's) stack files name
def test_the_visibility_annotation_belongs_to_the_project_not_to_a_stack_domain() -> None:
    # Whatever domain a stack serves, the marker is the same: it names this project.
    prefix = rules.VISIBILITY_ANNOTATION.partition("/")[0]
    stack_files = [PROJECT_ROOT / "Pulumi.homelab.yaml", PROJECT_ROOT / "Pulumi.lab.yaml"]
    stack_files += sorted(
        (PROJECT_ROOT / "tests" / "fixtures" / "configs" / "valid").glob("*.yaml")
    )
    for path in stack_files:
        config, _ = engine.read_stack_file(path)
        domain = str(config["homelab:domain"])
        assert domain not in prefix, (path.name, domain)
    assert security.VISIBILITY_ANNOTATION is rules.VISIBILITY_ANNOTATION
