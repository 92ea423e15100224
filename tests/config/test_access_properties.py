"""Properties of the access evaluator over random policies (hypothesis).

The policies are drawn from a small vocabulary of users, groups, tags, LAN hosts and ports so that
rules overlap often; the subnet router advertises the LAN and is auto-approved, as the stack does.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.access import Destination, Principal, Tailnet
from config.policy import ADMIN_GROUP, ANY_PORT, AclPolicy, render_policy

LAN = ipaddress.IPv4Network("192.168.0.0/24")
ROUTER = "tag:router"
USERS = ["alice@", "bob@", "carol@"]
GROUPS = ["group:family", "group:ops"]
TAGS = ["tag:web", "tag:db"]
HOSTS = {"nas": "192.168.0.5/32", "printer": "192.168.0.9/32", "half": "192.168.0.0/25"}
PORTS = ["*", "22", "443", "80,443", "8000-9000"]
RANK = {"deny": 0, "partial": 1, "allow": 2}
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

sources = st.sampled_from([*USERS, *GROUPS, *TAGS, "*", "autogroup:member", "autogroup:tagged"])
targets = st.sampled_from(
    [*USERS, *GROUPS, *TAGS, *HOSTS, "*", "192.168.0.0/24", "192.168.0.220", "autogroup:member"]
)
rules = st.builds(
    lambda src, dst: {"action": "accept", "src": src, "dst": dst},
    st.lists(sources, min_size=1, max_size=3),
    st.lists(
        st.builds(lambda t, p: f"{t}:{p}", targets, st.sampled_from(PORTS)), min_size=1, max_size=3
    ),
)
destinations = st.one_of(
    st.builds(
        lambda host, port: Destination(f"{host}:{port}", ipaddress.IPv4Network(host), (port, port)),
        st.sampled_from(
            ["192.168.0.5/32", "192.168.0.220/32", "192.168.0.200/32", "100.64.0.0/10"]
        ),
        st.sampled_from([22, 80, 443, 8500]),
    ),
    st.just(Destination("lan", LAN, ANY_PORT)),
)
principals = st.sampled_from([Principal(n) for n in [*USERS, *GROUPS, *TAGS]])


def document(acls: list[dict[str, Any]], members: dict[str, list[str]]) -> dict[str, Any]:
    policy = AclPolicy.model_validate(
        {
            "groups": members,
            "tagOwners": {"tag:web": ["group:ops"], "tag:db": ["carol@"]},
            "hosts": HOSTS,
            "acls": acls,
        }
    )
    return render_policy(policy, admin_user="admin", router_tag=ROUTER, subnet_routes=[LAN])


memberships = st.fixed_dictionaries(
    {g: st.lists(st.sampled_from(USERS), unique=True, max_size=2) for g in GROUPS}
)


def tailnet(acls: list[dict[str, Any]], members: dict[str, list[str]]) -> Tailnet:
    return Tailnet(document(acls, members), {ROUTER: (LAN,)})


@FAST
@given(st.lists(rules, max_size=4), rules, memberships, principals, destinations)
def test_adding_an_accept_rule_never_removes_access(
    acls: list[dict[str, Any]],
    extra: dict[str, Any],
    members: dict[str, list[str]],
    who: Principal,
    where: Destination,
) -> None:
    before = tailnet(acls, members).reach(who, where).status
    after = tailnet([*acls, extra], members).reach(who, where).status
    assert RANK[after] >= RANK[before]


@FAST
@given(st.lists(rules, max_size=4), memberships, destinations)
def test_a_principal_no_rule_names_reaches_nothing(
    acls: list[dict[str, Any]], members: dict[str, list[str]], where: Destination
) -> None:
    # Without '*' and the autogroups, only names grant access; dave is named nowhere.
    named_only = [
        {**rule, "src": [s for s in rule["src"] if not s.startswith(("*", "autogroup:"))]}
        for rule in acls
    ]
    named_only = [rule for rule in named_only if rule["src"]]
    assert tailnet(named_only, members).reach(Principal("dave@"), where).status == "deny"


@FAST
@given(
    st.lists(rules, max_size=3),
    memberships,
    st.sampled_from(USERS),
    st.sampled_from(["192.168.0.5", "192.168.0.220", "192.168.0.77"]),
    st.integers(min_value=1, max_value=65535),
)
def test_a_rule_naming_a_user_and_a_routed_address_grants_exactly_that(
    acls: list[dict[str, Any]], members: dict[str, list[str]], user: str, host: str, port: int
) -> None:
    grant = {"action": "accept", "src": [user], "dst": [f"{host}:{port}"]}
    result = tailnet([*acls, grant], members).reach(
        Principal(user), Destination(host, ipaddress.IPv4Network(host), (port, port))
    )
    assert result.status == "allow"
    assert len(acls) + 1 in result.rules  # the grant, after the built-in admin rule


@FAST
@given(st.lists(rules, max_size=4), memberships, destinations)
def test_the_admin_always_reaches_the_lan_and_the_router_tag_is_never_a_source(
    acls: list[dict[str, Any]], members: dict[str, list[str]], where: Destination
) -> None:
    network = tailnet(acls, members)
    assert network.reach(Principal("admin@"), Destination("lan", LAN, ANY_PORT)).status == "allow"
    assert network.reach(
        Principal(ADMIN_GROUP), where
    ).status == "allow" or not where.network.subnet_of(LAN)
    # No drawn rule names the router's tag, so only '*' and autogroup:tagged can grant it.
    loose = any(s in ("*", "autogroup:tagged") for rule in acls for s in rule["src"])
    if not loose:
        assert network.reach(Principal(ROUTER), where).status == "deny"
