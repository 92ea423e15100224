"""Headscale: its generated config against upstream, the startup rules, and the objects around it."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components.remote_access.headscale_config import REMOVED_KEYS, startup_problems, stun_port
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from tests.components.remote_access.remote_access import (
    DEPLOYMENT,
    HEADSCALE,
    INGRESS_ROUTE,
    SERVICE,
    child,
    children_of_type,
    container,
    headscale_files,
    headscale_settings,
    key_paths,
    pod_spec,
    render_remote_access,
    restricted_violations,
    under,
)
from tests.components.shared.hardening import admits, hardening_problems, policies_selecting
from tests.contracts import validate_object
from tests.harness import (
    homelab_render,
    is_kubernetes_object,
    reference,
    render_stack,
    stack_raw_config,
)


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def upstream_example(version_dir: str = "v0.28.0/") -> dict[str, Any]:
    document = yaml.safe_load(
        reference(f"upstream/headscale/{version_dir}config-example.yaml").read_text()
    )
    assert isinstance(document, dict)
    return document


# --- the generated config against upstream ----------------------------------------------------


def test_every_generated_key_exists_in_the_pinned_versions_example_config() -> None:
    assert pins.HEADSCALE_IMAGE.endswith(":0.28.0"), "compare against the pinned version's example"
    unknown = key_paths(headscale_settings(homelab_render())) - key_paths(upstream_example())
    assert unknown == set()


def test_generated_config_uses_no_key_that_headscale_0_29_dropped() -> None:
    # Keys of the 0.28.0 example missing from the newer (0.29) one are fatal or ignored after an
    # upgrade (components.md 2.2): the stack must not lean on them.
    dropped = key_paths(upstream_example()) - key_paths(upstream_example(""))
    assert dropped, "reference data should show the 0.28 -> 0.29 delta"
    assert key_paths(headscale_settings(homelab_render())) & dropped == set()


def test_generated_config_has_no_removed_keys() -> None:
    settings = headscale_settings(homelab_render())
    paths = key_paths(settings)
    for removed in REMOVED_KEYS:
        assert not any(p == removed or p.startswith(removed + ".") for p in paths)


@pytest.mark.parametrize(
    "remote_changes",
    [
        pytest.param({}, id="homelab"),
        pytest.param({"derp": {"enabled": False}}, id="derp-off"),
        pytest.param({"derp": {"publicDerpFallback": False}}, id="own-derp-only"),
        pytest.param({"headplane": {"enabled": False}}, id="headplane-off"),
    ],
)
def test_rendered_config_passes_headscales_startup_rules(remote_changes: dict[str, Any]) -> None:
    assert startup_problems(headscale_settings(render_remote_access(remote_changes))) == []


# --- the startup rules, one broken config each ------------------------------------------------

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    def change(cfg: dict[str, Any]) -> None:
        target = cfg
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value

    return change


def _delete(path: str) -> Change:
    def change(cfg: dict[str, Any]) -> None:
        target = cfg
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        del target[last]

    return change


def _acme_and_certificate(cfg: dict[str, Any]) -> None:
    _set("tls_letsencrypt_hostname", "headscale.example.com")(cfg)
    _set("tls_cert_path", "/certs/tls.crt")(cfg)


def _both(first: Change, second: Change) -> Change:
    def change(cfg: dict[str, Any]) -> None:
        first(cfg)
        second(cfg)

    return change


BROKEN: list[tuple[str, Change, str]] = [
    ("removed acl_policy_path", _set("acl_policy_path", "/etc/acl.json"), "acl_policy_path"),
    ("removed dns_config", _set("dns_config.magic_dns", True), "dns_config"),
    (
        "removed use_username_in_magic_dns",
        _set("dns.use_username_in_magic_dns", True),
        "use_username_in_magic_dns",
    ),
    ("removed strip_email_domain", _set("oidc.strip_email_domain", True), "strip_email_domain"),
    ("removed map_legacy_users", _set("oidc.map_legacy_users", True), "map_legacy_users"),
    (
        "extra records twice",
        _set("dns.extra_records_path", "/var/lib/headscale/records.json"),
        "extra_records",
    ),
    ("acme and certificate", _acme_and_certificate, "tls_letsencrypt_hostname"),
    ("no noise key", _set("noise.private_key_path", ""), "noise.private_key_path"),
    ("bad challenge", _set("tls_letsencrypt_challenge_type", "DNS-01"), "challenge_type"),
    ("url without scheme", _set("server_url", "headscale.example.com"), "server_url"),
    (
        "ephemeral timeout too short",
        _set("ephemeral_node_inactivity_timeout", "60s"),
        "ephemeral_node_inactivity_timeout",
    ),
    ("override without nameservers", _set("dns.nameservers.global", []), "nameservers.global"),
    (
        "override by default without nameservers",
        _both(_delete("dns.override_local_dns"), _set("dns.nameservers.global", [])),
        "nameservers.global",
    ),
    ("zero batch size", _set("tuning.node_store_batch_size", 0), "node_store_batch_size"),
    ("zero batch timeout", _set("tuning.node_store_batch_timeout", "0s"), "batch_timeout"),
    ("no prefixes", _set("prefixes", {"allocation": "sequential"}), "prefixes"),
    ("bad v4 prefix", _set("prefixes.v4", "100.64.0.0/33"), "prefixes.v4"),
    ("v6 prefix as v4", _set("prefixes.v4", "fd7a:115c:a1e0::/48"), "prefixes.v4"),
    ("bad allocation", _set("prefixes.allocation", "dense"), "prefixes.allocation"),
    ("magic dns without domain", _set("dns.base_domain", ""), "base_domain"),
    ("base domain is the server", _set("dns.base_domain", "headscale.sarma.love"), "same domain"),
    ("base domain is a parent", _set("dns.base_domain", "sarma.love"), "part of"),
    ("derp without stun", _set("derp.server.stun_listen_addr", ""), "stun_listen_addr"),
    (
        "derp region neither automatic nor in paths",
        _set("derp.server.automatically_add_embedded_derp_region", False),
        "derp.paths",
    ),
    (
        "oidc secret twice",
        _both(_set("oidc.client_secret", "x"), _set("oidc.client_secret_path", "/s")),
        "client_secret",
    ),
]


@pytest.mark.parametrize(
    ("change", "mentions"), [(c, m) for _, c, m in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_startup_rules_flag_a_config_that_breaks_them(change: Change, mentions: str) -> None:
    cfg = copy.deepcopy(headscale_settings(homelab_render()))
    change(cfg)
    problems = startup_problems(cfg)
    assert problems, "the broken config must be flagged"
    assert any(mentions in p for p in problems), problems


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_set("dns.base_domain", "ts.sarma.love"), id="sibling-base-domain"),
        pytest.param(_set("dns.base_domain", "example.net"), id="other-base-domain"),
        pytest.param(
            _both(_set("dns.override_local_dns", False), _set("dns.nameservers.global", [])),
            id="no-override-no-nameservers",
        ),
        pytest.param(_set("derp.server", {"enabled": False}), id="derp-off-without-stun"),
        pytest.param(_set("dns.magic_dns", False), id="no-magic-dns"),
    ],
)
def test_startup_rules_accept_what_headscale_accepts(change: Change) -> None:
    cfg = copy.deepcopy(headscale_settings(homelab_render()))
    change(cfg)
    assert startup_problems(cfg) == []


# --- MagicDNS ---------------------------------------------------------------------------------


def test_magic_dns_uses_the_configured_base_domain_and_nameservers() -> None:
    config = homelab_config()
    dns = headscale_settings(homelab_render())["dns"]
    assert dns["magic_dns"] is True
    assert dns["base_domain"] == config.remote_access.magic_dns_base_domain
    assert dns["nameservers"]["global"] == [str(ns) for ns in config.remote_access.nameservers]


def test_extra_records_cover_exactly_the_exposed_hosts_but_headscale_at_traefiks_ip() -> None:
    config = homelab_config()
    records = headscale_settings(homelab_render())["dns"]["extra_records"]
    expected = {h.fqdn for h in config.exposed_hosts()} - {config.headscale_fqdn}
    assert {r["name"] for r in records} == expected
    assert {(r["type"], r["value"]) for r in records} == {("A", str(config.network.traefik_ip))}


def test_a_new_app_gets_its_magic_dns_record_without_listing_it() -> None:
    raw = stack_raw_config()
    app = {"name": "wiki", "namespace": "wiki", "service": "wiki", "port": 80}
    render = render_stack(overrides={"apps": [*raw["apps"], app]})
    names = {r["name"] for r in headscale_settings(render)["dns"]["extra_records"]}
    assert f"wiki.{raw['domain']}" in names


def test_headscale_itself_stays_on_public_dns_not_the_lan_ip() -> None:
    # Control and DERP traffic must not depend on the tunnel they establish.
    config = homelab_config()
    names = {r["name"] for r in headscale_settings(homelab_render())["dns"]["extra_records"]}
    assert config.headscale_fqdn not in names


# --- DERP and STUN ----------------------------------------------------------------------------


def _stun_service(render: Any) -> Any:
    return child(render, HEADSCALE, SERVICE, "headscale-stun")


def test_stun_service_is_udp_on_a_load_balancer_with_the_configured_ip() -> None:
    config = homelab_config()
    service = _stun_service(homelab_render())
    assert service.input("spec.type") == "LoadBalancer"
    assert service.input("spec.ports") == [
        {
            "name": "stun",
            "protocol": "UDP",
            "port": config.remote_access.derp.stun_port,
            "targetPort": config.remote_access.derp.stun_port,
        }
    ]
    annotations = service.input("metadata.annotations")
    assert annotations["metallb.io/loadBalancerIPs"] == str(config.stun_ip)


def test_stun_shares_traefiks_ip_the_way_metallb_requires() -> None:
    render = render_remote_access({"derp": {"stunIp": None}})
    service = _stun_service(render)
    traefik = render.one("kubernetes:helm.sh/v3:Release", "traefik")
    assert (
        service.input("metadata.annotations")["metallb.io/loadBalancerIPs"]
        == (traefik.input("values.service.annotations")["metallb.io/loadBalancerIPs"])
    )
    assert "metallb.io/allow-shared-ip" in service.input("metadata.annotations")
    # MetalLB shares one IP only between Services that both use Cluster (components.md 5).
    assert service.input("spec.externalTrafficPolicy") == "Cluster"
    assert traefik.input("values.service.spec.externalTrafficPolicy") == "Cluster"


def test_stun_on_its_own_ip_keeps_client_addresses() -> None:
    # STUN answers with the address it sees; Cluster policy would make that a node address.
    render = render_remote_access({"derp": {"stunIp": "192.168.0.222"}})
    service = _stun_service(render)
    assert service.input("spec.externalTrafficPolicy") == "Local"
    # Nothing is shared, so neither Service asks MetalLB to share.
    traefik = render.one("kubernetes:helm.sh/v3:Release", "traefik")
    assert "metallb.io/allow-shared-ip" not in service.input("metadata.annotations")
    assert "metallb.io/allow-shared-ip" not in traefik.input("values.service.annotations")


def test_stun_listen_port_is_the_advertised_and_forwarded_port() -> None:
    render = render_remote_access({"derp": {"stunPort": 3479, "stunIp": "192.168.0.222"}})
    settings = headscale_settings(render)
    service = _stun_service(render)
    assert stun_port(settings) == 3479
    assert service.input("spec.ports.0.port") == service.input("spec.ports.0.targetPort") == 3479
    assert service.input("metadata.annotations")["metallb.io/loadBalancerIPs"] == "192.168.0.222"
    forwards = render.outputs["routerPortForwards"]
    assert {"protocol": "udp", "port": 3479, "ip": "192.168.0.222"} in [
        {"protocol": f["protocol"], "port": f["externalPort"], "ip": f["internalIp"]}
        for f in forwards
    ]
    headscale = container(
        pod_spec(child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment")), "headscale"
    )
    assert {"name": "stun", "containerPort": 3479, "protocol": "UDP"} in headscale["ports"]


def test_embedded_derp_keeps_the_public_map_as_fallback_unless_turned_off() -> None:
    settings = headscale_settings(homelab_render())
    assert settings["derp"]["server"]["enabled"] is True
    assert settings["derp"]["urls"], "public DERP map kept by default"
    own_only = headscale_settings(render_remote_access({"derp": {"publicDerpFallback": False}}))
    assert own_only["derp"]["urls"] == []
    assert own_only["derp"]["server"]["enabled"] is True


def test_no_stun_service_without_the_embedded_derp() -> None:
    render = render_remote_access({"derp": {"enabled": False}})
    assert "headscale-stun" not in {s.name for s in children_of_type(render, HEADSCALE, SERVICE)}
    headscale = container(pod_spec(_deployment(render)), "headscale")
    assert all(p["protocol"] == "TCP" for p in headscale["ports"])
    assert [f["protocol"] for f in render.outputs["routerPortForwards"]] == ["tcp"]


# --- the pod ----------------------------------------------------------------------------------


def _deployment(render: Any = None) -> Any:
    return child(render or homelab_render(), HEADSCALE, DEPLOYMENT, "headscale-deployment")


def test_single_replica_recreated_never_overlapping() -> None:
    spec = _deployment().input("spec")
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_headscale_runs_serve_with_health_probes_and_resources() -> None:
    headscale = container(pod_spec(_deployment()), "headscale")
    assert headscale["image"] == pins.HEADSCALE_IMAGE
    assert headscale["args"] == ["serve"]
    assert "command" not in headscale, "command would replace the headscale entrypoint"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert headscale[probe]["httpGet"]["path"] == "/health"
    assert set(headscale["resources"]) == {"requests", "limits"}


def test_state_lives_on_the_claim_and_the_socket_on_an_empty_dir() -> None:
    settings = headscale_settings(homelab_render())
    spec = pod_spec(_deployment())
    mounts = {m["mountPath"]: m["name"] for m in container(spec, "headscale")["volumeMounts"]}
    volumes: dict[str, dict[str, Any]] = {v["name"]: v for v in spec["volumes"]}

    def volume_for(path: str) -> dict[str, Any]:
        directory = path.rpartition("/")[0]
        return volumes[mounts[directory]]

    for stateful in (
        settings["database"]["sqlite"]["path"],
        settings["noise"]["private_key_path"],
        settings["derp"]["server"]["private_key_path"],
    ):
        assert volume_for(stateful)["persistentVolumeClaim"]["claimName"] == "headscale-data"
    assert "emptyDir" in volume_for(settings["unix_socket"])


def test_data_claim_uses_the_storage_class_and_is_protected_in_the_homelab() -> None:
    claim = child(
        homelab_render(), HEADSCALE, "kubernetes:core/v1:PersistentVolumeClaim", "headscale-data"
    )
    assert claim.input("spec.storageClassName") == "local-path-retain"
    assert homelab_config().lifecycle.protect_stateful is True
    assert claim.protect is True
    lab = render_stack(overrides={"lifecycle": {"environment": "lab"}}, as_stack="variant")
    lab_claim = child(lab, HEADSCALE, "kubernetes:core/v1:PersistentVolumeClaim", "headscale-data")
    assert lab_claim.protect is False


def test_config_changes_roll_the_pod() -> None:
    base = _deployment().input("spec.template.metadata.annotations")
    policy = {"acls": [{"src": ["group:admins"], "dst": ["tag:k8s-router:22"]}]}
    changed = _deployment(render_remote_access({"policy": policy}))
    assert changed.input("spec.template.metadata.annotations") != base
    # ...and only because of the config: the same config renders the same checksum.
    assert _deployment(render_stack()).input("spec.template.metadata.annotations") == base


def test_config_map_carries_the_config_and_the_policy_headscale_points_at() -> None:
    render = homelab_render()
    settings = headscale_settings(render)
    spec = pod_spec(_deployment(render))
    mounts = {m["name"]: m for m in container(spec, "headscale")["volumeMounts"]}
    config_dir = mounts["config"]["mountPath"]
    assert mounts["config"]["readOnly"] is True
    assert settings["policy"]["mode"] == "file"
    assert settings["policy"]["path"] == f"{config_dir}/policy.json"
    assert set(headscale_files(render)) == {"config.yaml", "policy.json"}


def test_pods_meet_the_restricted_pod_security_profile_their_namespace_enforces() -> None:
    render = homelab_render()
    namespace = child(render, HEADSCALE, "kubernetes:core/v1:Namespace", "headscale-namespace")
    assert namespace.input("metadata.labels")["pod-security.kubernetes.io/enforce"] == "restricted"
    assert restricted_violations(pod_spec(_deployment(render))) == []


def test_both_containers_run_as_one_non_root_uid_so_sighup_reaches_headscale() -> None:
    spec = pod_spec(_deployment())
    uids = {
        c.get("securityContext", {}).get("runAsUser", spec["securityContext"]["runAsUser"])
        for c in spec["containers"]
    }
    assert len(uids) == 1
    assert 0 not in uids
    # ...and both hardened: high UID, no capabilities, read-only root, RuntimeDefault seccomp.
    assert hardening_problems(spec) == []


# --- NetworkPolicy ----------------------------------------------------------------------------


def _pod_policies(render: Any) -> list[Any]:
    deployment = _deployment(render)
    labels = deployment.input("spec.template.metadata.labels")
    policies = policies_selecting(render, deployment.input("metadata.namespace"), labels)
    assert policies, "the Headscale pod is selected by a NetworkPolicy"
    return policies


def _admitted(render: Any, protocol: str, port: int, source: str | None) -> bool:
    return any(
        admits(p, protocol=protocol, port=port, source_namespace=source)
        for p in _pod_policies(render)
    )


def _traefik_namespace(render: Any) -> str:
    namespace = render.one("kubernetes:helm.sh/v3:Release", "traefik").input("namespace")
    assert isinstance(namespace, str)
    return namespace


def _service_target_port(render: Any, service_name: str) -> int:
    """The container port a Service that Traefik routes to ends up on."""
    (service_port,) = [
        p
        for p in child(render, HEADSCALE, SERVICE, service_name).input("spec.ports")
        if p["name"] == "http"
    ]
    ports = {
        p["name"]: p["containerPort"]
        for c in pod_spec(_deployment(render))["containers"]
        for p in c["ports"]
    }
    return int(ports[service_port["targetPort"]])


def test_traefik_reaches_headscale_and_no_other_namespace_does() -> None:
    render = homelab_render()
    traefik = _traefik_namespace(render)
    port = _service_target_port(render, "headscale-service")
    assert _admitted(render, "TCP", port, traefik)
    assert not _admitted(render, "TCP", port, "monitoring")
    assert not _admitted(render, "TCP", port, None)


def test_metrics_and_debug_are_served_on_the_pods_loopback_only() -> None:
    """juanfont/headscale@v0.28.0:hscontrol/app.go Serve: metrics_listen_addr is where /metrics
    and /debug listen (empty disables them); a loopback address is unreachable from other pods."""
    render = homelab_render()
    host, _, port = headscale_settings(render)["metrics_listen_addr"].rpartition(":")
    assert host == "127.0.0.1"
    headscale = container(pod_spec(_deployment(render)), "headscale")
    assert int(port) not in {p["containerPort"] for p in headscale["ports"]}
    service_ports = child(render, HEADSCALE, SERVICE, "headscale-service").input("spec.ports")
    assert [p["name"] for p in service_ports] == ["http"]


def test_without_headplane_no_pod_of_the_namespace_is_admitted() -> None:
    render = render_remote_access({"headplane": {"enabled": False}})
    traefik = _traefik_namespace(render)
    listen_port = int(headscale_settings(render)["listen_addr"].rpartition(":")[2])
    assert _admitted(render, "TCP", listen_port, traefik)
    peers = [
        peer
        for policy in _pod_policies(render)
        for rule in policy.input("spec.ingress") or []
        for peer in rule.get("from") or []
    ]
    assert not [p for p in peers if "podSelector" in p]


# --- Traefik ----------------------------------------------------------------------------------


def _matches(rule: str, host: str, path: str) -> bool:
    """Evaluates the Traefik v3 matchers this project writes: Host, Path, PathPrefix, &&, ||."""
    matchers: dict[str, Callable[[str], bool]] = {
        "Host": lambda v: host == v,
        "Path": lambda v: path == v,
        "PathPrefix": lambda v: path.startswith(v),
    }
    tokens = re.findall(r"(Host|PathPrefix|Path)\(`([^`]*)`\)|(&&|\|\||\(|\))", rule)
    expression = []
    for matcher, value, operator in tokens:
        if matcher:
            expression.append(str(matchers[matcher](value)))
        else:
            expression.append({"&&": "and", "||": "or"}.get(operator, operator))
    rebuilt = "".join(f"{m}(`{v}`)" if m else o for m, v, o in tokens)
    assert rebuilt == re.sub(r"\s+", "", rule), f"unknown matcher in {rule!r}"
    result = eval(" ".join(expression))  # only "True and (False or ...)"
    assert isinstance(result, bool)
    return result


# What Tailscale clients ask of a control server with the embedded DERP (tailscale@v1.102.3:
# control/controlhttp/constants.go /ts2021, control/controlclient/direct.go /key?v=,
# derp/derphttp /derp, net/netcheck/netcheck.go /derp/latency-check, net/dnsfallback
# /bootstrap-dns; the web-login page /register/<id> and the Apple/Windows setup pages).
CLIENT_REQUESTS = (
    "/ts2021",
    "/key",
    "/health",
    "/derp",
    "/derp/probe",
    "/derp/latency-check",
    "/bootstrap-dns",
    "/register/abc123",
    "/apple",
    "/apple/ios",
    "/windows",
)
# Headscale's other routes (juanfont/headscale@v0.28.0:hscontrol/app.go createRouter).
PRIVATE_REQUESTS = (
    "/api/v1/node",
    "/api/v1/apikey",
    "/swagger",
    "/swagger/v1/openapiv2.json",
    "/version",
    "/verify",
    "/robots.txt",
    "/",
)


def _routes_on(render: Any, entrypoint: str) -> list[dict[str, Any]]:
    return [
        rule
        for route in children_of_type(render, HEADSCALE, INGRESS_ROUTE)
        if entrypoint in route.input("spec.entryPoints")
        for rule in route.input("spec.routes")
    ]


def test_the_internet_reaches_only_the_paths_tailscale_clients_use() -> None:
    """juanfont/headscale@v0.28.0:hscontrol/app.go createRouter: of its routes, the `public`
    entrypoint (what WAN 443 reaches) serves only those clients use; /api/v1 and /swagger stay
    on the private entrypoint."""
    config = homelab_config()
    render = homelab_render()
    fqdn = config.headscale_fqdn
    public = _routes_on(render, "public")
    assert public
    for path in CLIENT_REQUESTS:
        assert any(_matches(r["match"], fqdn, path) for r in public), path
    for path in PRIVATE_REQUESTS:
        assert not any(_matches(r["match"], fqdn, path) for r in public), path
    for rule in public:
        assert "middlewares" not in rule, "internet clients come from anywhere"


def test_without_the_embedded_derp_its_paths_are_not_public() -> None:
    config = homelab_config()
    public = _routes_on(render_remote_access({"derp": {"enabled": False}}), "public")
    for path in ("/derp", "/derp/probe", "/bootstrap-dns"):
        assert not any(_matches(r["match"], config.headscale_fqdn, path) for r in public)
    assert any(_matches(r["match"], config.headscale_fqdn, "/ts2021") for r in public)


def test_the_whole_host_goes_to_headscales_plain_http_listener_on_the_private_entrypoint() -> None:
    config = homelab_config()
    render = homelab_render()
    settings = headscale_settings(render)
    route = child(render, HEADSCALE, INGRESS_ROUTE, "headscale-route")
    assert route.input("spec.entryPoints") == ["websecure"]
    (rule,) = route.input("spec.routes")
    assert rule["match"] == f"Host(`{config.headscale_fqdn}`)"
    assert [m["name"] for m in rule["middlewares"]] == ["private-only"]
    for path in CLIENT_REQUESTS + PRIVATE_REQUESTS:
        assert _matches(rule["match"], config.headscale_fqdn, path)
    for each in [*_routes_on(render, "public"), rule]:
        (service,) = each["services"]
        assert service.get("scheme", "http") == "http", "never h2c (components.md 6 #4)"
    listen_port = int(settings["listen_addr"].rpartition(":")[2])
    svc = child(render, HEADSCALE, SERVICE, "headscale-service")
    port = next(p for p in svc.input("spec.ports") if p["port"] == rule["services"][0]["port"])
    assert port["targetPort"] == "http"
    headscale = container(pod_spec(_deployment(render)), "headscale")
    assert {"name": "http", "containerPort": listen_port, "protocol": "TCP"} in headscale["ports"]
    assert settings["server_url"] == f"https://{config.headscale_fqdn}"


# --- stack outputs ----------------------------------------------------------------------------


def test_outputs_tell_a_person_what_to_forward_register_and_run() -> None:
    config = homelab_config()
    outputs = homelab_render().outputs
    forwards = {
        (f["protocol"], f["externalPort"]): f["internalIp"] for f in outputs["routerPortForwards"]
    }
    assert forwards == {
        ("tcp", 443): str(config.network.traefik_ip),  # to Traefik's public entrypoint
        ("udp", config.remote_access.derp.stun_port): str(config.stun_ip),
    }
    record = outputs["publicDnsRecord"]
    assert (record["name"], record["type"], record["proxied"]) == (
        config.headscale_fqdn,
        "A",
        False,
    )
    assert outputs["tailscaleJoinCommand"] == (
        f"tailscale up --login-server https://{config.headscale_fqdn} --accept-routes"
    )
    assert outputs["headscaleUrl"] == f"https://{config.headscale_fqdn}"


# --- whole-component checks -------------------------------------------------------------------


def test_every_kubernetes_object_validates_against_the_strict_schemas() -> None:
    # Built-in kinds against the strict Kubernetes schemas, Traefik's CRs against their CRDs.
    records = [r for r in under(homelab_render(), HEADSCALE) if is_kubernetes_object(r)]
    assert len(records) >= 10
    for record in records:
        validate_object(record)


def test_the_bare_headplane_host_redirects_to_its_ui() -> None:
    config = homelab_config()
    fqdn = config.fqdn(config.remote_access.headplane.host)
    render = homelab_render()
    redirect = child(
        render,
        HEADSCALE,
        "kubernetes:traefik.io/v1alpha1:Middleware",
        "headscale-headplane-redirect",
    )
    rule = redirect.input("spec.redirectRegex")
    pattern = re.compile(rule["regex"])
    assert pattern.match(f"https://{fqdn}/")
    assert pattern.match(f"https://{fqdn}")
    assert not pattern.match(f"https://{fqdn}/admin/machines")
    assert rule["replacement"] == f"https://{fqdn}/admin/"
    route = child(render, HEADSCALE, INGRESS_ROUTE, "headscale-headplane-route")
    (only,) = route.input("spec.routes")
    names = [m["name"] for m in only["middlewares"]]
    # The allowlist first: the redirect never answers a client the allowlist refuses.
    assert names == ["private-only", redirect.input("metadata.name")]


def test_every_kubernetes_object_lives_in_the_headscale_namespace() -> None:
    for record in under(homelab_render(), HEADSCALE):
        if is_kubernetes_object(record) and record.type != "kubernetes:core/v1:Namespace":
            assert record.input("metadata.namespace") == "headscale", record.name


def _default_entrypoints(ports: dict[str, Any]) -> list[str]:
    """traefik/traefik@v3.7.9:cmd/traefik/traefik.go getDefaultsEntrypoints (the newest v3.7 tag
    here; the chart ships v3.7.11): all entrypoints unless one sets asDefault, then only those;
    never UDP ones nor the internal `traefik` one. The chart turns `ports.<name>.asDefault` into
    `--entryPoints.<name>.asDefault` (traefik-helm-chart@v41.3.0:traefik/templates/_podtemplate.tpl)."""
    entrypoints = {name: cfg for name, cfg in ports.items() if cfg}
    flagged = any(cfg.get("asDefault") for cfg in entrypoints.values())
    return sorted(
        name
        for name, cfg in entrypoints.items()
        if (not flagged or cfg.get("asDefault"))
        and str(cfg.get("protocol", "tcp")).lower() != "udp"
        and name != "traefik"
    )


def test_a_route_naming_no_entrypoint_is_only_on_websecure_never_public() -> None:
    chart_ports = yaml.safe_load(reference("upstream/traefik/chart/values.yaml").read_text())[
        "ports"
    ]
    ours = homelab_render().one("kubernetes:helm.sh/v3:Release", "traefik").input("values.ports")
    merged = {
        name: {**(chart_ports.get(name) or {}), **(ours.get(name) or {})}
        for name in {*chart_ports, *ours}
    }
    assert "public" in merged
    assert _default_entrypoints(merged) == ["websecure"]
    # Guard: without the flag every TCP entrypoint, `public` included, would be a default.
    unflagged = {n: {k: v for k, v in c.items() if k != "asDefault"} for n, c in merged.items()}
    assert "public" in _default_entrypoints(unflagged)


def _stun_served_at(render: Any, ip: str, port: int) -> bool:
    """A Service answers UDP `port` on `ip` and sends it to the Headscale pod: a LoadBalancer
    with that MetalLB IP, or a Service with that external IP (kube-proxy programs both)."""
    pod_labels = _deployment(render).input("spec.template.metadata.labels")
    for service in children_of_type(render, HEADSCALE, SERVICE):
        spec = service.input("spec")
        selector = spec.get("selector") or {}
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            continue
        annotations = service.input("metadata").get("annotations") or {}
        ips = set(spec.get("externalIPs") or [])
        if spec.get("type") == "LoadBalancer":
            ips |= set(annotations.get("metallb.io/loadBalancerIPs", "").split(","))
        udp = {p["port"] for p in service.input("spec.ports") if p.get("protocol") == "UDP"}
        if ip in ips and port in udp:
            return True
    return False


@pytest.mark.parametrize(
    "stun_ip", [pytest.param(None, id="shared-ip"), pytest.param("192.168.0.222", id="own-ip")]
)
def test_the_address_the_router_resolves_for_headscale_serves_https_and_stun(
    stun_ip: str | None,
) -> None:
    """juanfont/headscale@v0.28.0:hscontrol/derp/server/derp_server.go GenerateRegion: the
    embedded region's node is HostName = server_url's host, DERPPort 443, STUNPort = the port of
    stun_listen_addr, IPv4 unset; tailscale/tailscale@v1.102.3:net/netcheck/netcheck.go
    nodeAddrPort then probes STUN at what HostName resolves to. For the router that is its host
    alias: that one address must serve 443 (Traefik, websecure) and STUN."""
    render = render_remote_access({"derp": {"stunIp": stun_ip}})
    settings = headscale_settings(render)
    assert "ipv4" not in settings["derp"]["server"]
    router = pod_spec(
        child(render, "homelab:remote-access:SubnetRouter", DEPLOYMENT, "subnet-router-deployment")
    )
    host = settings["server_url"].removeprefix("https://")
    (alias,) = [a for a in router["hostAliases"] if host in a["hostnames"]]
    traefik = render.one("kubernetes:helm.sh/v3:Release", "traefik")
    assert alias["ip"] in traefik.input("values.service.annotations")["metallb.io/loadBalancerIPs"]
    assert _stun_served_at(render, alias["ip"], stun_port(settings))


def test_stun_on_its_own_ip_keeps_traefik_local_and_adds_no_shared_load_balancer() -> None:
    render = render_remote_access({"derp": {"stunIp": "192.168.0.222"}})
    in_cluster = child(render, HEADSCALE, SERVICE, "headscale-stun-in-cluster")
    assert in_cluster.input("spec.type") == "ClusterIP"
    traefik = render.one("kubernetes:helm.sh/v3:Release", "traefik")
    assert traefik.input("values.service.spec.externalTrafficPolicy") == "Local"
    shared = render_remote_access({"derp": {"stunIp": None}})
    assert "headscale-stun-in-cluster" not in {
        s.name for s in children_of_type(shared, HEADSCALE, SERVICE)
    }
