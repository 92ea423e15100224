"""A lab refuses config that collides with the real homelab (config/lab_guard.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.lab_guard import HOMELAB_STACK_FILE, check_lab_isolation, stack_identity_problems
from config.loader import ConfigError, validate_config
from config.model import HomelabConfig
from config.rules import Problem
from homelab import engine
from tests.harness import (
    committed_raw_config,
    fixture_lab_guard,
    fixture_stack_file,
    stack_raw_config,
    with_changes,
)

LAB = stack_raw_config("lab")
HOMELAB = stack_raw_config("homelab")
FIXTURE_HOMELAB_FILE = fixture_stack_file("homelab")


def lab_config(changes: dict[str, Any] | None = None) -> HomelabConfig:
    """The lab template with dotted-path changes, validated like any stack."""
    return validate_config(with_changes(LAB, changes or {}))


def collisions(config: HomelabConfig, homelab_file: Path = FIXTURE_HOMELAB_FILE) -> list[Problem]:
    """Collisions of `config` as stack `lab`, whose stack file sits beside `homelab_file`."""
    lab_file = homelab_file.parent / "Pulumi.lab.yaml"
    if not lab_file.exists():
        lab_file.write_text(fixture_stack_file("lab").read_text())
    return check_lab_isolation(config, stack="lab", homelab_file=homelab_file)


def keys(problems: list[Problem]) -> list[str]:
    return [p.key for p in problems]


def test_the_lab_template_does_not_collide_with_the_homelab() -> None:
    assert collisions(lab_config()) == []


@pytest.mark.stack_files
def test_the_projects_lab_template_does_not_collide_with_its_homelab() -> None:
    lab = validate_config(committed_raw_config("lab"))
    assert check_lab_isolation(lab, stack="lab", homelab_file=HOMELAB_STACK_FILE) == []


def test_the_guard_reads_the_homelab_file_of_the_project_root() -> None:
    assert engine.stack_file("homelab") == HOMELAB_STACK_FILE


def test_a_node_ip_of_the_homelab_is_refused() -> None:
    problems = collisions(lab_config({"cluster.nodes.0.ip": HOMELAB["cluster"]["nodes"][1]["ip"]}))
    assert keys(problems) == ["homelab:cluster.nodes[0].ip"]
    assert "node talos-cp-2 (192.168.0.12)" in problems[0].expected


def test_a_lab_node_moving_from_a_homelab_address_is_refused() -> None:
    # `up` would send the lab node's Talos config to the homelab machine at that address.
    moving = {"cluster.nodes.0.currentAddress": HOMELAB["cluster"]["nodes"][1]["ip"]}
    problems = collisions(lab_config(moving))
    assert keys(problems) == ["homelab:cluster.nodes[0].currentAddress"]
    assert "node talos-cp-2 (192.168.0.12)" in problems[0].expected


def test_the_homelab_vip_is_refused() -> None:
    problems = collisions(lab_config({"cluster.vip": HOMELAB["cluster"]["vip"]}))
    assert keys(problems) == ["homelab:cluster.vip"]
    assert "cluster VIP" in problems[0].expected


def test_a_pool_overlapping_the_homelab_pool_is_refused() -> None:
    # Only the last address overlaps; ranges, not just equal entries, are compared.
    changes = {
        "network.addressPools.0.addresses": ["192.168.0.200-192.168.0.220"],
        "network.traefikIp": "192.168.0.200",
        "remoteAccess.derp.stunIp": "192.168.0.201",
    }
    problems = collisions(lab_config(changes))
    assert keys(problems) == ["homelab:network.addressPools[0].addresses[0]"]
    assert "MetalLB pool 'lan'" in problems[0].expected
    assert "Traefik IP (192.168.0.220)" in problems[0].expected


def test_a_pool_containing_a_homelab_node_is_refused() -> None:
    changes = {
        "network.addressPools.0.addresses": ["192.168.0.240-192.168.0.249", "192.168.0.12/32"],
    }
    problems = collisions(lab_config(changes))
    assert keys(problems) == ["homelab:network.addressPools[0].addresses[1]"]
    assert "node talos-cp-2" in problems[0].expected


def test_the_traefik_ip_inside_the_homelab_pool_is_refused() -> None:
    changes = {
        "network.addressPools.0.addresses": ["192.168.0.240-192.168.0.249", "192.168.0.230/32"],
        "network.traefikIp": "192.168.0.230",
    }
    problems = collisions(lab_config(changes))
    assert "homelab:network.traefikIp" in keys(problems)


def test_a_stun_ip_the_homelab_uses_is_refused() -> None:
    changes = {
        "network.addressPools.0.addresses": ["192.168.0.240-192.168.0.249", "192.168.0.225/32"],
        "remoteAccess.derp": {"enabled": True, "stunPort": 3478, "stunIp": "192.168.0.225"},
    }
    problems = collisions(lab_config(changes))
    assert "homelab:remoteAccess.derp.stunIp" in keys(problems)


def test_the_homelabs_stun_ip_is_claimed_too(tmp_path: Path) -> None:
    # The other direction: the homelab has a dedicated STUN IP and the lab pool covers it.
    homelab = yaml.safe_load(FIXTURE_HOMELAB_FILE.read_text())
    homelab["config"]["homelab:network"]["addressPools"][0]["addresses"].append("192.168.0.245/32")
    homelab["config"]["homelab:remoteAccess"]["derp"]["stunIp"] = "192.168.0.245"
    path = tmp_path / "Pulumi.homelab.yaml"
    path.write_text(yaml.safe_dump(homelab))
    problems = collisions(lab_config(), path)
    assert keys(problems) == ["homelab:network.addressPools[0].addresses[0]"]
    assert "STUN IP (192.168.0.245)" in problems[0].expected


def test_a_homelab_node_hostname_is_refused() -> None:
    problems = collisions(lab_config({"cluster.nodes.2.hostname": "talos-cp-1"}))
    assert keys(problems) == ["homelab:cluster.nodes[2].hostname"]


def test_the_homelab_cluster_name_is_refused() -> None:
    problems = collisions(lab_config({"cluster.name": HOMELAB["cluster"]["name"]}))
    assert keys(problems) == ["homelab:cluster.name"]


def test_hosts_the_homelab_serves_are_refused() -> None:
    changes = {"domain": HOMELAB["domain"], "remoteAccess.magicDnsBaseDomain": "ts.lab.sarma.love"}
    problems = collisions(lab_config(changes))
    assert keys(problems) == ["homelab:domain"]
    assert "headscale.sarma.love" in problems[0].expected


def test_the_homelab_certificate_names_are_refused_even_without_a_shared_host() -> None:
    """Let's Encrypt's limit of 5 new certificates per exact set of identifiers per 7 days
    (letsencrypt.org/docs/rate-limits, 2025-06): a lab whose wildcard names equal the homelab's
    would spend the homelab's renewals, so each lab needs its own domain."""
    changes = {
        "domain": HOMELAB["domain"],
        "remoteAccess.magicDnsBaseDomain": "ts.lab.sarma.love",
        "remoteAccess.headscaleHost": "lab-headscale",
        "remoteAccess.headplane": {"host": "lab-headplane"},
        "apps.0.host": "lab-grafana",
    }
    problems = collisions(lab_config(changes))
    assert keys(problems) == ["homelab:domain"]
    assert "5 certificates a week" in problems[0].expected
    assert "*.sarma.love" in problems[0].expected


def test_the_homelab_magic_dns_domain_is_refused() -> None:
    changes = {"remoteAccess.magicDnsBaseDomain": HOMELAB["remoteAccess"]["magicDnsBaseDomain"]}
    problems = collisions(lab_config(changes))
    assert keys(problems) == ["homelab:remoteAccess.magicDnsBaseDomain"]


def test_without_a_homelab_file_there_is_nothing_to_check(tmp_path: Path) -> None:
    clone = lab_config({"cluster.vip": HOMELAB["cluster"]["vip"]})
    assert collisions(clone, tmp_path / "Pulumi.homelab.yaml") == []


def test_only_labs_are_checked() -> None:
    homelab = validate_config(HOMELAB)
    assert check_lab_isolation(homelab, stack="other") == []
    as_lab = validate_config(with_changes(HOMELAB, {"lifecycle": {"environment": "lab"}}))
    # The homelab stack itself is not compared with its own file ...
    assert check_lab_isolation(as_lab, stack="homelab") == []
    # ... but the same config as another stack of the project collides everywhere.
    assert len(check_lab_isolation(as_lab, stack="lab", homelab_file=FIXTURE_HOMELAB_FILE)) >= 8


def test_config_that_is_not_a_stack_of_the_project_is_not_checked() -> None:
    # A test's in-memory variant (e.g. the homelab config flipped to 'lab') is no lab on the LAN.
    as_lab = validate_config(with_changes(HOMELAB, {"lifecycle": {"environment": "lab"}}))
    assert not engine.stack_file("variant").exists()
    assert check_lab_isolation(as_lab, stack="variant") == []


def test_encrypted_values_in_the_homelab_file_do_not_stop_the_check(tmp_path: Path) -> None:
    homelab = yaml.safe_load(FIXTURE_HOMELAB_FILE.read_text())
    homelab["config"]["homelab:dnsApiToken"] = {"secure": "v1:AAAA"}
    homelab["config"]["homelab:headplaneCookieSecret"] = {"secure": "v1:BBBB"}
    path = tmp_path / "Pulumi.homelab.yaml"
    path.write_text(yaml.safe_dump(homelab))
    assert keys(collisions(lab_config({"cluster.vip": "192.168.0.10"}), path)) == [
        "homelab:cluster.vip"
    ]


def test_an_invalid_homelab_file_is_reported_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.homelab.yaml"
    path.write_text("config:\n  homelab:domain: sarma.love\n")
    (problem,) = collisions(lab_config(), path)
    assert problem.key == "Pulumi.homelab.yaml"
    assert "fix it first" in problem.expected


def test_the_loader_refuses_a_colliding_lab_before_any_resource_exists() -> None:
    lab = {f"homelab:{k}": v for k, v in with_changes(LAB, {"cluster.vip": "192.168.0.10"}).items()}
    with pytest.raises(engine.RenderError) as failure, fixture_lab_guard():
        engine.render("lab", config=lab, secret_keys=["homelab:dnsApiToken"])
    assert (
        "homelab:cluster.vip: '192.168.0.10' — collides with the homelab's cluster VIP (192.168.0.10)"
        in str(failure.value)
    )
    assert failure.value.partial.resources == []


# --- the stack's identity against lifecycle.environment --------------------------------------


def _environment(environment: str) -> HomelabConfig:
    return HomelabConfig.model_validate(
        with_changes(HOMELAB, {"lifecycle": {"environment": environment}})
    )


def test_the_homelab_stack_cannot_become_a_lab_and_is_told_how_to_make_one() -> None:
    (problem,) = stack_identity_problems(_environment("lab"), stack="homelab")
    assert problem.key == "homelab:lifecycle.environment"
    assert "python -m homelab lab up" in problem.expected
    assert "Pulumi.lab.yaml" in problem.expected
    assert stack_identity_problems(_environment("homelab"), stack="homelab") == []


def test_a_lab_stack_of_the_project_cannot_claim_to_be_the_homelab(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.lab7.yaml").write_text("config: {}\n")
    (problem,) = stack_identity_problems(
        _environment("homelab"), stack="lab7", project_dir=tmp_path
    )
    assert problem.key == "homelab:lifecycle.environment"
    assert "'lab'" in problem.expected
    assert stack_identity_problems(_environment("lab"), stack="lab7", project_dir=tmp_path) == []


def test_a_stack_without_a_file_of_the_project_is_not_judged(tmp_path: Path) -> None:
    # A test's in-memory stack: the environment is whatever the test says.
    assert (
        stack_identity_problems(_environment("homelab"), stack="test", project_dir=tmp_path) == []
    )


def test_the_loader_judges_the_running_stack_with_the_other_problems() -> None:
    raw = with_changes(
        HOMELAB, {"lifecycle": {"environment": "lab"}, "network.traefikIp": "192.168.0.250"}
    )
    with pytest.raises(ConfigError) as failure:
        validate_config(raw, stack="homelab")
    assert [p.key for p in failure.value.problems] == [
        "homelab:lifecycle.environment",
        "homelab:network.traefikIp",
    ]
