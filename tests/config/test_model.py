"""Field validation and the defaults the model derives (documented in each field's description)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from config.loader import ConfigError, validate_config
from config.model import HomelabConfig
from tests.config.corpus import mutate
from tests.harness import stack_raw_config


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
        {"cluster.nodes.0.role": "worker", "cluster.nodes.1.role": "worker"}, ("cluster.vip",)
    )
    assert without_vip.cluster.endpoint == "https://192.168.0.13:6443"


def test_control_planes_run_workloads_only_when_there_are_no_workers_by_default() -> None:
    assert _config({}).cluster.schedule_on_control_planes is True
    worker = {"hostname": "w1", "ip": "192.168.0.21", "role": "worker"}
    assert _config({"cluster.nodes.3": worker}).cluster.schedule_on_control_planes is False
    forced = _config({"cluster.nodes.3": worker, "cluster.allowSchedulingOnControlPlanes": True})
    assert forced.cluster.schedule_on_control_planes is True


def test_exposed_hosts_are_sorted_and_skip_a_disabled_headplane() -> None:
    app = {"name": "blog", "namespace": "web", "service": "blog", "visibility": "public"}
    config = _config({"apps.1": app})
    assert [h.fqdn for h in config.exposed_hosts()] == sorted(
        ["headscale.sarma.love", "headplane.sarma.love", "grafana.sarma.love", "blog.sarma.love"]
    )
    without = _config({"remoteAccess.headplane.enabled": False})
    assert "headplane.sarma.love" not in {h.fqdn for h in without.exposed_hosts()}
