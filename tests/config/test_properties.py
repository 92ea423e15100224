"""Property-based tests: random valid configs validate and render; random damage to a config gives
either a valid config or a ConfigError, never another exception.

Examples are derandomized (the same on every run, so CI cannot flake) and kept few where each one
renders the whole program.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pulumi
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from config.loader import ConfigError, validate_config
from config.model import BUILTIN_HOSTS
from config.namespaces import KUBERNETES_NAMESPACES, OWNED_NAMESPACES
from config.networks import cluster_networks
from config.rules import Problem
from homelab import engine
from tests.config.corpus import render_raw

STABLE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PRIVATE_RANGES = [
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
]
LABEL = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
Raw = dict[str, Any]


@st.composite
def lans(draw: st.DrawFn) -> ipaddress.IPv4Network:
    """A private LAN from /24 to /16, clear of the networks the cluster reserves."""
    base = draw(st.sampled_from(PRIVATE_RANGES))
    prefix = draw(st.integers(min_value=max(16, base.prefixlen), max_value=24))
    index = draw(st.integers(min_value=0, max_value=2 ** (prefix - base.prefixlen) - 1))
    first = int(base.network_address) + index * 2 ** (32 - prefix)
    lan = ipaddress.IPv4Network((first, prefix))
    assume(not any(lan.overlaps(network) for _, network in cluster_networks()))
    return lan


@st.composite
def valid_configs(draw: st.DrawFn) -> Raw:
    """A config that breaks no field constraint and no rule in config/rules.py.

    The LAN's lower half holds the gateway, the nodes and the VIP; its upper half holds one or two
    MetalLB ranges, so pools never overlap a reserved address. Traefik (and STUN, when it has an
    IP of its own) take addresses inside a pool.
    """
    lan = draw(lans())
    size = lan.num_addresses
    half = size // 2

    def ip(offset: int) -> str:
        return str(lan.network_address + offset)

    control_planes = draw(st.sampled_from([1, 3, 5]))
    workers = draw(st.integers(min_value=0, max_value=3))
    has_vip = draw(st.booleans())
    offsets = draw(
        st.lists(
            st.integers(min_value=1, max_value=half - 1),
            min_size=1 + control_planes + workers + has_vip,
            max_size=1 + control_planes + workers + has_vip,
            unique=True,
        )
    )
    gateway, *node_offsets = offsets
    vip = node_offsets.pop() if has_vip else None
    roles = ["controlplane"] * control_planes + ["worker"] * workers
    nodes = [
        {"hostname": f"node-{i}", "ip": ip(offset), "role": role}
        for i, (offset, role) in enumerate(
            zip(node_offsets, draw(st.permutations(roles)), strict=True)
        )
    ]

    pool_count = draw(st.sampled_from([1, 2]))
    cuts = sorted(
        draw(
            st.lists(
                st.integers(min_value=half, max_value=size - 2),
                min_size=2 * pool_count,
                max_size=2 * pool_count,
                unique=True,
            )
        )
    )
    ranges = [(cuts[2 * i], cuts[2 * i + 1]) for i in range(pool_count)]
    pools = [
        {"name": f"pool-{i}", "addresses": [f"{ip(first)}-{ip(last)}"]}
        for i, (first, last) in enumerate(ranges)
    ]

    def in_a_pool() -> st.SearchStrategy[int]:
        return st.sampled_from(ranges).flatmap(lambda r: st.integers(r[0], r[1]))

    traefik = draw(in_a_pool())
    stun_offset = draw(st.none() | in_a_pool())
    # UDP STUN shares Traefik's IP on any port, 443 included: MetalLB compares protocol and
    # port, and Traefik's are TCP (metallb/metallb@v0.16.1 internal/allocator/allocator.go `Port`).
    stun_port = draw(st.integers(min_value=1, max_value=65535))

    domain = f"{draw(LABEL)}.{draw(st.sampled_from(['love', 'net', 'example.org']))}"
    headscale_host = draw(st.sampled_from(["headscale", "hs", "control"]))
    headplane = {"enabled": draw(st.booleans()), "host": draw(st.sampled_from(["headplane", "ui"]))}
    reserved_hosts = {headscale_host, headplane["host"], *BUILTIN_HOSTS}
    app_names = draw(
        st.lists(LABEL.filter(lambda n: n not in reserved_hosts), max_size=4, unique=True)
    )
    stack_namespaces = {*OWNED_NAMESPACES, *KUBERNETES_NAMESPACES}
    apps = [
        {
            "name": name,
            "namespace": draw(LABEL.filter(lambda n: n not in stack_namespaces)),
            "visibility": draw(st.sampled_from(["private", "public"])),
            **draw(st.sampled_from([{"workload": "grafana"}, {"service": name, "port": 8080}])),
        }
        for name in app_names
    ]
    environment = draw(st.sampled_from(["homelab", "lab"]))
    lifecycle: Raw = {"environment": environment}
    if environment == "lab":
        lifecycle["resetNodesOnDestroy"] = draw(st.booleans())

    derp: Raw = {"enabled": draw(st.booleans()), "stunPort": stun_port}
    if stun_offset is not None:
        derp["stunIp"] = ip(stun_offset)
    remote_access: Raw = {
        "headscaleHost": headscale_host,
        "magicDnsBaseDomain": f"{draw(st.sampled_from(['ts', 'vpn', 'tail']))}.{domain}",
        "derp": derp,
        "headplane": headplane,
    }
    if draw(st.booleans()):
        remote_access["policy"] = {
            "groups": {"group:family": ["alice@", "bob@"]},
            "hosts": {"nas": f"{ip(draw(st.integers(1, size - 2)))}/32"},
            "acls": [{"src": ["group:family"], "dst": ["nas:445", f"{lan}:443"]}],
        }

    raw: Raw = {
        "domain": domain,
        "lifecycle": lifecycle,
        "cluster": {
            "name": draw(LABEL),
            "nodes": nodes,
            **({"vip": ip(vip)} if vip else {}),
            # With workers, scheduling on control planes is a choice the config must make.
            **({"allowSchedulingOnControlPlanes": draw(st.booleans())} if workers else {}),
        },
        "network": {
            "lanCidr": str(lan),
            "gateway": ip(gateway),
            "addressPools": pools,
            "traefikIp": ip(traefik),
        },
        "tls": {"acmeEmail": f"admin@{domain}"},
        "remoteAccess": remote_access,
        "apps": apps,
        "dnsApiToken": engine.SENTINEL_SECRETS["dnsApiToken"],
    }
    if draw(st.booleans()):
        raw["headplaneCookieSecret"] = draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
    return raw


@settings(STABLE, max_examples=150)
@given(valid_configs())
def test_random_valid_configs_validate(raw: Raw) -> None:
    config = validate_config(raw)
    assert str(config.network.traefik_ip) == raw["network"]["traefikIp"]
    assert len(config.cluster.control_planes) % 2 == 1


@settings(STABLE, max_examples=15)
@given(valid_configs())
def test_random_valid_configs_render(raw: Raw) -> None:
    config = validate_config(raw)
    render = render_raw(raw)
    assert "homelab:talos:Cluster" in {r.type for r in render.resources}
    assert render.outputs["kubernetesEndpoint"] == config.cluster.endpoint


# --- damage ----------------------------------------------------------------------------------

Path = tuple[str | int, ...]
OTHER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(min_value=0, max_value=999), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(min_value=0, max_value=9), max_size=2),
)


def _walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) below the root, objects and lists included."""
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, child in items:
        yield (*path, key), child
        yield from _walk(child, (*path, key))


def _container(raw: Raw, path: Path) -> Any:
    target: Any = raw
    for part in path:
        target = target[part]
    return target


@st.composite
def damaged_configs(draw: st.DrawFn) -> tuple[Raw, str]:
    """A valid config with one random leaf retyped, one key deleted or one unknown key added."""
    raw = draw(valid_configs())
    kind = draw(st.sampled_from(["retype", "delete", "add"]))
    everything = list(_walk(raw))
    if kind == "retype":
        leaves = [(p, v) for p, v in everything if not isinstance(v, (dict, list))]
        path, old = draw(st.sampled_from(leaves))
        new = draw(OTHER_VALUES.filter(lambda v: type(v) is not type(old)))
        _container(raw, path[:-1])[path[-1]] = new
    elif kind == "delete":
        path, _ = draw(st.sampled_from(everything))
        del _container(raw, path[:-1])[path[-1]]
    else:
        objects = [(), *(p for p, v in everything if isinstance(v, dict))]
        path = draw(st.sampled_from(objects))
        # '-' cannot appear in a field name, so this key is unknown wherever it lands.
        _container(raw, path)["x-unknown"] = draw(OTHER_VALUES)
    return raw, kind


def _assert_well_formed(error: ConfigError) -> None:
    assert error.problems
    assert all(p.key.startswith("homelab:") for p in error.problems)
    heading, *lines = error.render().splitlines()
    assert heading.startswith("The stack config has")
    assert len(lines) == len(error.problems)
    assert all(line.startswith("  homelab:") for line in lines)
    # In the user's words: pydantic's type wording names Python classes and types.
    for line in lines:
        assert "instance of" not in line, line
        assert "valid dictionary" not in line, line
        assert "Input should be a valid" not in line, line


def test_a_lan_shrunk_below_its_addresses_is_one_line_at_lan_cidr() -> None:
    @settings(STABLE, max_examples=60)
    @given(valid_configs(), st.integers(min_value=1, max_value=8))
    def check(raw: Raw, shrink: int) -> None:
        lan = ipaddress.IPv4Network(raw["network"]["lanCidr"])
        smaller = ipaddress.IPv4Network((lan.network_address, min(30, lan.prefixlen + shrink)))
        raw["network"]["lanCidr"] = str(smaller)
        problems: list[Problem] = []
        try:
            validate_config(raw)
        except ConfigError as error:
            problems = error.problems
        outside = [p for p in problems if "inside" in p.expected and "LAN" in p.expected]
        lan_lines = [p for p in problems if p.key == "homelab:network.lanCidr"]
        # Either the LAN is named once, or at most one address is outside it.
        assert len(lan_lines) == 1 or len(outside) <= 1, [p.line() for p in problems]
        assert len(lan_lines) <= 1

    check()


@settings(STABLE, max_examples=200)
@given(damaged_configs())
def test_damaged_configs_are_valid_or_a_config_error(damaged: tuple[Raw, str]) -> None:
    raw, kind = damaged
    error: ConfigError | None = None
    try:
        validate_config(raw)
    except ConfigError as caught:  # any other exception fails the test
        error = caught
    if error is None:
        assert kind != "add", "an unknown key was accepted"
        return
    _assert_well_formed(error)
    if kind == "add":
        assert any(p.key.endswith("x-unknown") for p in error.problems), error.render()


@settings(STABLE, max_examples=15)
@given(damaged_configs())
def test_damaged_configs_render_or_stop_with_a_clean_run_error(damaged: tuple[Raw, str]) -> None:
    raw, _ = damaged
    failure: engine.RenderError | None = None
    try:
        render_raw(raw)
    except engine.RenderError as caught:
        failure = caught
    if failure is not None:
        assert isinstance(failure.cause, pulumi.RunError), repr(failure.cause)
        assert "Traceback" not in str(failure.cause)
        assert failure.partial.resources == []


def test_the_valid_strategy_covers_the_shapes_it_promises() -> None:
    # Guards the strategy itself: it must reach multi-node, VIP, /16 and separate-STUN configs.
    seen: set[str] = set()

    @settings(STABLE, max_examples=150)
    @given(valid_configs())
    def collect(raw: Raw) -> None:
        if len(raw["cluster"]["nodes"]) > 3:
            seen.add("many-nodes")
        if "vip" in raw["cluster"]:
            seen.add("vip")
        if raw["network"]["lanCidr"].endswith("/16"):
            seen.add("slash-16")
        if "stunIp" in raw["remoteAccess"]["derp"]:
            seen.add("separate-stun")
        if len(raw["network"]["addressPools"]) == 2:
            seen.add("two-pools")
        if raw["apps"]:
            seen.add("apps")

    collect()
    assert seen == {"many-nodes", "vip", "slash-16", "separate-stun", "two-pools", "apps"}


def test_the_damage_strategy_reaches_every_kind() -> None:
    seen: set[str] = set()

    @settings(STABLE, max_examples=30)
    @given(damaged_configs())
    def collect(damaged: tuple[Raw, str]) -> None:
        seen.add(damaged[1])

    collect()
    assert seen == {"retype", "delete", "add"}
