"""`python -m homelab init [--stack NAME]`: write a validated Pulumi.<stack>.yaml for your own LAN.

Every value can be given as a flag (for scripts); whatever is not given is asked on the terminal
with a proposal taken from the workstation's LAN (its default route and address), or, with
`--non-interactive`, the proposal is taken as is. The result is validated by the same model and
rules as the program (`config.loader.validate_config`: one line per problem, nothing written), a
lab is checked against the homelab's stack file (config/lab_guard.py), and then the next steps are
printed: secrets, the Talos ISO, the router's port forwards (from an offline render of the new
stack, so they are exactly what the program exports) and `./scripts/up`.

An existing stack file is replaced only with `--force`; its encryption salt and its encrypted
(`secure:`) values are kept, so secrets already set survive a re-run.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import yaml

from config import pins
from config.lab_guard import check_against_file
from config.loader import ConfigError, validate_config
from config.rules import NS, Problem
from homelab import engine

SCHEMA_PATH: Final = "schema/stack.schema.json"
# Pulumi's own stack-file keys that carry the encryption of the stack's secrets.
ENCRYPTION_KEYS: Final = ("secretsprovider", "encryptedkey", "encryptionsalt")
# Validation needs the required secret; it is never written (secrets go through the CLI).
_VALIDATION_TOKEN: Final = "init-placeholder-token"
FALLBACK_LAN: Final = ipaddress.IPv4Network("192.168.1.0/24")
ROLES: Final = ("controlplane", "worker")
TALOS_ISO_URL: Final = (
    # The release asset list: siderolabs/talos@v1.13.9:.github/workflows/ci.yaml (release job).
    "https://github.com/siderolabs/talos/releases/download/{version}/metal-amd64.iso"
)


class InitError(Exception):
    """A refusal the user can fix (an existing file, a malformed flag): one line, exit code 2."""


@dataclass(frozen=True)
class Lan:
    """What the workstation knows about its LAN: the network, the router, its own address."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    address: ipaddress.IPv4Address | None = None


@dataclass(frozen=True)
class NodeSpec:
    hostname: str
    ip: str
    role: str = "controlplane"
    install_disk: str = "/dev/sda"


def _proc_default_route(text: str) -> tuple[str, ipaddress.IPv4Address] | None:
    """(interface, gateway) of the default route in /proc/net/route (little-endian hex)."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000":
            gateway = ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1])
            return fields[0], gateway
    return None


def detect_lan() -> Lan | None:
    """The LAN of the default route (Linux: /proc/net/route and `ip -o -4 addr`), or None."""
    try:
        route = _proc_default_route(Path("/proc/net/route").read_text())
        if route is None:
            return None
        interface, gateway = route
        shown = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", interface],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    match = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", shown)
    if match is None:
        return None
    interface_address = ipaddress.IPv4Interface(match.group(1))
    return Lan(interface_address.network, gateway, interface_address.ip)


@dataclass(frozen=True)
class Proposals:
    """Addresses proposed inside a LAN: the same layout as the author's stack, shifted to it."""

    lan: Lan

    def _at(self, offset: int) -> str:
        network = self.lan.network
        if offset >= network.num_addresses - 1:
            raise InitError(
                f"the LAN {network} is too small to propose addresses; give them as flags"
            )
        return str(network.network_address + offset)

    def _pool_start(self) -> int:
        # .220-.239 on a /24; the same distance from the end on smaller networks.
        size = self.lan.network.num_addresses
        return 220 if size >= 256 else size - 36

    @property
    def gateway(self) -> str:
        return str(self.lan.gateway or self._at(1))

    @property
    def vip(self) -> str:
        return self._at(10)

    def node_ip(self, index: int) -> str:
        return self._at(11 + index)

    @property
    def pool(self) -> str:
        start = self._pool_start()
        return f"{self._at(start)}-{self._at(start + 19)}"

    @property
    def traefik_ip(self) -> str:
        return self._at(self._pool_start())

    @property
    def stun_ip(self) -> str:
        return self._at(self._pool_start() + 1)


def parse_node(text: str) -> NodeSpec:
    """`HOSTNAME=IP[,role=controlplane|worker][,disk=/dev/...]`, as given to --node."""
    head, *options = text.split(",")
    hostname, sep, ip = head.partition("=")
    if not sep or not hostname or not ip:
        raise InitError(
            f"--node {text!r}: expected HOSTNAME=IP[,role=controlplane|worker][,disk=/dev/...]"
        )
    fields = {"role": "controlplane", "disk": "/dev/sda"}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in fields:
            raise InitError(f"--node {text!r}: unknown option {option!r}; use role= or disk=")
        fields[key] = value
    return NodeSpec(hostname.strip(), ip.strip(), fields["role"], fields["disk"])


class Asker:
    """Asks for what the flags did not give; `--non-interactive` takes every proposal."""

    def __init__(self, interactive: bool, stdin: TextIO, out: TextIO) -> None:
        self.interactive = interactive
        self.stdin = stdin
        self.out = out

    def ask(self, question: str, given: str | None, proposal: str | None) -> str:
        if given is not None:
            return given
        if not self.interactive:
            if proposal is None:
                raise InitError(f"{question}: no proposal; give it as a flag")
            return proposal
        suffix = f" [{proposal}]" if proposal is not None else ""
        while True:
            print(f"{question}{suffix}: ", end="", file=self.out, flush=True)
            line = self.stdin.readline()
            if not line:  # end of input: take the proposal, or stop
                if proposal is None:
                    raise InitError(f"{question}: no answer (end of input)")
                print(file=self.out)
                return proposal
            answer = line.strip()
            if answer:
                return answer
            if proposal is not None:
                return proposal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="homelab", help="stack name: writes Pulumi.<stack>.yaml")
    parser.add_argument("--domain", help="your domain, e.g. example.com")
    parser.add_argument("--email", help="Let's Encrypt account e-mail (default admin@<domain>)")
    parser.add_argument("--environment", choices=("homelab", "lab"), help="default: by stack name")
    parser.add_argument("--cluster-name", help="cluster name (default: the stack name)")
    parser.add_argument("--lan-cidr", help="home LAN, e.g. 192.168.1.0/24 (default: detected)")
    parser.add_argument("--gateway", help="the router's LAN address (default: detected)")
    parser.add_argument(
        "--node",
        action="append",
        metavar="HOST=IP[,role=R][,disk=D]",
        help="a node (repeat for each); default: one control plane proposed in the LAN",
    )
    parser.add_argument("--nodes", type=int, help="how many nodes to propose when no --node")
    parser.add_argument(
        "--schedule-on-control-planes",
        choices=("yes", "no"),
        help="with workers: whether control planes run workloads too (asked when unset)",
    )
    parser.add_argument("--vip", help="control-plane VIP (a free LAN address)")
    parser.add_argument("--pool", help="MetalLB address range 'first-last' (free LAN addresses)")
    parser.add_argument("--traefik-ip", help="Traefik's LoadBalancer IP (inside the pool)")
    parser.add_argument("--stun-ip", help="STUN's LoadBalancer IP (inside the pool)")
    parser.add_argument(
        "--non-interactive", action="store_true", help="ask nothing: take every proposal"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing stack file")


def _nodes(args: argparse.Namespace, asker: Asker, proposals: Proposals, stack: str) -> list[Any]:
    specs = [parse_node(text) for text in args.node or []]
    if not specs:
        count_text = asker.ask(
            "How many nodes", None if args.nodes is None else str(args.nodes), "1"
        )
        if not count_text.isdigit() or int(count_text) < 1:
            raise InitError(f"number of nodes {count_text!r}: give a whole number, 1 or more")
        for index in range(int(count_text)):
            number = index + 1
            hostname = asker.ask(f"Node {number} hostname", None, f"{stack}-cp-{number}")
            ip = asker.ask(f"Node {number} IP", None, proposals.node_ip(index))
            role = asker.ask(f"Node {number} role ({'/'.join(ROLES)})", None, "controlplane")
            disk = asker.ask(f"Node {number} install disk", None, "/dev/sda")
            specs.append(NodeSpec(hostname, ip, role, disk))
    return [
        {"hostname": s.hostname, "ip": s.ip, "role": s.role, "installDisk": s.install_disk}
        for s in specs
    ]


def gather(
    args: argparse.Namespace, asker: Asker, lan_probe: Callable[[], Lan | None]
) -> dict[str, Any]:
    """The stack's `homelab:*` config (keys without the namespace) from flags, answers, proposals."""
    stack: str = args.stack
    domain = asker.ask("Domain (services live at <host>.<domain>)", args.domain, None)
    email = asker.ask("Let's Encrypt e-mail", args.email, f"admin@{domain}")
    environment = asker.ask(
        "Environment (homelab/lab)",
        args.environment,
        "homelab" if stack == "homelab" else "lab",
    )
    cluster_name = asker.ask("Cluster name", args.cluster_name, stack)
    detected = lan_probe() if args.lan_cidr is None else None
    lan_proposal = str(detected.network if detected else FALLBACK_LAN)
    lan_text = asker.ask("LAN CIDR", args.lan_cidr, lan_proposal)
    try:
        network = ipaddress.IPv4Network(lan_text, strict=False)
    except ValueError:
        # Proposals need a network; the model reports the bad value with its key below.
        network = FALLBACK_LAN
    gateway_guess = detected.gateway if detected and detected.network == network else None
    proposals = Proposals(Lan(network, gateway_guess))
    gateway = asker.ask("Gateway (router)", args.gateway, proposals.gateway)
    nodes = _nodes(args, asker, proposals, stack)
    cluster: dict[str, Any] = {"name": cluster_name}
    if any(node["role"] == "worker" for node in nodes):
        # With workers the choice is explicit (config/rules.py control_plane_scheduling_is_explicit).
        schedule = asker.ask(
            "Run workloads on the control planes too (yes/no)",
            args.schedule_on_control_planes,
            "no",
        )
        answer = schedule.strip().lower()
        if answer not in ("yes", "no"):
            raise InitError(f"run workloads on the control planes {schedule!r}: answer yes or no")
        cluster["allowSchedulingOnControlPlanes"] = answer == "yes"
    vip = asker.ask("Control-plane VIP", args.vip, proposals.vip)
    pool = asker.ask("MetalLB address pool (first-last)", args.pool, proposals.pool)
    traefik_ip = asker.ask("Traefik IP (inside the pool)", args.traefik_ip, proposals.traefik_ip)
    stun_ip = asker.ask("STUN IP (inside the pool)", args.stun_ip, proposals.stun_ip)
    return {
        "domain": domain,
        "lifecycle": {"environment": environment},
        "cluster": {**cluster, "vip": vip, "nodes": nodes},
        "network": {
            "lanCidr": lan_text,
            "gateway": gateway,
            "addressPools": [{"name": "lan", "addresses": [pool]}],
            "traefikIp": traefik_ip,
        },
        "tls": {"acmeEmail": email, "dns01": {"provider": "cloudflare"}},
        "remoteAccess": {
            "headscaleHost": "headscale",
            "magicDnsBaseDomain": f"ts.{domain}",
            "derp": {"enabled": True, "stunPort": 3478, "stunIp": stun_ip},
        },
        "apps": [
            # The worked example: https://grafana.<domain>, over the VPN only.
            {
                "name": "grafana",
                "namespace": "monitoring",
                "visibility": "private",
                "workload": "grafana",
            }
        ],
    }


def validate(raw: Mapping[str, Any], *, stack: str, root: Path) -> None:
    """The program's own validation, and for a lab the collision check with the homelab."""
    try:
        model = validate_config({**raw, "dnsApiToken": _VALIDATION_TOKEN})
    except ConfigError as error:
        raise ConfigError([p for p in error.problems if p.key != f"{NS}:dnsApiToken"]) from None
    homelab_file = root / "Pulumi.homelab.yaml"
    if model.lifecycle.is_lab and stack != "homelab" and homelab_file.exists():
        problems: list[Problem] = check_against_file(model, homelab_file, "the homelab")
        if problems:
            raise ConfigError(problems)


def header(stack: str) -> str:
    return "\n".join(
        [
            f"# yaml-language-server: $schema={SCHEMA_PATH}",
            f"# Stack {stack!r}, written by `python -m homelab init`; edit freely (every key is",
            '# documented in README.md, "Config reference", and checked by the schema above).',
            "# Committed on purpose, with secrets only as `secure:` values that Pulumi encrypted",
            "# with your passphrase (the `encryptionsalt` below is a salt, not a key): CI needs",
            "# them to preview and deploy. Set them with the project's backend:",
            f"#   ./scripts/pulumi config set --secret homelab:dnsApiToken <token> --stack {stack}",
            "",
        ]
    )


def stack_document(raw: Mapping[str, Any], existing: Mapping[str, Any]) -> dict[str, Any]:
    """The stack file: encryption settings and encrypted values of `existing`, then `raw`."""
    document: dict[str, Any] = {k: existing[k] for k in ENCRYPTION_KEYS if k in existing}
    config: dict[str, Any] = {f"{NS}:{key}": value for key, value in raw.items()}
    for key, value in (existing.get("config") or {}).items():
        if isinstance(value, Mapping) and set(value) == {"secure"} and key not in config:
            config[key] = dict(value)
    document["config"] = config
    return document


def _existing(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return document if isinstance(document, dict) else {}


def _port_forward_lines(stack: str, path: Path) -> list[str]:
    """The router port forwards the program exports for this stack (offline render)."""
    config, secret_keys = engine.stack_config(stack, path=path)
    try:
        result = engine.render(stack, config=config, secret_keys=secret_keys)
    except engine.RenderError:
        return [f"     run `uv run python -m homelab render --stack {stack}` (SUMMARY.md) for them"]
    lines = []
    for forward in result.outputs.get("routerPortForwards") or []:
        lines.append(
            f"     WAN {forward['externalPort']}/{forward['protocol']} -> "
            f"{forward['internalIp']}:{forward['internalPort']}  ({forward['purpose']})"
        )
    record = result.outputs.get("publicDnsRecord") or {}
    if record:
        lines.append(
            f"     DNS: {record.get('type')} {record.get('name')} -> your public IP, not proxied"
        )
    return lines


def next_steps(stack: str, path: Path, raw: Mapping[str, Any]) -> list[str]:
    nodes = raw["cluster"]["nodes"]
    iso = TALOS_ISO_URL.format(version=pins.TALOS_VERSION)
    return [
        f"Wrote {path.name} (validated). Next:",
        "  1. Secrets (encrypted into the stack file with your passphrase):",
        f"     ./scripts/pulumi config set --secret homelab:dnsApiToken <cloudflare-token> --stack {stack}",
        "     openssl rand -hex 16 | ./scripts/pulumi config set --secret "
        f"homelab:headplaneCookieSecret --stack {stack}   # optional",
        f"  2. Boot each node from the Talos {pins.TALOS_VERSION} ISO ({iso}) and give it its",
        "     address (DHCP reservation on the router):",
        *(f"     {n['hostname']}  {n['ip']}  {n['role']}  {n['installDisk']}" for n in nodes),
        "  3. On the router, forward:",
        *_port_forward_lines(stack, path),
        f"  4. ./scripts/up {stack}",
    ]


def run(
    args: argparse.Namespace,
    *,
    root: Path = engine.PROJECT_ROOT,
    stdin: TextIO,
    out: TextIO,
    lan_probe: Callable[[], Lan | None] = detect_lan,
) -> int:
    stack: str = args.stack
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", stack):
        raise InitError(f"stack name {stack!r}: use lowercase letters, digits and '-'")
    path = root / f"Pulumi.{stack}.yaml"
    if path.exists() and not args.force:
        raise InitError(
            f"{path.name} exists; pass --force to replace it (its encrypted secrets are kept)"
        )
    asker = Asker(not args.non_interactive, stdin, out)
    raw = gather(args, asker, lan_probe)
    validate(raw, stack=stack, root=root)
    document = stack_document(raw, _existing(path))
    text = header(stack) + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
    for line in next_steps(stack, path, raw):
        print(line, file=out)
    return 0
