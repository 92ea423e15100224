"""The conventions the policy pack relies on are the ones the components follow."""

from __future__ import annotations

import functools

from components import security
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
