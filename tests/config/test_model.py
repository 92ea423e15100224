"""Field validation and the defaults the model derives (documented in each field's description)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from config.loader import ConfigError, validate_config
from config.model import HomelabConfig
from config.namespaces import OWNED_NAMESPACES
from tests.config.corpus import mutate
from tests.harness import render_stack, stack_raw_config


def _config(changes: dict[str, Any], delete: tuple[str, ...] = ()) -> HomelabConfig:
    return validate_config(mutate(stack_raw_config(), changes, delete))


def test_dns01_provider_may_be_omitted_while_cloudflare_is_the_only_one() -> None:
    # The field documents 'cloudflare' as its default; the discriminated union must honour that.
    config = _config({"tls.dns01": {"zone": "sarma.love"}})
    assert config.tls.dns01.provider == "cloudflare"
    assert config.tls.dns01.zone == "sarma.love"


@pytest.mark.parametrize(
    "disk",
    [
        "/dev/sda",
        "/dev/nvme0n1",
        # Stable links Talos accepts for machine.install.disk (siderolabs/talos #8845).
        "/dev/disk/by-id/nvme-eui.002538570141e6e2",
        "/dev/disk/by-path/pci-0000:00:17.0-ata-1",
    ],
)
def test_install_disk_accepts_device_paths_and_stable_links(disk: str) -> None:
    assert _config({"cluster.nodes.0.installDisk": disk}).cluster.nodes[0].install_disk == disk


@pytest.mark.parametrize(
    "disk",
    [
        "/dev/sda1",
        "/dev/vdb2",
        "/dev/xvda1",
        "/dev/nvme0n1p1",
        "/dev/mmcblk0p1",
        "/dev/disk/by-id/nvme-eui.002538570141e6e2-part1",
        "/dev/disk/by-path/pci-0000:00:17.0-ata-1-part2",
        "/dev/disk/by-partuuid/0f3b1c2d-01",
        "/dev/disk/by-uuid/6b1c-22af",
    ],
)
def test_install_disk_refuses_a_partition_or_filesystem(disk: str) -> None:
    """Talos installs to the path as a whole disk: the install sequence resolves its symlinks and
    runs the installer on it, which partitions it (siderolabs/talos@v1.13.9
    internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go `Install`)."""
    with pytest.raises(ConfigError) as failure:
        _config({"cluster.nodes.0.installDisk": disk})
    (problem,) = failure.value.problems
    assert problem.key == "homelab:cluster.nodes[0].installDisk"
    assert "not a partition" in problem.expected


@pytest.mark.parametrize("disk", ["/dev/mmcblk0", "/dev/nvme1n1", "/dev/vda", "/dev/sdab"])
def test_install_disk_accepts_whole_disks_whose_names_end_in_digits(disk: str) -> None:
    assert _config({"cluster.nodes.0.installDisk": disk}).cluster.nodes[0].install_disk == disk


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("domain", "10.0.0.1"),
        ("remoteAccess.magicDnsBaseDomain", "100.64.0.1"),
        ("tls.dns01.zone", "192.168.0.1"),
        ("tls.acmeEmail", "admin@192.168.0.1"),
    ],
)
def test_an_ip_address_is_not_a_domain(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        _config({key: value})
    keys = [p.key for p in failure.value.problems]
    assert f"homelab:{key}" in keys
    assert all("IP address" in p.expected for p in failure.value.problems if p.key.endswith(key))


def test_a_domain_whose_last_label_has_a_letter_is_a_name() -> None:
    # Near miss of the IP check: digits are fine in labels, only an all-numeric TLD is an IP.
    config = _config({"domain": "10.0.0.love", "remoteAccess.magicDnsBaseDomain": "ts.10.0.0.love"})
    assert config.domain == "10.0.0.love"


@pytest.mark.parametrize("secret", ["dnsApiToken", "headplaneCookieSecret"])
@pytest.mark.parametrize(("text", "why"), [(" " * 32, "blank"), ("x" * 31 + "\n", "whitespace")])
def test_every_secret_refuses_blank_or_padded_text_without_echoing_it(
    secret: str, text: str, why: str
) -> None:
    with pytest.raises(ConfigError) as failure:
        _config({secret: text})
    (problem,) = failure.value.problems
    assert problem.key == f"homelab:{secret}"
    assert why in problem.expected
    assert problem.value == "(secret)"


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_an_app_may_not_live_in_a_namespace_kubernetes_keeps(namespace: str) -> None:
    with pytest.raises(ConfigError, match="Kubernetes itself keeps"):
        _config({"apps.0.namespace": namespace})


def test_the_owned_list_is_every_namespace_the_stack_creates_and_each_refuses_apps() -> None:
    # Derived from the render, backups included: every Namespace the stack registers that is
    # not an app's own is on the one list, so a new one cannot be missed by the app check.
    raw = stack_raw_config()
    render = render_stack(
        overrides={
            "backups": {"nfs": {"server": "nas.lan", "path": "/volume1/backups"}},
            "apps": raw["apps"],
        }
    )
    created = {
        r.input("metadata.name")
        for r in render.resources
        if r.type == "kubernetes:core/v1:Namespace"
    }
    apps = {app["namespace"] for app in raw["apps"]}
    assert created - apps == set(OWNED_NAMESPACES)
    for namespace in sorted(OWNED_NAMESPACES):
        with pytest.raises(ConfigError, match="which the stack creates and deletes"):
            _config({"apps.0.namespace": namespace})


def test_builtin_hosts_are_found_by_identity_not_by_an_app_name() -> None:
    # Field validation only (the rules would refuse the name): the accessors still find the
    # built-ins, never the app that took their name.
    raw = stack_raw_config()
    grafana = {**raw["apps"][0], "name": "headscale", "host": "grafana"}
    raw["apps"] = [grafana, {**grafana, "name": "headplane", "host": "wiki", "namespace": "wiki"}]
    config = HomelabConfig.model_validate(raw)
    assert config.headscale_exposure.fqdn == "headscale.sarma.love"
    assert config.headscale_exposure.builtin == "headscale"
    headplane = config.headplane_exposure
    assert headplane is not None
    assert (headplane.fqdn, headplane.builtin) == ("headplane.sarma.love", "headplane")
    assert [config.app_exposure(a).fqdn for a in config.apps] == [
        "grafana.sarma.love",
        "wiki.sarma.love",
    ]
    assert all(config.app_exposure(a).builtin is None for a in config.apps)


@pytest.mark.parametrize("disk", ["sda", "/dev/", "/dev/sda 1", "/mnt/sda"])
def test_install_disk_rejects_what_is_not_a_dev_path(disk: str) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.nodes\[0\]\.installDisk"):
        _config({"cluster.nodes.0.installDisk": disk})


@pytest.mark.parametrize(
    ("changes", "protect", "reset", "acme"),
    [
        ({}, True, False, "production"),
        # Labs are on production too: Tailscale clients refuse staging (config/model.py).
        ({"lifecycle": {"environment": "lab"}}, False, True, "production"),
        (
            {
                "lifecycle": {"environment": "lab", "protect": True, "resetNodesOnDestroy": False},
                "tls.acmeEnvironment": "production",
            },
            True,
            False,
            "production",
        ),
    ],
    ids=["homelab-defaults", "lab-defaults", "lab-overridden"],
)
def test_lifecycle_defaults_follow_the_environment_unless_set(
    changes: dict[str, Any], protect: bool, reset: bool, acme: str
) -> None:
    config = _config(changes)
    assert config.lifecycle.protect_stateful is protect
    assert config.lifecycle.reset_on_destroy is reset
    assert config.acme_environment == acme


def test_stun_shares_traefiks_ip_unless_it_has_its_own_and_the_router_routes_the_lan() -> None:
    shared = _config({"remoteAccess.derp.stunIp": None})
    assert shared.stun_ip == shared.network.traefik_ip
    assert shared.subnet_routes == [shared.network.lan_cidr]
    separate = _config({"remoteAccess.derp.stunIp": "192.168.0.222"})
    assert separate.stun_ip == ipaddress.IPv4Address("192.168.0.222")


def test_the_api_endpoint_is_the_vip_else_the_first_control_plane() -> None:
    assert _config({}).cluster.endpoint == "https://192.168.0.10:6443"
    without_vip = _config(
        {
            "cluster.nodes.0.role": "worker",
            "cluster.nodes.1.role": "worker",
            "cluster.allowSchedulingOnControlPlanes": True,
        },
        ("cluster.vip",),
    )
    assert without_vip.cluster.endpoint == "https://192.168.0.13:6443"


def test_control_planes_run_workloads_by_default_and_by_choice_once_there_are_workers() -> None:
    assert _config({}).cluster.schedule_on_control_planes is True
    worker = {"hostname": "w1", "ip": "192.168.0.21", "role": "worker"}
    # With workers there is no default to flip silently (rules.control_plane_scheduling_is_explicit).
    with pytest.raises(ConfigError, match="allowSchedulingOnControlPlanes"):
        _config({"cluster.nodes.3": worker})
    kept = _config({"cluster.nodes.3": worker, "cluster.allowSchedulingOnControlPlanes": True})
    assert kept.cluster.schedule_on_control_planes is True
    off = _config({"cluster.nodes.3": worker, "cluster.allowSchedulingOnControlPlanes": False})
    assert off.cluster.schedule_on_control_planes is False


@pytest.mark.parametrize(
    ("written", "talos_form"),
    [
        ("00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5e"),
        ("00:1A:2B:3C:4D:5E", "00:1a:2b:3c:4d:5e"),
        ("00-1a-2b-3c-4d-5e", "00:1a:2b:3c:4d:5e"),
    ],
)
def test_a_mac_is_kept_in_the_form_talos_cel_mac_prints(written: str, talos_form: str) -> None:
    # siderolabs/talos@v1.13.9 pkg/machinery/cel/celenv/celenv.go: `mac()` is Go's
    # net.HardwareAddr.String(), i.e. "%02x" octets joined by ':'.
    octets = bytes.fromhex(talos_form.replace(":", ""))
    assert ":".join(f"{b:02x}" for b in octets) == talos_form
    assert _config({"cluster.nodes.0.mac": written}).cluster.nodes[0].mac == talos_form


@pytest.mark.parametrize(
    "bad",
    [
        "00:1a:2b:3c:4d",
        "00:1a:2b:3c:4d:5e:6f",
        "00:1a-2b:3c:4d:5e",
        "001a2b3c4d5e",
        "zz:1a:2b:3c:4d:5e",
    ],
)
def test_a_malformed_mac_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.nodes\[0\]\.mac"):
        _config({"cluster.nodes.0.mac": bad})


def test_exposed_hosts_are_sorted_and_skip_a_disabled_headplane() -> None:
    app = {"name": "blog", "namespace": "web", "service": "blog", "visibility": "public"}
    config = _config({"apps.1": app})
    assert [h.fqdn for h in config.exposed_hosts()] == sorted(
        ["headscale.sarma.love", "headplane.sarma.love", "grafana.sarma.love", "blog.sarma.love"]
    )
    without = _config({"remoteAccess.headplane.enabled": False})
    assert "headplane.sarma.love" not in {h.fqdn for h in without.exposed_hosts()}
