"""`python -m homelab init`: from flags or answers to a validated Pulumi.<stack>.yaml.

Each test works in its own directory (`root`), never on the committed stack files.
"""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path

import pytest
import yaml

from components.platform.traefik import PUBLIC_EXPOSED_PORT
from config.loader import ConfigError, validate_config
from homelab import cli, engine
from homelab.init import Lan, Proposals, _proc_default_route, parse_node

OTHER_LAN = Lan(
    ipaddress.IPv4Network("10.42.7.0/24"),
    ipaddress.IPv4Address("10.42.7.254"),
    ipaddress.IPv4Address("10.42.7.5"),
)

FLAGS = [
    "--domain",
    "example.net",
    "--email",
    "ops@mail.example.net",
    "--lan-cidr",
    "172.16.5.0/24",
    "--gateway",
    "172.16.5.1",
    "--node",
    "n1=172.16.5.21,disk=/dev/nvme0n1",
    "--node",
    "n2=172.16.5.22,role=worker",
    "--vip",
    "172.16.5.20",
    "--pool",
    "172.16.5.100-172.16.5.110",
    "--traefik-ip",
    "172.16.5.100",
    "--stun-ip",
    "172.16.5.101",
]


def init(
    root: Path, *args: str, stdin: str = "", lan: Lan | None = OTHER_LAN
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["init", *args],
        out=out,
        err=err,
        stdin=io.StringIO(stdin),
        lan_probe=lambda: lan,
        root=root,
    )
    return code, out.getvalue(), err.getvalue()


def written(root: Path, stack: str = "homelab") -> dict[str, object]:
    document = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    assert isinstance(document, dict)
    return document


def raw_config(root: Path, stack: str = "homelab") -> dict[str, object]:
    config, _ = engine.read_stack_file(root / f"Pulumi.{stack}.yaml")
    return {key.partition(":")[2]: value for key, value in config.items()}


def test_flags_alone_write_a_stack_the_program_accepts(tmp_path: Path) -> None:
    code, _, err = init(tmp_path, "--non-interactive", *FLAGS)
    assert (code, err) == (0, "")
    model = validate_config({**raw_config(tmp_path), "dnsApiToken": "x"})
    assert model.domain == "example.net"
    assert model.tls.acme_email == "ops@mail.example.net"
    assert [(n.hostname, str(n.ip), n.role, n.install_disk) for n in model.cluster.nodes] == [
        ("n1", "172.16.5.21", "controlplane", "/dev/nvme0n1"),
        ("n2", "172.16.5.22", "worker", "/dev/sda"),
    ]
    assert str(model.network.traefik_ip) == "172.16.5.100"
    assert str(model.remote_access.derp.stun_ip) == "172.16.5.101"
    assert model.remote_access.magic_dns_base_domain == "ts.example.net"
    # No secret is written: they go through the CLI, encrypted.
    assert "homelab:dnsApiToken" not in written(tmp_path)["config"]  # type: ignore[operator]


def test_next_steps_name_the_projects_cli_the_iso_and_the_programs_port_forwards(
    tmp_path: Path,
) -> None:
    _, out, _ = init(tmp_path, "--non-interactive", *FLAGS)
    assert (
        "./scripts/pulumi config set --secret homelab:dnsApiToken <cloudflare-token> "
        "--stack homelab" in out
    )
    assert "metal-amd64.iso" in out
    # What the program exports for this stack: Traefik's public entrypoint and STUN.
    assert f"WAN 443/tcp -> 172.16.5.100:{PUBLIC_EXPOSED_PORT}" in out
    assert "WAN 3478/udp -> 172.16.5.101:3478" in out
    assert "headscale.example.net -> your public IP" in out
    assert out.rstrip().endswith("./scripts/up homelab")


def test_answers_on_stdin_with_proposals_from_the_detected_lan(tmp_path: Path) -> None:
    # Domain typed, then Enter for every proposal (e-mail, environment, name, LAN, gateway,
    # node count, the node's four fields, VIP, pool, Traefik IP, STUN IP).
    answers = "mine.example.net\n" + "\n" * 15
    code, out, err = init(tmp_path, "--stack", "homelab", stdin=answers)
    assert (code, err) == (0, ""), out
    raw = raw_config(tmp_path)
    model = validate_config({**raw, "dnsApiToken": "x"})
    lan = OTHER_LAN.network
    assert model.network.lan_cidr == lan
    assert model.network.gateway == OTHER_LAN.gateway
    assert [n.ip in lan for n in model.cluster.nodes] == [True]
    assert model.cluster.vip in lan
    assert model.network.traefik_ip in lan
    assert model.tls.acme_email == "admin@mine.example.net"
    assert "LAN CIDR [10.42.7.0/24]" in out


def test_a_typed_answer_replaces_the_proposal(tmp_path: Path) -> None:
    answers = "mine.example.net\n\nlab\nlab-one\n" + "\n" * 12
    code, _, err = init(tmp_path, "--stack", "lab-one", stdin=answers)
    assert (code, err) == (0, "")
    raw = raw_config(tmp_path, "lab-one")
    assert raw["lifecycle"] == {"environment": "lab"}
    assert raw["cluster"]["name"] == "lab-one"  # type: ignore[index]


def test_bad_values_give_the_models_one_line_errors_and_write_nothing(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    assert init(good, "--non-interactive", *FLAGS)[0] == 0
    flags = [*FLAGS]
    flags[flags.index("--traefik-ip") + 1] = "172.16.5.200"
    code, _, err = init(bad, "--non-interactive", *flags)
    assert code == 2
    assert not (bad / "Pulumi.homelab.yaml").exists()
    # Exactly what the program's own validation says about that config.
    raw = raw_config(good)
    raw["network"]["traefikIp"] = "172.16.5.200"  # type: ignore[index]
    with pytest.raises(ConfigError) as expected:
        validate_config({**raw, "dnsApiToken": "x"})
    assert err == f"error: {expected.value.render()}\n"
    assert "homelab:network.traefikIp: '172.16.5.200'" in err


def test_an_existing_stack_file_is_kept_unless_forced_and_its_secrets_survive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Pulumi.homelab.yaml"
    path.write_text(
        "encryptionsalt: v1:abc:def\n"
        "config:\n"
        "  homelab:domain: old.example\n"
        "  homelab:dnsApiToken:\n"
        "    secure: v1:ciphertext\n"
    )
    code, _, err = init(tmp_path, "--non-interactive", *FLAGS)
    assert code == 2
    assert "--force" in err
    code, _, err = init(tmp_path, "--non-interactive", "--force", *FLAGS)
    assert (code, err) == (0, "")
    document = written(tmp_path)
    assert document["encryptionsalt"] == "v1:abc:def"
    config = document["config"]
    assert isinstance(config, dict)
    assert config["homelab:dnsApiToken"] == {"secure": "v1:ciphertext"}
    assert config["homelab:domain"] == "example.net"


def test_a_lab_that_collides_with_the_homelab_is_refused(tmp_path: Path) -> None:
    assert init(tmp_path, "--non-interactive", *FLAGS)[0] == 0
    code, _, err = init(tmp_path, "--non-interactive", "--stack", "lab", *FLAGS)
    assert code == 2
    assert "homelab:cluster.nodes[0].ip: '172.16.5.21' — collides with the homelab's" in err
    assert not (tmp_path / "Pulumi.lab.yaml").exists()


def test_the_stack_file_points_editors_at_the_schema(tmp_path: Path) -> None:
    init(tmp_path, "--non-interactive", *FLAGS)
    first = (tmp_path / "Pulumi.homelab.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema/stack.schema.json"


def test_a_malformed_node_flag_is_one_line() -> None:
    with pytest.raises(Exception, match="expected HOSTNAME=IP"):
        parse_node("n1")
    with pytest.raises(Exception, match="unknown option 'size=1'"):
        parse_node("n1=10.0.0.2,size=1")


def test_the_default_route_is_read_from_proc_net_route() -> None:
    """Linux prints each route's gateway as the raw __be32 with "%08X" (net/ipv4/fib_trie.c,
    fib_route_seq_show), which reads little-endian on x86/arm: 0100A8C0 is 192.168.0.1."""
    text = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\n"
    )
    assert _proc_default_route(text) == ("eth0", ipaddress.IPv4Address("192.168.0.1"))


def test_proposals_keep_the_authors_layout_in_any_lan() -> None:
    proposals = Proposals(Lan(ipaddress.IPv4Network("10.1.2.0/24"), None))
    assert proposals.gateway == "10.1.2.1"
    assert proposals.vip == "10.1.2.10"
    assert proposals.node_ip(0) == "10.1.2.11"
    assert proposals.pool == "10.1.2.220-10.1.2.239"
    assert (proposals.traefik_ip, proposals.stun_ip) == ("10.1.2.220", "10.1.2.221")
