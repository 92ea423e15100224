"""The access evaluator (config/access.py) against Headscale's own policy tests, and over stacks.

Each upstream case names its test in juanfont/headscale@v0.28.0 hscontrol/policy (reduce_test.go,
v2/filter_test.go, v2/types_test.go); the policy documents are those cases' policies, the expected
answers are what those tests assert Headscale compiles, restated as "who reaches what".
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from components.platform.traefik import PUBLIC_ENTRYPOINT
from config.access import (
    UNNAMED_USER,
    Destination,
    Principal,
    Tailnet,
    builtin_problems,
    stack_policy_document,
    stack_tailnet,
)
from config.loader import validate_config
from config.policy import ANY_PORT, AclPolicy, evaluates_tests, headscale_version, render_policy
from homelab import engine
from homelab.render import INGRESS_ROUTE, render_files
from tests.config.corpus import VALID_DIR, mutate, render_raw, valid_raw_config
from tests.harness import stack_raw_config

Net = ipaddress.IPv4Network


def to(address: str, port: int | None = None) -> Destination:
    ports = ANY_PORT if port is None else (port, port)
    return Destination(address, Net(address), ports)


def acl(src: list[str], dst: list[str], **extra: Any) -> dict[str, Any]:
    return {"action": "accept", "src": src, "dst": dst, **extra}


def routed(document: dict[str, Any], tag: str, *routes: str) -> Tailnet:
    return Tailnet(document, {tag: tuple(Net(r) for r in routes)})


# --- Headscale's cases ----------------------------------------------------------------------


def test_1604_subnet_routes_stay_reachable_for_the_granted_group() -> None:
    """reduce_test.go TestReduceFilterRules "1604-subnet-routers-are-preserved": a rule to
    10.33.0.0/16 is kept for the node routing it (ReduceFilterRules keeps destinations that
    overlap the node's routes), so group:admins reaches the subnet through it."""
    document = {
        "groups": {"group:admins": ["user1@"]},
        "tagOwners": {"tag:router": []},
        "acls": [
            acl(["group:admins"], ["group:admins:*"], proto=""),
            acl(["group:admins"], ["10.33.0.0/16:*"], proto=""),
        ],
        "autoApprovers": {"routes": {"10.33.0.0/16": ["tag:router"]}},
    }
    tailnet = routed(document, "tag:router", "10.33.0.0/16")
    verdict = tailnet.reach(Principal("user1@"), to("10.33.0.0/16"))
    assert (verdict.status, verdict.rules) == ("allow", (1,))
    # The same grant for user2, who is not in the group: nothing.
    assert tailnet.reach(Principal("user2@"), to("10.33.1.1/32", 22)).status == "deny"


def test_2365_a_grant_to_an_unrouted_prefix_reaches_nothing() -> None:
    """reduce_test.go "2365-only-route-policy": 'node' may reach 172.26.0.0/16, but the router
    advertises 172.16.0.0/24 and 10.10.11-12.0/24 only, so no filter rule reaches it."""
    document = {
        "hosts": {"router": "100.64.0.1/32", "node": "100.64.0.2/32"},
        "tagOwners": {"tag:router": []},
        "acls": [acl(["*"], ["router:8000"]), acl(["node"], ["172.26.0.0/16:*"])],
        "autoApprovers": {
            "routes": {r: ["tag:router"] for r in ("172.16.0.0/24", "10.10.11.0/24")}
        },
    }
    tailnet = routed(document, "tag:router", "172.16.0.0/24", "10.10.11.0/24")
    verdict = tailnet.reach(Principal("user3@"), to("172.26.0.9/32", 80))
    assert verdict.status == "deny"
    assert verdict.note == "granted but not routed"
    # '*' reaches the router's host alias on 8000 and only there.
    assert tailnet.reach(Principal("user3@"), to("100.64.0.1/32", 8000)).status == "allow"
    assert tailnet.reach(Principal("user3@"), to("100.64.0.1/32", 8001)).status == "deny"


def test_user_sources_do_not_match_tagged_devices() -> None:
    """filter_test.go TestTagUserMutualExclusivity: 'user1@' as a source matches user1's
    untagged devices only; the tagged node user1 created is matched by its tag (rule 2 only)."""
    document = {
        "tagOwners": {"tag:server": ["user1@"], "tag:database": ["user2@"]},
        "acls": [acl(["user1@"], ["tag:server:*"]), acl(["tag:server"], ["tag:database:*"])],
    }
    tailnet = Tailnet(document)
    tailnet_range = to("100.64.0.0/10")
    assert tailnet.reach(Principal("tag:server"), tailnet_range).rules == (1,)
    assert tailnet.reach(Principal("tag:database"), tailnet_range).status == "deny"


def test_autogroup_tagged_matches_tagged_devices_only() -> None:
    """filter_test.go TestAutogroupTagged "tag:server can reach user-owned nodes": a source
    autogroup:tagged holds every tagged device and no user-owned one (types.go AutoGroup.Resolve)."""
    document = {
        "tagOwners": {"tag:server": ["user1@"]},
        "acls": [acl(["autogroup:tagged"], ["autogroup:member:*"])],
    }
    tailnet = Tailnet(document)
    assert tailnet.reach(Principal("tag:server"), to("100.64.0.0/10")).status == "partial"
    # user2 owns no tag, so no device of theirs is tagged.
    assert tailnet.reach(Principal("user2@"), to("100.64.0.0/10")).status == "deny"


def test_protocols_split_one_host_by_port_and_proto() -> None:
    """filter_test.go TestParsing "parse-protocol": tcp host-1:*, udp host-1:53, icmp host-1:*;
    an omitted proto compiles to IPProto [6, 17] (reduce_test.go "1604-…" wants)."""
    document = {
        "hosts": {"host-1": "100.100.100.100"},
        "acls": [
            acl(["*"], ["host-1:*"], proto="tcp"),
            acl(["*"], ["host-1:53"], proto="udp"),
            acl(["*"], ["host-1:*"], proto="icmp"),
        ],
    }
    tailnet = Tailnet(document)
    anyone = Principal("user1@")
    host = "100.100.100.100/32"
    assert tailnet.reach(anyone, to(host, 22), "tcp").status == "allow"
    assert tailnet.reach(anyone, to(host, 53), "udp").status == "allow"
    assert tailnet.reach(anyone, to(host, 54), "udp").status == "deny"
    assert tailnet.reach(anyone, to(host), "icmp").status == "allow"
    assert tailnet.reach(anyone, to(host, 22), "sctp").status == "deny"


def test_port_ranges_and_lists() -> None:
    """filter_test.go TestParsing "port-range" (5400-5500) and "port-group" (80,443 style)."""
    document = {
        "hosts": {"host-1": "100.100.100.100/32"},
        "acls": [acl(["*"], ["host-1:5400-5500"]), acl(["*"], ["host-1:80,443"])],
    }
    tailnet = Tailnet(document)
    host = "100.100.100.100/32"
    for port, status in [(5400, "allow"), (5500, "allow"), (5501, "deny"), (443, "allow")]:
        assert tailnet.reach(Principal("a@"), to(host, port)).status == status, port
    assert tailnet.reach(Principal("a@"), to(host)).status == "partial"


def test_route_approval_needs_the_routers_tag_among_the_approvers() -> None:
    """types_test.go TestNodeCanApproveRoute "single-route-approval" / "no-approval", and the
    parent-prefix path of policy.go NodeCanApproveRoute (`prefix.Bits() <= route.Bits()`)."""
    base: dict[str, Any] = {"tagOwners": {"tag:router": [], "tag:other": []}, "acls": []}

    def approved(approvers: dict[str, list[str]], route: str) -> list[Net]:
        document = {**base, "autoApprovers": {"routes": approvers}}
        return routed(document, "tag:router", route).approved_routes()

    assert approved({"10.0.0.0/24": ["tag:router"]}, "10.0.0.0/24") == [Net("10.0.0.0/24")]
    assert approved({"10.0.0.0/24": ["tag:other"]}, "10.0.0.0/24") == []
    assert approved({"10.0.0.0/8": ["tag:router"]}, "10.0.10.0/24") == [Net("10.0.10.0/24")]
    # A narrower approver prefix does not approve the wider route.
    assert approved({"10.0.10.0/24": ["tag:router"]}, "10.0.0.0/16") == []


def test_wildcard_destination_covers_subnet_routes_in_0_28() -> None:
    """types.go Asterix.Resolve @ v0.28.0: '*' is all of IPv4 and IPv6, so '*:*' also reaches
    approved subnet routes (0.29 narrows this, hence the explicit LAN rule in render_policy)."""
    document = {
        "groups": {"group:admins": ["admin@"]},
        "tagOwners": {"tag:router": []},
        "acls": [acl(["group:admins"], ["*:*"])],
        "autoApprovers": {"routes": {"192.168.0.0/24": ["tag:router"]}},
    }
    tailnet = routed(document, "tag:router", "192.168.0.0/24")
    assert tailnet.reach(Principal("admin@"), to("192.168.0.0/24")).status == "allow"


def test_owning_a_tag_is_reaching_what_the_tag_reaches() -> None:
    """policy.go NodeCanHaveTag: an owner (directly, through a group, or through a tag that owns
    the tag, types_test.go "tags-can-own-other-tags") may tag their own device."""
    document = {
        "groups": {"group:ops": ["carol@"]},
        "tagOwners": {"tag:bigbrother": ["group:ops"], "tag:smallbrother": ["tag:bigbrother"]},
        "acls": [acl(["tag:smallbrother"], ["100.64.0.0/10:9000"])],
    }
    tailnet = Tailnet(document)
    verdict = tailnet.reach(Principal("carol@"), to("100.64.0.0/10", 9000))
    assert verdict.status == "allow"
    assert verdict.via == ("tag:smallbrother (a tag carol@ owns)",)
    assert tailnet.reach(Principal("dave@"), to("100.64.0.0/10", 9000)).status == "deny"


def test_a_narrow_tailnet_source_is_partial_never_allow() -> None:
    """types.go Prefix.Resolve: an address source holds whichever node has that address, which is
    assigned at run time; only a source covering the whole range surely holds a device."""
    document = {"acls": [acl(["100.64.0.7/32"], ["100.64.0.0/10:22"])]}
    assert Tailnet(document).reach(Principal("a@"), to("100.64.0.0/10", 22)).status == "partial"
    document = {"acls": [acl(["100.64.0.0/10"], ["100.64.0.0/10:22"])]}
    assert Tailnet(document).reach(Principal("a@"), to("100.64.0.0/10", 22)).status == "allow"


# --- over a stack ---------------------------------------------------------------------------


def guest_stack() -> dict[str, Any]:
    """The policy-as-code fixture stack plus a guest granted one app by its alias."""
    raw = valid_raw_config(VALID_DIR / "policy-as-code.yaml")
    return mutate(
        raw,
        {
            "remoteAccess.policy.acls.2": {"src": ["guest@"], "dst": ["grafana:443"]},
            "remoteAccess.policy.tests": [
                {"src": "guest@", "accept": ["grafana:443"], "deny": ["nas:445"]}
            ],
        },
    )


def test_a_guest_granted_one_app_reaches_that_apps_address_and_port_only() -> None:
    config = validate_config(guest_stack())  # its policy test passes: no config error
    tailnet = stack_tailnet(config)
    guest = Principal("guest@")
    traefik = str(config.network.traefik_ip)
    assert tailnet.reach(guest, to(f"{traefik}/32", 443)).status == "allow"
    for port in (80, 22, 8443):
        assert tailnet.reach(guest, to(f"{traefik}/32", port)).status == "deny", port
    lan_without_traefik = ipaddress.IPv4Network("192.168.0.0/25")  # routed, .220 not in it
    assert tailnet.reach(guest, Destination("lan", lan_without_traefik, ANY_PORT)).status == "deny"
    # The fixture's 'laptop' source (100.64.0.7) may be any device: only sure sources count here.
    assert tailnet.reach(guest, to("100.64.0.0/10")).status == "partial"
    assert tailnet.reach(guest, to("100.64.0.0/10"), sure_sources_only=True).status == "deny"


def test_a_guests_test_that_claims_a_second_app_is_refused() -> None:
    """Two apps share Traefik's IP and port: the test says so instead of passing."""
    raw = mutate(guest_stack(), {"remoteAccess.policy.tests.0.deny": ["headplane:443"]})
    try:
        validate_config(raw)
    except Exception as error:
        text = str(error)
    else:
        raise AssertionError("a deny the policy cannot keep passed")
    assert "homelab:remoteAccess.policy.tests[0].deny[0]" in text
    assert "shares Traefik's IP" in text


def test_the_builtin_assertions_hold_for_every_valid_fixture() -> None:
    for path in sorted(VALID_DIR.glob("*.yaml")):
        config = validate_config(valid_raw_config(path))
        assert list(builtin_problems(config)) == [], path.name
        verdict = stack_tailnet(config).reach(
            UNNAMED_USER, to("100.64.0.0/10"), sure_sources_only=True
        )
        assert verdict.status == "deny", path.name


def test_the_example_stacks_show_a_second_user_with_one_app_and_their_tests_pass() -> None:
    """Issue 16 "the example stack file shows a second user with access to one app only": each
    example stack grants a non-admin user one app's address, and its own policy tests (run by the
    loader, so a failing one would be a config error here) accept that app and deny the LAN."""
    for stack in ("homelab", "lab"):
        config = validate_config(stack_raw_config(stack))
        admin = f"{config.remote_access.admin_user}@"
        tests = [t for t in config.remote_access.policy.tests if t.src != admin]
        assert tests, stack
        tailnet = stack_tailnet(config)
        apps = {a.name for a in config.apps}
        for test in tests:
            reached = {d.rpartition(":")[0] for d in test.accept}
            assert len(reached) == 1, (stack, test)
            assert reached <= apps, (stack, test)
            lan = Destination("lan", config.network.lan_cidr, ANY_PORT)
            assert tailnet.reach(Principal(test.src), lan).status == "partial"
            assert test.deny, (stack, test)


# --- the `tests` block in the policy file --------------------------------------------------------


def test_the_tests_block_is_not_written_for_headscale_0_28() -> None:
    """juanfont/headscale@v0.28.0 hscontrol/policy/v2/types.go: `Policy` has no `tests` field and
    `unmarshalPolicy` decodes with `RejectUnknownMembers`, so a `tests` key is refused as
    `unknown field "tests"` (types_test.go "disallow-unsupported-fields"); 0.29 reads it."""
    assert headscale_version() == (0, 28, 0)
    assert not evaluates_tests(headscale_version())
    assert evaluates_tests((0, 29, 0))
    config = validate_config(guest_stack())
    assert config.remote_access.policy.tests
    assert "tests" not in stack_policy_document(config)


def test_the_tests_block_for_0_29_keeps_only_what_it_accepts() -> None:
    """juanfont/headscale@v0.29.2 hscontrol/policy/v2/types.go `validateTestDestination`: one
    host and one port; CIDRs, raw or through a multi-address host alias, are refused."""
    policy = AclPolicy.model_validate(
        {
            "hosts": {"half": "192.168.0.0/25", "nas": "192.168.0.5/32"},
            "tests": [
                {"src": "a@", "accept": ["grafana:443", "half:22"], "deny": ["10.0.0.0/8:22"]},
                {"src": "b@", "deny": ["192.168.0.0/24:22"]},
                {"src": "c@", "proto": "udp", "deny": ["nas:53"]},
            ],
        }
    )
    document = render_policy(
        policy,
        admin_user="admin",
        router_tag="tag:r",
        subnet_routes=[Net("192.168.0.0/24")],
        app_hosts={"grafana": ipaddress.IPv4Address("192.168.0.220")},
        emit_tests=True,
    )
    assert document["tests"] == [
        {"src": "a@", "accept": ["grafana:443"]},
        {"src": "c@", "proto": "udp", "deny": ["nas:53"]},
    ]


# --- access.md --------------------------------------------------------------------------------


def public_routes(render: engine.Render) -> list[tuple[list[str], str]]:
    found = []
    for record in render.by_type(INGRESS_ROUTE):
        spec = record.inputs["spec"]
        assert isinstance(spec, dict)
        for route in spec["routes"]:
            found.append((list(spec.get("entryPoints") or []), str(route["match"])))
    return [(e, m) for e, m in found if PUBLIC_ENTRYPOINT in e]


def test_access_md_shows_the_guest_the_app_and_the_internet_row() -> None:
    raw = guest_stack()
    render = render_raw(raw)
    files = render_files(render)
    assert "[access.md](access.md)" in files["SUMMARY.md"]
    text = files["access.md"]
    config = validate_config(raw)
    grafana = f"{config.fqdn('grafana')}:443"
    header = next(line for line in text.splitlines() if line.startswith("| Principal |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    guest_row = next(line for line in text.splitlines() if line.startswith("| `guest@` |"))
    cells = dict(zip(columns, [c.strip() for c in guest_row.strip("|").split("|")], strict=True))
    assert cells[grafana].startswith("allow (acls[2])")
    assert cells["LAN 192.168.0.0/25 (any port)"] == "deny"
    internet = next(line for line in text.splitlines() if line.startswith("| internet |"))
    assert "allow" not in internet  # no app of this stack is public
    assert f"Host(`{config.headscale_fqdn}`)" in text


def test_only_headscale_and_public_apps_are_on_the_internet_facing_entrypoint() -> None:
    """The public-entrypoint assertion, over what the render exposes: every route on Traefik's
    `public` entrypoint is for the Headscale host or an app the config marks public."""
    for path in sorted(VALID_DIR.glob("*.yaml")):
        raw = valid_raw_config(path)
        config = validate_config(raw)
        allowed = {config.headscale_fqdn} | {
            config.fqdn(a.host_label) for a in config.apps if a.visibility == "public"
        }
        for _, match in public_routes(render_raw(raw)):
            hosts = set(re.findall(r"Host\(`([^`]+)`\)", match))
            assert hosts, (path.name, match)
            assert hosts <= allowed, (path.name, match)


def test_access_md_says_when_apps_share_an_address() -> None:
    text = render_files(render_raw(guest_stack()))["access.md"]
    assert "the network cannot tell them apart" in text
