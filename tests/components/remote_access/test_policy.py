"""The rendered ACL policy as Headscale receives it, tied to the router it must approve."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from config.loader import validate_config
from config.policy import ADMIN_GROUP, document_problems
from programs.build import parameters
from tests.components.remote_access.remote_access import (
    COMMAND,
    DEPLOYMENT,
    HEADSCALE,
    ROUTER,
    child,
    container,
    env_of,
    headscale_files,
    pod_spec,
    render_remote_access,
)
from tests.harness import homelab_render, stack_raw_config


def rendered_policy(render: Any = None) -> dict[str, Any]:
    document = json.loads(headscale_files(render or homelab_render())["policy.json"])
    assert isinstance(document, dict)
    return document


def router_routes_and_tag(render: Any = None) -> tuple[list[str], str]:
    """The routes the router advertises and the tag its node gets: the tag of its pre-auth key
    (Headscale 0.28 takes a pre-auth-key node's tags from the key, hscontrol/state/state.go)."""
    render = render or homelab_render()
    spec = pod_spec(child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment"))
    env = env_of(container(spec, "tailscale"))
    script = child(render, HEADSCALE, COMMAND, "headscale-router-key").input("create")
    params = parameters(script)
    (tag,) = params["tags"]
    return env["TS_ROUTES"].split(","), tag


def test_every_route_the_router_advertises_is_auto_approved_for_its_tag() -> None:
    routes, tag = router_routes_and_tag()
    approvers = rendered_policy()["autoApprovers"]["routes"]
    for route in routes:
        assert approvers[route] == [tag]


def test_the_routers_tag_is_owned_so_the_tagged_key_is_accepted() -> None:
    _, tag = router_routes_and_tag()
    policy = rendered_policy()
    assert tag in policy["tagOwners"]
    assert policy["tagOwners"][tag] == [ADMIN_GROUP]


def test_admins_reach_the_lan_through_the_router_and_nothing_else_is_allowed() -> None:
    config = validate_config(stack_raw_config())
    policy = rendered_policy()
    assert policy["groups"][ADMIN_GROUP] == [f"{config.remote_access.admin_user}@"]
    # No `acls` would be allow-all; the built-in admin rule comes first, the stack's own after.
    rule = policy["acls"][0]
    assert rule["src"] == [ADMIN_GROUP]
    assert all(ADMIN_GROUP not in r["src"] for r in policy["acls"][1:])
    routes, _ = router_routes_and_tag()
    for route in routes:
        assert f"{route}:*" in rule["dst"]


def test_configured_routes_are_approved_and_reachable() -> None:
    custom = ["192.168.0.128/25"]  # holds Traefik's IP: a route without it is refused
    render = render_remote_access({"router": {"routes": custom}})
    routes, tag = router_routes_and_tag(render)
    policy = rendered_policy(render)
    assert routes == custom
    assert policy["autoApprovers"]["routes"] == {custom[0]: [tag]}
    assert policy["acls"][0]["dst"] == ["*:*", f"{custom[0]}:*"]


def test_configured_rules_follow_the_admin_rule() -> None:
    extra = {
        "groups": {"group:family": ["alice@"]},
        "hosts": {"nas": "192.168.0.20/32"},
        "acls": [{"src": ["group:family"], "dst": ["nas:443"]}],
    }
    policy = rendered_policy(render_remote_access({"policy": extra}))
    assert policy["acls"][1] == {"action": "accept", "src": ["group:family"], "dst": ["nas:443"]}
    # Beside the configured alias, every web host is an alias at Traefik's IP (config/access.py).
    config = validate_config(stack_raw_config())
    traefik = f"{config.network.traefik_ip}/32"
    assert policy["hosts"] == {"nas": "192.168.0.20/32", "grafana": traefik, "headplane": traefik}
    assert ipaddress.IPv4Network(policy["hosts"]["nas"]).subnet_of(
        ipaddress.IPv4Network("192.168.0.0/24")
    )


def test_rendered_policy_passes_headscales_reference_checks() -> None:
    assert document_problems(rendered_policy()) == []


def test_reference_checks_catch_an_unowned_approver() -> None:
    # Guards the test above: a broken document is flagged.
    policy = rendered_policy()
    policy["tagOwners"] = {}
    problems = document_problems(policy)
    assert any(path.startswith("autoApprovers.routes.") for path, _, _ in problems)
