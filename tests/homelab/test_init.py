"""`python -m homelab init`: from flags or answers to a validated Pulumi.<stack>.yaml.

Each test works in its own directory (`root`), never on the committed stack files.
"""

from __future__ import annotations

import io
import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import config.loader
from components.platform.traefik import PUBLIC_EXPOSED_PORT
from config.lab_guard import check_against_file, check_lab_isolation
from config.loader import ConfigError, validate_config
from homelab import cli, engine
from homelab.init import is_example, parse_node
from homelab.init_prompts import LAB_LAYOUT, Lan, Proposals, _proc_default_route
from tests.harness import fixture_stack_file

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
    # The program's own ISO (its Image Factory schematic), as the render exports it.
    assert "https://factory.talos.dev/image/" in out
    assert "metal-amd64.iso" in out
    assert "./scripts/pulumi stack select --create homelab --secrets-provider passphrase" in out
    assert "./scripts/homelab render --update-golden" in out
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
    assert proposals.vip() == "10.1.2.10"
    assert proposals.node_ip() == "10.1.2.11"
    assert proposals.pool() == "10.1.2.220-10.1.2.239"
    assert proposals.in_pool(proposals.pool()) == "10.1.2.220"
    lab = Proposals(Lan(ipaddress.IPv4Network("10.1.2.0/24"), None), LAB_LAYOUT)
    assert (lab.vip(), lab.node_ip(), lab.pool()) == (
        "10.1.2.50",
        "10.1.2.51",
        "10.1.2.240-10.1.2.249",
    )


def test_proposals_skip_what_is_taken() -> None:
    gateway = ipaddress.IPv4Address("10.1.2.10")
    proposals = Proposals(Lan(ipaddress.IPv4Network("10.1.2.0/24"), gateway))
    proposals.take("10.1.2.11", "10.1.2.230-10.1.2.231")
    assert proposals.vip() == "10.1.2.12"  # .10 is the router, .11 a node
    assert proposals.node_ip() == "10.1.2.12"
    # The layout's pool overlaps a taken range: the nearest free range below it.
    assert proposals.pool() == "10.1.2.210-10.1.2.229"
    proposals.take("10.1.2.100")
    assert proposals.in_pool("10.1.2.100-10.1.2.110") == "10.1.2.101"


# --- the person at the terminal ---------------------------------------------------------------


def test_traefik_and_stun_are_proposed_from_the_pool_just_typed(tmp_path: Path) -> None:
    # Domain, then Enter up to the pool, which is typed; Enter for Traefik's and STUN's IPs.
    answers = "mine.example.net\n" + "\n" * 11 + "10.42.7.100-10.42.7.110\n" + "\n\n"
    code, out, err = init(tmp_path, stdin=answers)
    assert (code, err) == (0, ""), out
    assert "Traefik IP (inside the pool) [10.42.7.100]" in out
    assert "STUN IP (inside the pool) [10.42.7.101]" in out
    raw = raw_config(tmp_path)
    assert raw["network"]["traefikIp"] == "10.42.7.100"  # type: ignore[index]
    assert raw["remoteAccess"]["derp"]["stunIp"] == "10.42.7.101"  # type: ignore[index]
    # Without a terminal the same: only the pool given.
    flags = [
        "--domain",
        "x.example.net",
        "--lan-cidr",
        "10.9.0.0/24",
        "--pool",
        "10.9.0.50-10.9.0.59",
    ]
    (tmp_path / "flags").mkdir()
    assert init(tmp_path / "flags", "--non-interactive", *flags)[0] == 0
    network = raw_config(tmp_path / "flags")["network"]
    assert network["traefikIp"] == "10.9.0.50"  # type: ignore[index]


def test_taking_every_proposal_in_a_typed_lan_never_fails(tmp_path: Path) -> None:
    # A LAN other than the detected one, the router at .10: nothing proposed collides.
    flags = ["--domain", "x.example.net", "--lan-cidr", "10.42.0.0/24", "--gateway", "10.42.0.10"]
    code, _, err = init(tmp_path, "--non-interactive", "--nodes", "3", *flags)
    assert (code, err) == (0, "")
    model = validate_config({**raw_config(tmp_path), "dnsApiToken": "x"})
    addresses = [str(n.ip) for n in model.cluster.nodes] + [str(model.cluster.vip)]
    assert len(set(addresses)) == 4
    assert "10.42.0.10" not in addresses


def test_a_validation_error_asks_again_only_the_answers_it_names(tmp_path: Path) -> None:
    # Everything proposed except Traefik's IP, typed outside the pool; then the right one.
    answers = "mine.example.net\n" + "\n" * 12 + "10.42.7.9\n" + "\n" + "10.42.7.225\n"
    code, out, err = init(tmp_path, stdin=answers)
    assert (code, err) == (0, ""), out
    assert "homelab:network.traefikIp: '10.42.7.9' — must be inside a MetalLB pool" in out
    assert "Asking again for those; every other answer is kept." in out
    assert "Traefik IP (inside the pool) (not '10.42.7.9') [10.42.7.220]" in out
    for question in ("Domain", "LAN CIDR", "Node 1 IP", "MetalLB address pool", "STUN IP"):
        assert out.count(question) == 1, question
    raw = raw_config(tmp_path)
    assert raw["domain"] == "mine.example.net"
    assert raw["network"]["traefikIp"] == "10.42.7.225"  # type: ignore[index]


def test_a_wrong_flag_is_asked_again_at_the_terminal(tmp_path: Path) -> None:
    flags = [*FLAGS]
    flags[flags.index("--traefik-ip") + 1] = "172.16.5.200"
    # Enter for what the flags leave open (environment, cluster name, scheduling), then the
    # corrected IP: the one question asked again.
    code, out, err = init(tmp_path, *flags, stdin="\n\n\n172.16.5.105\n")
    assert (code, err) == (0, ""), out
    assert raw_config(tmp_path)["network"]["traefikIp"] == "172.16.5.105"  # type: ignore[index]


def test_a_malformed_answer_is_asked_again_at_once(tmp_path: Path) -> None:
    answers = "mine.example.net\n\n\n\nnot-a-network\n10.42.7.0/24\n" + "\n" * 10
    code, out, _ = init(tmp_path, stdin=answers)
    assert code == 0, out
    assert "'not-a-network': not an IPv4 network" in out
    (tmp_path / "flags").mkdir()
    code, _, err = init(tmp_path / "flags", "--non-interactive", *FLAGS, "--pool", "a-b")
    assert code == 2
    assert err.startswith("error: MetalLB address pool (first-last) 'a-b': must be an IPv4 range")


# --- a fresh clone: the project's example stack files -----------------------------------------


def example_stack(root: Path, stack: str = "homelab") -> Path:
    """A stack file like the project's committed ones: not written by init, never used."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"Pulumi.{stack}.yaml"
    shutil.copyfile(fixture_stack_file(stack), path)
    return path


def test_the_example_stack_file_of_a_fresh_clone_is_replaced_without_force(tmp_path: Path) -> None:
    path = example_stack(tmp_path)
    assert is_example(path)
    code, out, err = init(tmp_path, "--non-interactive", *FLAGS)
    assert (code, err) == (0, "")
    assert "Replacing the example Pulumi.homelab.yaml (domain 'sarma.love')" in out
    assert raw_config(tmp_path)["domain"] == "example.net"
    # What init wrote is the user's: replacing it again needs --force.
    assert not is_example(path)
    code, _, err = init(tmp_path, "--non-interactive", *FLAGS)
    assert code == 2
    assert "is yours (written by init, or used by Pulumi); pass --force" in err


def test_at_the_terminal_the_example_is_replaced_only_when_confirmed(tmp_path: Path) -> None:
    path = example_stack(tmp_path)
    before = path.read_text()
    code, out, err = init(tmp_path, *FLAGS, stdin="n\n")
    assert code == 2
    assert "holds the project's example values (domain 'sarma.love'); replace it (Y/n)" in out
    assert err == "error: kept Pulumi.homelab.yaml; nothing written\n"
    assert path.read_text() == before
    assert init(tmp_path, *FLAGS, stdin="\n")[0] == 0


def test_a_stack_file_pulumi_has_used_is_no_example(tmp_path: Path) -> None:
    path = example_stack(tmp_path)
    path.write_text("encryptionsalt: v1:abc:def\n" + path.read_text())
    assert not is_example(path)
    path = example_stack(tmp_path / "secret")
    path.write_text(path.read_text() + "  homelab:dnsApiToken:\n    secure: v1:ciphertext\n")
    assert not is_example(path)


def test_a_lab_is_proposed_from_the_homelab_in_its_own_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The offline render of the new lab checks it against this root's homelab, as it would the
    # project's (config/loader.py checks a lab against the homelab beside it).
    def against_this_homelab(lab: Any, *, stack: str, homelab_file: Path | None = None) -> Any:
        del homelab_file
        return check_lab_isolation(lab, stack=stack, homelab_file=tmp_path / "Pulumi.homelab.yaml")

    monkeypatch.setattr(config.loader, "check_lab_isolation", against_this_homelab)
    assert init(tmp_path, "--non-interactive", *FLAGS)[0] == 0
    example_stack(tmp_path, "lab")  # the project's lab template: replaced without --force
    code, out, err = init(tmp_path, "--non-interactive", "--stack", "lab")
    assert (code, err) == (0, ""), out
    lab = validate_config({**raw_config(tmp_path, "lab"), "dnsApiToken": "x"})
    homelab = validate_config({**raw_config(tmp_path), "dnsApiToken": "x"})
    assert lab.domain == "lab.example.net"
    assert lab.tls.dns01.zone == "example.net"  # the lab's records live in the homelab's zone
    assert lab.tls.acme_email == homelab.tls.acme_email
    assert lab.network.lan_cidr == homelab.network.lan_cidr
    assert lab.lifecycle.is_lab
    assert str(lab.cluster.vip) == "172.16.5.50"
    assert str(lab.network.traefik_ip) == "172.16.5.240"
    # The same collision check the program runs on `up` finds nothing.
    assert check_against_file(lab, tmp_path / "Pulumi.homelab.yaml", "the homelab") == []
