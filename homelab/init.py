"""`python -m homelab init [--stack NAME]`: write a validated Pulumi.<stack>.yaml for your own LAN.

Every value can be given as a flag (for scripts); whatever is not given is asked on the terminal
with a proposal, or, with `--non-interactive`, the proposal is taken as is. A proposal follows what
is known by then: the LAN typed (else the workstation's, from its default route), the MetalLB pool
typed (Traefik and STUN take its first free addresses), the addresses the other stack files take
(never proposed again), and for a lab the homelab's domain, e-mail and LAN, in a layout of its own.

The result is validated by the same model and rules as the program (`config.loader.validate_config`:
one line per problem) and a lab is checked against the homelab's stack file (config/lab_guard.py).
Nothing is written until it validates. Interactively, a problem asks again only the questions whose
answers it names; every other answer is kept. Then the next steps are printed: create the stack and
set its secrets, the Talos ISO and the router's port forwards (from an offline render of the new
stack, so exactly what the program exports), the golden render, and `./scripts/up`.

A fresh clone holds the project's example stack files (the author's domain and LAN): `init`
replaces such a file without `--force` (interactively it asks first). A stack file is an example
when `init` did not write it and Pulumi never used it: no `encryptionsalt`, `secretsprovider` or
`encryptedkey` (what Pulumi writes into the file when it creates the stack:
pulumi/pulumi@v3.272.0:pkg/secrets/passphrase/manager.go `NewPromptingPassphraseSecretsManager`)
and no `secure:` value. Any other existing file is replaced only with `--force`; its encryption
settings and encrypted values are kept, so secrets already set survive a re-run.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import yaml

from config import pins
from config.lab_guard import address_claims, check_against_file, load_stack_file
from config.loader import ConfigError, validate_config
from config.model import HomelabConfig, parse_address_range
from config.rules import NS, Problem
from homelab import engine
from homelab.init_prompts import HOMELAB_LAYOUT, LAB_LAYOUT, AddressRange, Asker, Proposals

# The CLI names these as init's.
from homelab.init_prompts import InitError as InitError
from homelab.init_prompts import Lan as Lan
from homelab.init_prompts import detect_lan as detect_lan

SCHEMA_PATH: Final = "schema/stack.schema.json"
# Pulumi's own stack-file keys that carry the encryption of the stack's secrets.
ENCRYPTION_KEYS: Final = ("secretsprovider", "encryptedkey", "encryptionsalt")
# In the header of every file `init` writes: such a file is the user's, never an example.
WRITTEN_BY: Final = "written by `python -m homelab init`"
# Validation needs the required secret; it is never written (secrets go through the CLI).
_VALIDATION_TOKEN: Final = "init-placeholder-token"
FALLBACK_LAN: Final = ipaddress.IPv4Network("192.168.1.0/24")
ROLES: Final = ("controlplane", "worker")
# The plain release ISO, named only when the offline render cannot give the stack's own.
TALOS_ISO_URL: Final = (
    # The release asset list: siderolabs/talos@v1.13.9:.github/workflows/ci.yaml (release job).
    "https://github.com/siderolabs/talos/releases/download/{version}/metal-amd64.iso"
)
# Question ids that are not config paths.
NODE_COUNT: Final = "cluster.nodes"
POOL: Final = "network.addressPools[0].addresses[0]"


@dataclass(frozen=True)
class NodeSpec:
    hostname: str
    ip: str
    role: str = "controlplane"
    install_disk: str = "/dev/sda"


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
    parser.add_argument("--traefik-ip", help="Traefik's LoadBalancer IP (default: in the pool)")
    parser.add_argument("--stun-ip", help="STUN's LoadBalancer IP (default: in the pool)")
    parser.add_argument(
        "--non-interactive", action="store_true", help="ask nothing: take every proposal"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing stack file that is not the project's example",
    )


# --- gathering the answers -------------------------------------------------------------------


def _is_network(text: str) -> str | None:
    try:
        ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return "not an IPv4 network; e.g. 192.168.1.0/24"
    return None


def _is_range(text: str) -> str | None:
    try:
        parse_address_range(text)
    except ValueError as error:
        return str(error)
    return None


def _is_count(text: str) -> str | None:
    return None if text.isdigit() and int(text) >= 1 else "give a whole number, 1 or more"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if text.strip().lower() in choices else f"answer {' or '.join(choices)}"

    return check


@dataclass(frozen=True)
class Neighbours:
    """What the other stack files say: the homelab's config (for a lab's proposals) and every
    address the other stacks take."""

    homelab: HomelabConfig | None
    taken: list[AddressRange]


def neighbours(root: Path, stack: str) -> Neighbours:
    homelab: HomelabConfig | None = None
    taken: list[AddressRange] = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        if path.name in (f"Pulumi.{stack}.yaml", "Pulumi.yaml") or is_example(path):
            continue  # the project's examples are nobody's addresses
        config = load_stack_file(path)
        if isinstance(config, Problem):
            continue  # its own validation reports it
        taken.extend((claim.first, claim.last) for claim in address_claims(config))
        if path.name == "Pulumi.homelab.yaml":
            homelab = config
    return Neighbours(homelab, taken)


def _nodes(
    args: argparse.Namespace, asker: Asker, proposals: Proposals, stack: str
) -> list[dict[str, str]]:
    specs = [parse_node(text) for text in args.node or []]
    if not specs:
        given = None if args.nodes is None else str(args.nodes)
        count = asker.ask(NODE_COUNT, "How many nodes", given, "1", _is_count)
        for index in range(int(count)):
            number, key = index + 1, f"cluster.nodes[{index}]"
            hostname = asker.ask(
                f"{key}.hostname", f"Node {number} hostname", None, f"{stack}-cp-{number}"
            )
            ip = asker.ask(f"{key}.ip", f"Node {number} IP", None, proposals.node_ip)
            proposals.take(ip)
            role = asker.ask(
                f"{key}.role",
                f"Node {number} role ({'/'.join(ROLES)})",
                None,
                "controlplane",
                _one_of(*ROLES),
            )
            disk = asker.ask(f"{key}.installDisk", f"Node {number} install disk", None, "/dev/sda")
            specs.append(NodeSpec(hostname, ip, role.strip().lower(), disk))
    proposals.take(*(spec.ip for spec in specs))
    return [
        {"hostname": s.hostname, "ip": s.ip, "role": s.role, "installDisk": s.install_disk}
        for s in specs
    ]


def gather(
    args: argparse.Namespace,
    asker: Asker,
    lan_probe: Callable[[], Lan | None],
    around: Neighbours | None = None,
) -> dict[str, Any]:
    """The stack's `homelab:*` config (keys without the namespace) from flags, answers, proposals."""
    stack: str = args.stack
    around = around or Neighbours(None, [])
    is_homelab_stack = stack == "homelab"
    default_environment = "homelab" if is_homelab_stack else "lab"
    # A lab's proposals start from the homelab's domain, e-mail and LAN.
    home = around.homelab if (args.environment or default_environment) == "lab" else None
    domain = asker.ask(
        "domain",
        "Domain (services live at <host>.<domain>)",
        args.domain,
        f"{stack}.{home.domain}" if home else None,
    )
    email = asker.ask(
        "tls.acmeEmail",
        "Let's Encrypt e-mail",
        args.email,
        home.tls.acme_email if home else f"admin@{domain}",
    )
    environment = asker.ask(
        "lifecycle.environment",
        "Environment (homelab/lab)",
        args.environment,
        default_environment,
        _one_of("homelab", "lab"),
    ).lower()
    cluster_name = asker.ask("cluster.name", "Cluster name", args.cluster_name, stack)
    detected = lan_probe() if args.lan_cidr is None and home is None else None
    if home is not None:
        detected = Lan(home.network.lan_cidr, home.network.gateway)
    lan_text = asker.ask(
        "network.lanCidr",
        "LAN CIDR",
        args.lan_cidr,
        str(detected.network if detected else FALLBACK_LAN),
        _is_network,
    )
    network = ipaddress.IPv4Network(lan_text, strict=False)
    gateway_guess = detected.gateway if detected and detected.network == network else None
    layout = LAB_LAYOUT if environment == "lab" else HOMELAB_LAYOUT
    gateway = asker.ask(
        "network.gateway",
        "Gateway (router)",
        args.gateway,
        str(gateway_guess or network.network_address + 1),
    )
    proposals = Proposals(
        Lan(network, _address_or_none(gateway) or gateway_guess), layout, list(around.taken)
    )
    nodes = _nodes(args, asker, proposals, stack)
    cluster: dict[str, Any] = {"name": cluster_name}
    if any(node["role"] == "worker" for node in nodes):
        # With workers the choice is explicit (config/rules.py control_plane_scheduling_is_explicit).
        schedule = asker.ask(
            "cluster.allowSchedulingOnControlPlanes",
            "Run workloads on the control planes too (yes/no)",
            args.schedule_on_control_planes,
            "no",
            _one_of("yes", "no"),
        )
        cluster["allowSchedulingOnControlPlanes"] = schedule.strip().lower() == "yes"
    vip = asker.ask("cluster.vip", "Control-plane VIP", args.vip, proposals.vip)
    proposals.take(vip)
    pool = asker.ask(
        POOL, "MetalLB address pool (first-last)", args.pool, proposals.pool, _is_range
    )
    traefik_ip = asker.ask(
        "network.traefikIp",
        "Traefik IP (inside the pool)",
        args.traefik_ip,
        lambda: proposals.in_pool(pool),
    )
    proposals.take(traefik_ip)
    stun_ip = asker.ask(
        "remoteAccess.derp.stunIp",
        "STUN IP (inside the pool)",
        args.stun_ip,
        lambda: proposals.in_pool(pool),
    )
    tls: dict[str, Any] = {"acmeEmail": email, "dns01": {"provider": "cloudflare"}}
    if home is not None and domain.endswith(f".{home.domain}"):
        # The lab's DNS-01 records go into the homelab's zone (a subdomain has no zone of its own
        # unless delegated): the homelab's own zone setting, else its domain.
        tls["dns01"]["zone"] = home.tls.dns01.zone or home.domain
    return {
        "domain": domain,
        "lifecycle": {"environment": environment},
        "cluster": {**cluster, "vip": vip, "nodes": nodes},
        "network": {
            "lanCidr": lan_text,
            "gateway": gateway,
            "addressPools": [{"name": "lan" if is_homelab_stack else stack, "addresses": [pool]}],
            "traefikIp": traefik_ip,
        },
        "tls": tls,
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


def _address_or_none(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


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


# --- the stack file --------------------------------------------------------------------------


def header(stack: str) -> str:
    return "\n".join(
        [
            f"# yaml-language-server: $schema={SCHEMA_PATH}",
            f"# Stack {stack!r}, {WRITTEN_BY}; edit freely (every key is",
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


def is_example(path: Path) -> bool:
    """A stack file `init` may replace without --force: not written by `init`, and never used
    by Pulumi (no encryption settings, no `secure:` value)."""
    try:
        text = path.read_text()
    except OSError:
        return False
    if WRITTEN_BY in text:
        return False
    document = _existing(path)
    if not document or any(key in document for key in ENCRYPTION_KEYS):
        return False
    config = document.get("config") or {}
    return isinstance(config, dict) and not any(
        isinstance(value, dict) and set(value) == {"secure"} for value in config.values()
    )


def _may_replace(path: Path, args: argparse.Namespace, asker: Asker) -> None:
    """Refuses (InitError) to replace a stack file that is the user's, unless --force."""
    if not path.exists() or args.force:
        return
    if not is_example(path):
        raise InitError(
            f"{path.name} exists and is yours (written by init, or used by Pulumi); pass --force "
            "to replace it (its encrypted secrets are kept)"
        )
    domain = (_existing(path).get("config") or {}).get(f"{NS}:domain")
    if not asker.confirm(
        f"{path.name} holds the project's example values (domain {domain!r}); replace it", True
    ):
        raise InitError(f"kept {path.name}; nothing written")
    print(f"Replacing the example {path.name} (domain {domain!r}) with yours.", file=asker.out)


# --- what to do next -------------------------------------------------------------------------


def _offline_outputs(stack: str, path: Path) -> Mapping[str, Any] | None:
    """The stack outputs of an offline render of the new file, or None if it does not render."""
    config, secret_keys = engine.stack_config(stack, path=path)
    try:
        return engine.render(stack, config=config, secret_keys=secret_keys).outputs
    except engine.RenderError:
        return None


def _port_forward_lines(stack: str, outputs: Mapping[str, Any] | None) -> list[str]:
    """The router port forwards the program exports for this stack."""
    if outputs is None:
        return [f"run `./scripts/homelab render --stack {stack}` (SUMMARY.md) for them"]
    lines = []
    for forward in outputs.get("routerPortForwards") or []:
        lines.append(
            f"WAN {forward['externalPort']}/{forward['protocol']} -> "
            f"{forward['internalIp']}:{forward['internalPort']}  ({forward['purpose']})"
        )
    record = outputs.get("publicDnsRecord") or {}
    if record:
        lines.append(
            f"DNS: {record.get('type')} {record.get('name')} -> your public IP, not proxied"
        )
    return lines


def next_steps(stack: str, path: Path, raw: Mapping[str, Any]) -> list[str]:
    nodes = raw["cluster"]["nodes"]
    outputs = _offline_outputs(stack, path)
    iso = (outputs or {}).get("talosBootIsoUrl") or TALOS_ISO_URL.format(version=pins.TALOS_VERSION)
    steps = [
        [
            "Create the stack and set its secrets (encrypted into the stack file with your",
            'passphrase; keep the passphrase safe: README.md, "What to keep safe"):',
            f"./scripts/pulumi stack select --create {stack} --secrets-provider passphrase",
            f"./scripts/pulumi config set --secret homelab:dnsApiToken <cloudflare-token> --stack {stack}",
            "openssl rand -hex 16 | ./scripts/pulumi config set --secret "
            f"homelab:headplaneCookieSecret --stack {stack}   # optional",
        ],
        [
            f"Boot each node from this stack's Talos {pins.TALOS_VERSION} ISO (its Image Factory",
            f"schematic): {iso}",
            "and give it its address (a DHCP reservation on the router):",
            *(f"{n['hostname']}  {n['ip']}  {n['role']}  {n['installDisk']}" for n in nodes),
        ],
        ["On the router, forward:", *_port_forward_lines(stack, outputs)],
    ]
    if stack == "homelab":
        steps.append(
            [
                "Regenerate the golden render, so the tests follow your stack file:",
                "./scripts/homelab render --update-golden",
            ]
        )
    steps.append([f"./scripts/up {stack}"])
    lines = [f"Wrote {path.name} (validated). Next:"]
    for number, (first, *rest) in enumerate(steps, start=1):
        lines.append(f"  {number}. {first}")
        lines.extend(f"     {line.strip()}" for line in rest)
    return lines


# --- the command -----------------------------------------------------------------------------


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
    asker = Asker(not args.non_interactive, stdin, out)
    _may_replace(path, args, asker)
    around = neighbours(root, stack)
    while True:
        raw = gather(args, asker, lan_probe, around)
        try:
            validate(raw, stack=stack, root=root)
            break
        except ConfigError as error:
            if not asker.interactive or asker.forget(p.key for p in error.problems):
                raise  # nothing to ask (or a problem no answer can fix): one line per problem
            print(error.render(), file=out)
            print("Asking again for those; every other answer is kept.", file=out)
    document = stack_document(raw, _existing(path))
    text = header(stack) + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
    for line in next_steps(stack, path, raw):
        print(line, file=out)
    return 0
