"""The ACL policy in the stack config: its model, render_policy, and the rules Headscale enforces."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from config.loader import ConfigError, validate_config
from config.policy import ADMIN_GROUP, AclPolicy, render_policy
from config.rules import policy_references_exist, policy_subnets_in_lan
from tests.harness import stack_raw_config, with_changes

LAN = ipaddress.IPv4Network("192.168.0.0/24")


def problems_for(policy: dict[str, Any], **remote: Any) -> list[str]:
    """The config error lines for the homelab stack with this policy (empty when valid)."""
    raw = stack_raw_config()
    remote_access = with_changes(raw["remoteAccess"], {"policy": policy})
    remote_access.update(remote)
    try:
        validate_config({**raw, "remoteAccess": remote_access})
    except ConfigError as error:
        return [p.line() for p in error.problems]
    return []


# --- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["alice@", "alice@example.com", "bob.smith@"])
def test_group_members_are_users_by_name_or_email(member: str) -> None:
    assert problems_for({"groups": {"group:family": [member]}}) == []


@pytest.mark.parametrize("member", ["alice", "group:admins", "tag:x"])
def test_group_members_that_headscale_refuses_are_config_errors(member: str) -> None:
    # Headscale has no nested groups and needs '@' to read a name as a user.
    (line,) = problems_for({"groups": {"group:family": [member]}})
    assert line.startswith("homelab:remoteAccess.policy.groups.group:family[0]")


def test_host_aliases_may_have_dots_but_may_not_look_like_addresses() -> None:
    assert problems_for({"hosts": {"nas.home": "192.168.0.20/32"}}) == []
    (line,) = problems_for({"hosts": {"10.0.0.1": "192.168.0.20/32"}})
    assert "not an address" in line


def test_destinations_need_ports() -> None:
    (line,) = problems_for({"acls": [{"src": ["group:admins"], "dst": ["192.168.0.0/24"]}]})
    assert "acls[0].dst[0]" in line


# --- render_policy ----------------------------------------------------------------------------


def test_render_merges_configured_groups_and_owners_with_the_stacks() -> None:
    policy = AclPolicy.model_validate(
        {"groups": {ADMIN_GROUP: ["bob@"]}, "tagOwners": {"tag:k8s-router": ["alice@"]}}
    )
    document = render_policy(
        policy, admin_user="admin", router_tag="tag:k8s-router", subnet_routes=[LAN]
    )
    assert document["groups"][ADMIN_GROUP] == ["admin@", "bob@"]
    assert document["tagOwners"]["tag:k8s-router"] == ["alice@", ADMIN_GROUP]
    assert document["autoApprovers"] == {"routes": {"192.168.0.0/24": ["tag:k8s-router"]}}


def test_render_is_order_independent_for_routes() -> None:
    a = ipaddress.IPv4Network("192.168.0.128/25")
    b = ipaddress.IPv4Network("192.168.0.0/25")

    def render(routes: list[ipaddress.IPv4Network]) -> dict[str, Any]:
        return render_policy(
            AclPolicy(), admin_user="admin", router_tag="tag:r", subnet_routes=routes
        )

    assert render([a, b]) == render([b, a])


# --- policy_references_exist ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "key"),
    [
        pytest.param(
            {"acls": [{"src": ["group:nobody"], "dst": ["*:*"]}]},
            "acls[0].src[0]",
            id="undefined-group-in-src",
        ),
        pytest.param(
            {"tagOwners": {"tag:web": ["group:nobody"]}},
            "tagOwners.tag:web[0]",
            id="undefined-group-owns-a-tag",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["tag:web:443"]}]},
            "acls[0].dst[0]",
            id="unowned-tag-in-dst",
        ),
        pytest.param(
            {"tagOwners": {"tag:web": ["tag:db"]}},
            "tagOwners.tag:web[0]",
            id="owner-tag-without-owner",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["nas:443"]}]},
            "acls[0].dst[0]",
            id="undefined-host",
        ),
        pytest.param(
            {"acls": [{"src": ["autogroup:self"], "dst": ["*:*"]}]},
            "acls[0].src[0]",
            id="autogroup-self-as-source",
        ),
        pytest.param(
            {"acls": [{"src": ["autogroup:internet"], "dst": ["*:*"]}]},
            "acls[0].src[0]",
            id="autogroup-internet-as-source",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["autogroup:admin:*"]}]},
            "acls[0].dst[0]",
            id="unknown-autogroup",
        ),
        pytest.param(
            {"acls": [{"src": ["Not A Selector"], "dst": ["*:*"]}]},
            "acls[0].src[0]",
            id="not-a-selector",
        ),
        pytest.param(
            {"tagOwners": {"tag:a": ["tag:b"], "tag:b": ["tag:a"]}},
            "tagOwners.tag:a",
            id="circular-tag-owners",
        ),
    ],
)
def test_policy_references_exist_flags(policy: dict[str, Any], key: str) -> None:
    lines = problems_for(policy)
    assert any(line.startswith(f"homelab:remoteAccess.policy.{key}") for line in lines), lines


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            {"acls": [{"src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]},
            id="member-to-self",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["autogroup:internet:*"]}]},
            id="internet-as-destination",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["tag:k8s-router:22"]}]},
            id="router-tag-is-owned-by-the-stack",
        ),
        pytest.param(
            {
                "tagOwners": {"tag:web": ["tag:k8s-router"]},
                "acls": [{"src": ["tag:web"], "dst": ["*:*"]}],
            },
            id="tag-owned-by-a-tag",
        ),
        pytest.param(
            {
                "hosts": {"nas": "192.168.0.20/32"},
                "acls": [{"src": ["alice@"], "dst": ["nas:443"]}],
            },
            id="defined-host",
        ),
    ],
)
def test_policy_references_exist_accepts_what_headscale_accepts(policy: dict[str, Any]) -> None:
    assert problems_for(policy) == []


def test_policy_references_exist_names_the_rule() -> None:
    config = validate_config(stack_raw_config())
    assert list(policy_references_exist(config)) == []


# --- policy_subnets_in_lan --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "key", "remote"),
    [
        pytest.param({"hosts": {"far": "10.0.0.0/24"}}, "hosts.far", {}, id="host-off-the-lan"),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["10.0.0.0/8:*"]}]},
            "acls[0].dst[0]",
            {},
            id="destination-off-the-lan",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["192.168.0.0/16:*"]}]},
            "acls[0].dst[0]",
            {},
            id="destination-wider-than-the-lan",
        ),
        pytest.param(
            {"hosts": {"printer": "192.168.0.200/32"}},
            "hosts.printer",
            {"router": {"routes": ["192.168.0.0/25"]}},
            id="lan-host-outside-the-advertised-route",
        ),
    ],
)
def test_policy_subnets_in_lan_flags(
    policy: dict[str, Any], key: str, remote: dict[str, Any]
) -> None:
    lines = problems_for(policy, **remote)
    assert any(line.startswith(f"homelab:remoteAccess.policy.{key}") for line in lines), lines


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"hosts": {"nas": "192.168.0.20/32"}}, id="lan-host"),
        pytest.param({"hosts": {"router": "100.64.0.1/32"}}, id="tailnet-host"),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["192.168.0.0/25:443"]}]},
            id="lan-destination",
        ),
        pytest.param(
            {"acls": [{"src": ["group:admins"], "dst": ["100.64.0.0/10:*"]}]},
            id="tailnet-destination",
        ),
    ],
)
def test_policy_subnets_in_lan_accepts_reachable_addresses(policy: dict[str, Any]) -> None:
    assert problems_for(policy) == []


def test_policy_subnets_in_lan_is_quiet_for_the_homelab_stack() -> None:
    config = validate_config(stack_raw_config())
    assert list(policy_subnets_in_lan(config)) == []
