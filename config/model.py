"""The one validated model of a stack's configuration.

Each top-level field is one Pulumi config key in the `homelab:` namespace (camelCase in YAML, the
alias of the snake_case field). Field validation lives here; rules that relate several fields live in
`config/rules.py` so every broken rule is reported at once, one line each.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic.alias_generators import to_camel

from config import pins
from config.credentials import PlainRuns
from config.fields import (
    PATH_RUNS,
    AccessKeyId,
    AclTag,
    BucketName,
    BucketPrefix,
    CronSchedule,
    ExportPath,
    InstallDisk,
    InterfaceName,
    LocalPathRoot,
    Region,
    S3Endpoint,
    ServerAddress,
    vpn_nameserver,
)
from config.names import acme_email_problem, public_domain_problem
from config.namespaces import HEADSCALE_NAMESPACE, KUBERNETES_NAMESPACES, OWNED_NAMESPACES
from config.policy import AclPolicy

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TALOS_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
_KUBERNETES_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# Six octets, two hex digits each, ':' or '-' between them (as `ip link` or a BIOS shows them).
_MAC_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
# An official Talos system extension as the Image Factory names it: `<organisation>/<name>`, e.g.
# `siderolabs/intel-ucode` (siderolabs/extensions: each extension's manifest.yaml `name`, listed
# under the organisation that publishes it).
_SYSTEM_EXTENSION = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?/[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
# One kernel argument: `flag` or `key=value`, no whitespace or quotes (the factory passes each list
# item as one argument; a space would split it into two on the kernel command line).
# It starts with a letter, and is none of YAML's boolean or null words, so the schematic writes it
# as a plain scalar (components/cluster/image_factory.py `schematic_yaml`).
_KERNEL_ARG = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*(=[A-Za-z0-9_.,:/=+@%-]*)?$")
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            "must be a DNS label: 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
        )
    return value


def _dns_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_DNS_LABEL.fullmatch(x) for x in labels):
        raise ValueError(
            "must be a lowercase DNS name with at least two labels, e.g. 'example.com'"
        )
    if labels[-1].isdigit():
        # An all-numeric top-level label makes it an address, not a name (RFC 3696 section 2):
        # no certificate, Headscale server_url or MagicDNS domain can be served for an IP this way.
        raise ValueError("must be a domain name, not an IP address; e.g. 'example.com'")
    return value


def _public_domain(value: str) -> str:
    """A domain a public ACME CA issues for (config/names.py `public_domain_problem`)."""
    if (why := public_domain_problem(value)) is not None:
        raise ValueError(why)
    return value


def _email(value: str) -> str:
    """An account contact Let's Encrypt accepts (config/names.py `acme_email_problem`)."""
    if (why := acme_email_problem(value)) is not None:
        raise ValueError(f"{why}; e.g. 'admin@' followed by your own domain")
    return value


def _secret_text(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    # Never echo a secret: say what is wrong with it, not what it is.
    if text and not text.strip():
        raise ValueError("is blank (only whitespace); set the real value")
    if text != text.strip():
        raise ValueError(
            "starts or ends with whitespace (a pasted newline?), which the service would not "
            "accept; set it again without it"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        # No token, key or secret has whitespace or a control character inside: it is a paste
        # gone wrong, and a newline would become a line of its own in a generated config file
        # (an rclone or Litestream setting of its own choosing).
        raise ValueError(
            "has whitespace, a line break or a control character inside it (a pasted "
            "line break?), which no token or key has; set it again as one line"
        )
    return value


def _app_namespace(value: str) -> str:
    """An app's namespace is created, and deleted on destroy, by the stack (components/apps/exposed.py),
    so it must be the app's own: not one Kubernetes keeps, nor any the stack owns
    (config/namespaces.py `OWNED_NAMESPACES`: two Namespace resources of one name, and deleting
    either empties the other)."""
    if value in KUBERNETES_NAMESPACES:
        raise ValueError(
            "is a namespace Kubernetes itself keeps; the stack creates and deletes its apps' "
            "namespaces, so give the app its own, e.g. the app's name"
        )
    if value in OWNED_NAMESPACES:
        raise ValueError(
            f"is the namespace of {OWNED_NAMESPACES[value]}, which the stack creates and "
            "deletes; give the app a namespace of its own, e.g. the app's name"
        )
    return value


def _talos_version(value: str) -> str:
    if not _TALOS_VERSION.fullmatch(value):
        raise ValueError("must look like 'v1.13.9'")
    return value


def _kubernetes_version(value: str) -> str:
    if not _KUBERNETES_VERSION.fullmatch(value):
        raise ValueError("must look like '1.36.3' (no leading 'v')")
    return value


def _mac_address(value: str) -> str:
    """The MAC as Talos' CEL `mac()` prints it: lowercase, ':' between octets.

    `mac(link.permanent_addr)` is Go's `net.HardwareAddr.String()` (siderolabs/talos@v1.13.9:
    pkg/machinery/cel/celenv/celenv.go `LinkLocator`), so a selector compares equal to that
    spelling only; the user's spelling is normalised to it here, once.
    """
    if not _MAC_ADDRESS.fullmatch(value):
        raise ValueError(
            "must be a MAC address of six hex octets separated by ':' or '-', "
            "e.g. '00:1a:2b:3c:4d:5e'"
        )
    return value.lower().replace("-", ":")


def _system_extension(value: str) -> str:
    if not _SYSTEM_EXTENSION.fullmatch(value):
        raise ValueError(
            "must name an official system extension as `<organisation>/<name>` in lowercase, "
            "e.g. 'siderolabs/intel-ucode', 'siderolabs/iscsi-tools' or "
            "'siderolabs/qemu-guest-agent' (the list: https://github.com/siderolabs/extensions)"
        )
    return value


def _kernel_arg(value: str) -> str:
    if not _KERNEL_ARG.fullmatch(value) or value.lower() in _YAML_WORDS:
        raise ValueError(
            "must be one kernel argument, `flag` or `key=value`, without spaces or quotes, "
            "e.g. 'net.ifnames=0' or 'mitigations=off'"
        )
    return value


def _nameserver_with_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError("must be 'IPv4:port', e.g. '1.1.1.1:53'") from None
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be 'IPv4:port', e.g. '1.1.1.1:53'")
    _servable_nameserver(address)
    return value


def _servable_nameserver(address: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """A nameserver another machine can ask: loopback would be each asker itself (a pod, a node,
    a VPN client), and unspecified, multicast, broadcast or reserved addresses answer nobody."""
    if address.is_loopback:
        raise ValueError(
            "must be a nameserver other machines can reach, not a loopback address (each "
            "client would ask itself); e.g. '1.1.1.1'"
        )
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        raise ValueError(
            "must be a nameserver's unicast address, not an unspecified, multicast, broadcast "
            "or reserved one; e.g. '1.1.1.1'"
        )
    return address


def _address_range(value: str) -> str:
    parse_address_range(value)
    return value


def parse_address_range(value: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """A MetalLB address entry: 'a.b.c.d-e.f.g.h' or a CIDR. Returns (first, last)."""
    try:
        if "-" in value:
            first_text, last_text = value.split("-", 1)
            first = ipaddress.IPv4Address(first_text.strip())
            last = ipaddress.IPv4Address(last_text.strip())
        else:
            network = ipaddress.IPv4Network(value, strict=True)
            first, last = network.network_address, network.broadcast_address
    except ValueError:
        raise ValueError(
            "must be an IPv4 range 'first-last' (e.g. '192.168.0.220-192.168.0.239') or a CIDR"
        ) from None
    if first > last:
        raise ValueError("range start must not be after its end")
    return first, last


def _address_text(value: object) -> object:
    # Pydantic reads an integer (or a YAML boolean such as `vip: yes`) as an address, so
    # `true` would become 0.0.0.1 and the error would show a value the user never wrote.
    if isinstance(value, int):
        raise ValueError("must be an IPv4 address written as text, e.g. '192.168.0.10'")
    return value


def _network_text(value: object) -> object:
    if isinstance(value, int):
        raise ValueError("must be an IPv4 network written as text, e.g. '192.168.0.0/24'")
    return value


IPAddress = Annotated[ipaddress.IPv4Address, BeforeValidator(_address_text)]
NameserverAddress = Annotated[IPAddress, AfterValidator(_servable_nameserver)]
VpnNameserverAddress = Annotated[NameserverAddress, AfterValidator(vpn_nameserver)]
IPNetwork = Annotated[ipaddress.IPv4Network, BeforeValidator(_network_text)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
PublicDomain = Annotated[str, AfterValidator(_dns_name), AfterValidator(_public_domain)]
Email = Annotated[str, AfterValidator(_email)]
TalosVersion = Annotated[str, AfterValidator(_talos_version)]
KubernetesVersion = Annotated[str, AfterValidator(_kubernetes_version)]
NameserverWithPort = Annotated[str, AfterValidator(_nameserver_with_port)]
MacAddress = Annotated[str, AfterValidator(_mac_address)]
SystemExtension = Annotated[str, AfterValidator(_system_extension), PATH_RUNS]
# `key=value` words: lowercase names joined by '_', '=' and '/'.
KernelArg = Annotated[str, AfterValidator(_kernel_arg), PlainRuns("a-z0-9_/=-")]
AddressRange = Annotated[str, AfterValidator(_address_range)]
Secret = Annotated[SecretStr, AfterValidator(_secret_text)]
AppNamespace = Annotated[str, AfterValidator(_dns_label), AfterValidator(_app_namespace)]


class StrictModel(BaseModel):
    """Unknown keys are errors; keys are camelCase in YAML (snake_case names also accepted)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


# --- lifecycle -------------------------------------------------------------------------------


class Lifecycle(StrictModel):
    """How precious this stack is: the real homelab, or a lab that is created and destroyed freely."""

    environment: Literal["homelab", "lab"] = Field(
        description="'homelab' for the real one (protected), 'lab' for throw-away stacks. Only the "
        "`homelab` stack may say 'homelab', and it may not say 'lab'."
    )
    protect: bool | None = Field(
        default=None,
        description="Protect stateful resources (Talos machine secrets, Headscale state). "
        "Default: on for 'homelab', off for 'lab'.",
    )
    reset_nodes_on_destroy: bool | None = Field(
        default=None,
        description="Wipe Talos nodes when the stack is destroyed. Default: on for 'lab', off for "
        "'homelab' (where it is refused).",
    )
    reset_removed_nodes: bool | None = Field(
        default=None,
        description="Wipe a node taken out of `cluster.nodes` (after it is drained and has left "
        "etcd) instead of shutting it down with its disk intact. Default: on for 'lab' (its "
        "nodes are reset on destroy anyway), off for 'homelab'.",
    )

    @property
    def is_lab(self) -> bool:
        return self.environment == "lab"

    @property
    def protect_stateful(self) -> bool:
        return self.protect if self.protect is not None else not self.is_lab

    @property
    def reset_on_destroy(self) -> bool:
        if self.reset_nodes_on_destroy is not None:
            return self.reset_nodes_on_destroy
        return self.is_lab

    @property
    def reset_removed(self) -> bool:
        if self.reset_removed_nodes is not None:
            return self.reset_removed_nodes
        return self.reset_on_destroy


# --- cluster ---------------------------------------------------------------------------------


class Node(StrictModel):
    """One Talos machine, booted from the Talos ISO and reachable at `ip`."""

    hostname: DnsLabel = Field(description="Node hostname (a DNS label).")
    ip: IPAddress = Field(description="Static LAN address of the node.")
    role: Literal["controlplane", "worker"] = Field(description="Talos machine type.")
    # Stable links such as /dev/disk/by-id/nvme-eui.0025… or /dev/disk/by-path/pci-0000:00:17.0-ata-1
    # carry '.' and ':'; Talos accepts them for machine.install.disk (siderolabs/talos #8845).
    install_disk: InstallDisk = Field(
        default="/dev/sda",
        description="Whole disk Talos installs to (not a partition), e.g. /dev/sda, /dev/nvme0n1 or "
        "a /dev/disk/by-id/… link.",
    )
    interface: InterfaceName | None = Field(
        default=None,
        description="Link name for the static address and VIP; default: the physical NIC. "
        "Not together with `mac`.",
    )
    mac: MacAddress | None = Field(
        default=None,
        description="Permanent MAC of the NIC on the LAN, for a node with several NICs (Talos "
        "skips the default alias when more than one physical link matches it); "
        "`talosctl get links --insecure -n <ip>` shows it. Not together with `interface`.",
    )
    current_address: IPAddress | None = Field(
        default=None,
        description="Only while moving the node to a new `ip`: the address it answers on now. "
        "The Talos API is reached there for this `up`, which configures the new `ip`; remove "
        "the key in the next `up` (docs/operations.md, re-address).",
    )

    @property
    def talos_address(self) -> str:
        """Where the node's Talos API answers during this `up`."""
        return str(self.current_address or self.ip)


class ImageFactory(StrictModel):
    """The Image Factory schematic the nodes boot and install: extensions and kernel arguments."""

    system_extensions: list[SystemExtension] = Field(
        default_factory=list,
        description="Official system extensions baked into the boot media and the installer, "
        "e.g. 'siderolabs/intel-ucode', 'siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent'. "
        "Empty (with no kernel arguments): the vanilla installer and ISO.",
    )
    extra_kernel_args: list[KernelArg] = Field(
        default_factory=list,
        description="Extra kernel arguments of the boot media and the installer, e.g. "
        "'net.ifnames=0'.",
    )

    @property
    def is_vanilla(self) -> bool:
        return not self.system_extensions and not self.extra_kernel_args


# The contract every stack had until it became its own value: the Talos pin then, on Secrets and
# on the configuration data source. Frozen (not a Renovate pin), so a Talos bump never moves it.
INITIAL_TALOS_CONFIG_CONTRACT: Final = "v1.13.9"


class Cluster(StrictModel):
    """The Talos cluster."""

    name: DnsLabel = Field(description="Cluster name (a DNS label).")
    talos_version: TalosVersion = Field(
        default=pins.TALOS_VERSION,
        description="Talos version installed; a v1.13.x, whose features the machine config uses "
        "(config/rules.py `talos_version_supported`). A new one upgrades the nodes one at a time "
        "(docs/operations.md, Upgrades).",
    )
    talos_config_contract: TalosVersion | None = Field(
        default=None,
        description="Machine-config contract (Talos `vX.Y.Z`, only X.Y counts): what the generated "
        "configs and secrets may use. Moved only on purpose, never by a Talos upgrade; at most the "
        "installed minor, at least v1.12. Default: v1.13.9, the contract every stack was created "
        "with (docs/operations.md, Upgrades).",
    )
    kubernetes_version: KubernetesVersion = Field(
        default=pins.KUBERNETES_VERSION,
        description="Kubernetes version Talos runs; one that Talos version supports "
        "(config/rules.py TALOS_KUBERNETES_SUPPORT).",
    )
    vip: IPAddress | None = Field(
        default=None,
        description="Shared control-plane VIP; the API endpoint becomes https://<vip>:6443.",
    )
    allow_scheduling_on_control_planes: bool | None = Field(
        default=None,
        description="Run workloads on control planes. Default: on when there are no workers; "
        "required once there are workers (false taints the control planes, restores Talos' "
        "exclude-from-external-load-balancers label so MetalLB announces from workers only, and "
        "leaves pods with local volumes on control planes Pending).",
    )
    wait_for_health: bool = Field(
        default=True,
        description="Wait for Talos to report the cluster healthy before installing charts.",
    )
    image_factory: ImageFactory = Field(
        default_factory=ImageFactory,
        description="Image Factory schematic: system extensions and kernel arguments of the "
        "boot media and the installer.",
    )
    nodes: list[Node] = Field(min_length=1, description="Every machine of the cluster.")

    @property
    def config_contract(self) -> str:
        """The contract Secrets and the generated configs carry (`talos_version` of both)."""
        return self.talos_config_contract or INITIAL_TALOS_CONFIG_CONTRACT

    @property
    def control_planes(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "controlplane"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    @property
    def endpoint_host(self) -> str:
        """The Kubernetes API host: the VIP, else the first control plane."""
        if self.vip is not None:
            return str(self.vip)
        return str(self.control_planes[0].ip) if self.control_planes else str(self.nodes[0].ip)

    @property
    def endpoint(self) -> str:
        return f"https://{self.endpoint_host}:6443"

    @property
    def schedule_on_control_planes(self) -> bool:
        if self.allow_scheduling_on_control_planes is not None:
            return self.allow_scheduling_on_control_planes
        return not self.workers


# --- network ---------------------------------------------------------------------------------


class AddressPool(StrictModel):
    """A MetalLB IPAddressPool."""

    name: DnsLabel = Field(description="Pool name.")
    addresses: list[AddressRange] = Field(
        min_length=1, description="Ranges 'first-last' or CIDRs handed to LoadBalancer Services."
    )

    def ranges(self) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
        return [parse_address_range(a) for a in self.addresses]

    def contains(self, ip: ipaddress.IPv4Address) -> bool:
        return any(first <= ip <= last for first, last in self.ranges())


class Network(StrictModel):
    """The home LAN and the LoadBalancer addresses MetalLB may hand out on it."""

    lan_cidr: IPNetwork = Field(description="The home LAN, e.g. 192.168.0.0/24.")
    gateway: IPAddress = Field(description="The LAN's default gateway (the router).")
    nameservers: list[NameserverAddress] = Field(
        default_factory=list, description="DNS servers for the nodes; default: the gateway."
    )
    address_pools: list[AddressPool] = Field(min_length=1, description="MetalLB pools (L2 mode).")
    traefik_ip: IPAddress = Field(
        description="The fixed LoadBalancer IP of Traefik; must be inside a pool."
    )

    @property
    def node_nameservers(self) -> list[ipaddress.IPv4Address]:
        return self.nameservers or [self.gateway]

    def pool_for(self, ip: ipaddress.IPv4Address) -> AddressPool | None:
        return next((p for p in self.address_pools if p.contains(ip)), None)


# --- TLS -------------------------------------------------------------------------------------


class CloudflareDns01(StrictModel):
    """ACME DNS-01 through Cloudflare; the API token is the `homelab:dnsApiToken` secret."""

    provider: Literal["cloudflare"] = Field(
        default="cloudflare", description="DNS provider that solves the DNS-01 challenge."
    )
    zone: PublicDomain | None = Field(
        default=None, description="Restrict the solver to this zone; default: the stack domain."
    )


def _default_dns01_provider(value: object) -> object:
    # A discriminated union needs its tag; while Cloudflare is the only provider, `provider` may be
    # omitted (it defaults to 'cloudflare' in the model, which the union alone would not honour).
    if isinstance(value, dict) and "provider" not in value:
        return {"provider": "cloudflare", **value}
    return value


# A discriminated union: another provider is one more model here plus its solver in the TLS component.
Dns01Provider = Annotated[
    CloudflareDns01, Field(discriminator="provider"), BeforeValidator(_default_dns01_provider)
]


class Tls(StrictModel):
    """The wildcard certificate for *.<domain>."""

    acme_email: Email = Field(description="Let's Encrypt account e-mail.")
    acme_environment: Literal["staging", "production"] | None = Field(
        default=None,
        description="Let's Encrypt endpoint. Default: production, labs included: Tailscale clients "
        "(the subnet router too) trust no staging certificate, so 'staging' only debugs DNS-01.",
    )
    dns01: Dns01Provider = Field(default_factory=CloudflareDns01, description="DNS-01 solver.")
    recursive_nameservers: list[NameserverWithPort] = Field(
        default_factory=lambda: ["1.1.1.1:53", "1.0.0.1:53"],
        min_length=1,
        description="Resolvers cert-manager uses for DNS-01 self-checks (avoids split-horizon DNS).",
    )


# Annotations cert-manager writes on the Secret it issues and reads back before reusing it
# (cert-manager @ v1.21.1 : pkg/controller/certificates/issuing/internal/secret.go setValues;
# internal/controller/certificates/policies/checks.go SecretIssuerAnnotationsMismatch,
# SecretCertificateNameAnnotationsMismatch).
CERTIFICATE_NAME_ANNOTATION = "cert-manager.io/certificate-name"
ISSUER_ANNOTATIONS = (
    "cert-manager.io/issuer-group",
    "cert-manager.io/issuer-kind",
    "cert-manager.io/issuer-name",
)
SAVED_CERTIFICATE_ANNOTATIONS = (CERTIFICATE_NAME_ANNOTATION, *ISSUER_ANNOTATIONS)
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (EC |RSA )?PRIVATE KEY-----")


@dataclass(frozen=True)
class SavedCertificate:
    """An issued certificate Secret kept across destroy/recreate: its data as stored (base64)."""

    tls_crt: str
    tls_key: str
    annotations: dict[str, str]

    def to_json(self) -> str:
        """The config value `lab destroy` stores: sorted, so the same Secret is the same text."""
        return json.dumps(
            {"annotations": self.annotations, "tls.crt": self.tls_crt, "tls.key": self.tls_key},
            sort_keys=True,
        )


def _decoded(value: object, what: str, marker: str | re.Pattern[str]) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be the base64 text of the Secret's data")
    try:
        text = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{what} must be the base64 text of the Secret's data") from None
    found = marker in text if isinstance(marker, str) else marker.search(text) is not None
    if not found:
        raise ValueError(f"{what} does not hold a PEM block of the expected kind")
    return value


def parse_saved_certificate(text: str) -> SavedCertificate:
    """The saved Secret, or a ValueError whose message never contains any part of it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("must be the JSON `lab destroy` writes") from None
    if not isinstance(document, dict) or set(document) != {"annotations", "tls.crt", "tls.key"}:
        raise ValueError("must be a JSON object with exactly 'annotations', 'tls.crt', 'tls.key'")
    annotations = document["annotations"]
    if not (
        isinstance(annotations, dict)
        and set(annotations) <= set(SAVED_CERTIFICATE_ANNOTATIONS)
        and all(isinstance(v, str) for v in annotations.values())
    ):
        raise ValueError(
            "'annotations' must map only "
            + ", ".join(SAVED_CERTIFICATE_ANNOTATIONS)
            + " to strings"
        )
    return SavedCertificate(
        tls_crt=_decoded(document["tls.crt"], "'tls.crt'", _PEM_CERTIFICATE),
        tls_key=_decoded(document["tls.key"], "'tls.key'", _PEM_PRIVATE_KEY),
        annotations=dict(sorted(annotations.items())),
    )


# --- remote access ---------------------------------------------------------------------------


class Derp(StrictModel):
    """Headscale's embedded DERP relay and its STUN listener."""

    enabled: bool = Field(default=True, description="Run the embedded DERP server.")
    stun_port: int = Field(default=3478, ge=1, le=65535, description="UDP port of STUN.")
    stun_ip: IPAddress | None = Field(
        default=None,
        description="LoadBalancer IP of the STUN Service; default: share Traefik's IP.",
    )
    public_derp_fallback: bool = Field(
        default=True, description="Keep Tailscale's public DERP map as a fallback."
    )
    region_id: int = Field(default=999, ge=900, le=999, description="DERP region id.")


class SubnetRouter(StrictModel):
    """The Tailscale pod that advertises the LAN to VPN clients."""

    hostname: DnsLabel = Field(default="k8s-router", description="Tailnet name of the router.")
    tag: AclTag = Field(
        default="tag:k8s-router",
        description="ACL tag the router's pre-auth key carries.",
    )
    routes: list[IPNetwork] = Field(
        default_factory=list, description="Routes to advertise; default: the LAN CIDR."
    )


class Headplane(StrictModel):
    """The Headplane web UI for Headscale."""

    enabled: bool = Field(default=True, description="Deploy the Headplane UI beside Headscale.")
    host: DnsLabel = Field(default="headplane", description="Host label: <host>.<domain>.")


class RemoteAccess(StrictModel):
    """Headscale, MagicDNS, DERP/STUN, the ACL policy and the subnet router."""

    headscale_host: DnsLabel = Field(
        default="headscale", description="Host label of Headscale: <host>.<domain> (public)."
    )
    magic_dns_base_domain: DnsName = Field(
        description="MagicDNS base domain; not the Headscale host nor a parent of it."
    )
    nameservers: list[VpnNameserverAddress] = Field(
        default_factory=lambda: [
            ipaddress.IPv4Address("1.1.1.1"),
            ipaddress.IPv4Address("1.0.0.1"),
        ],
        min_length=1,
        description="Global nameservers pushed to VPN clients.",
    )
    derp: Derp = Field(default_factory=Derp, description="Embedded DERP relay and STUN.")
    router: SubnetRouter = Field(
        default_factory=SubnetRouter, description="Subnet router that advertises the LAN."
    )
    headplane: Headplane = Field(default_factory=Headplane, description="Headplane web UI.")
    admin_user: DnsLabel = Field(
        default="admin", description="Headscale user that owns the admin devices."
    )
    policy: AclPolicy = Field(
        default_factory=AclPolicy, description="ACL policy as code (default deny)."
    )


# --- apps and storage ------------------------------------------------------------------------


class App(StrictModel):
    """A service reached at https://<host>.<domain> through Traefik."""

    name: DnsLabel = Field(description="App name.")
    namespace: AppNamespace = Field(
        description="Namespace the app lives in; the stack creates and owns it (so not a "
        "Kubernetes or platform namespace)."
    )
    host: DnsLabel | None = Field(default=None, description="Host label; default: the name.")
    visibility: Literal["private", "public"] = Field(
        default="private", description="'private' = LAN and tailnet only; 'public' = internet."
    )
    workload: Literal["grafana"] | None = Field(
        default=None, description="A workload this project deploys; omit to route to a Service."
    )
    service: DnsLabel | None = Field(
        default=None,
        description="Service to route to (when no workload is deployed); deploy it into the "
        "app's namespace, which the stack creates.",
    )
    port: int = Field(default=80, ge=1, le=65535, description="Service port.")

    @property
    def host_label(self) -> str:
        return self.host or self.name


class Storage(StrictModel):
    """Persistent volumes for Headscale, Headplane and the apps."""

    storage_class: DnsLabel | None = Field(
        default=None,
        description="Use this existing StorageClass; default: deploy local-path-provisioner.",
    )
    local_path_root: LocalPathRoot = Field(
        default="/var/mnt/local-path-provisioner",
        description="Host directory for local-path volumes; must be under /var on Talos.",
    )


# --- backups ---------------------------------------------------------------------------------


class S3Target(StrictModel):
    """An S3-compatible bucket (MinIO, a NAS's S3 service, Backblaze B2, AWS). The secret access key
    is the `homelab:backupSecretAccessKey` secret."""

    endpoint: S3Endpoint = Field(
        description="The S3 API's URL, e.g. 'https://minio.lan:9000' or "
        "'https://s3.us-west-004.backblazeb2.com'.",
    )
    bucket: BucketName = Field(
        description="Bucket name (created beforehand; the stack does not create it).",
    )
    region: Region = Field(
        default="us-east-1",
        description="Bucket region; MinIO and most NAS services accept the default.",
    )
    prefix: BucketPrefix = Field(
        default="homelab",
        description="Path inside the bucket; Headscale's replica and etcd snapshots go below it.",
    )
    access_key_id: AccessKeyId = Field(
        description="Access key id (not secret on its own; the secret key is "
        "`homelab:backupSecretAccessKey`).",
    )

    @property
    def url(self) -> str:
        """The replica's path-style URL, without credentials."""
        return f"{self.endpoint.rstrip('/')}/{self.bucket}/{self.prefix}"


class NfsTarget(StrictModel):
    """A directory an NFS server exports, writable by UID 65532 (the pods' user)."""

    server: ServerAddress = Field(description="NFS server's IPv4 address or host name.")
    path: ExportPath = Field(description="Exported directory, e.g. '/volume1/backups'.")

    @property
    def url(self) -> str:
        return f"nfs://{self.server}{self.path}"


class EtcdSnapshots(StrictModel):
    """The scheduled etcd snapshot, taken through the Talos API from inside the cluster."""

    schedule: CronSchedule = Field(
        default="0 3 * * *", description="Cron schedule (the cluster's time zone, UTC on Talos)."
    )
    keep: int = Field(
        default=14, ge=1, le=1000, description="How many snapshots to keep; older ones are deleted."
    )


class Backups(StrictModel):
    """Where Headscale's database and etcd snapshots are copied: exactly one of `s3`, `nfs`."""

    s3: S3Target | None = Field(default=None, description="An S3-compatible bucket.")
    nfs: NfsTarget | None = Field(default=None, description="An NFS export.")
    etcd: EtcdSnapshots = Field(
        default_factory=EtcdSnapshots, description="Schedule and retention of etcd snapshots."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Backups:
        if (self.s3 is None) == (self.nfs is None):
            raise ValueError("must name exactly one target: `s3` (a bucket) or `nfs` (an export)")
        return self

    @property
    def target(self) -> S3Target | NfsTarget:
        target = self.s3 or self.nfs
        assert target is not None  # the validator above
        return target


# --- the whole stack -------------------------------------------------------------------------


BuiltinHost = Literal["headscale", "headplane"]
# The hosts the stack itself serves; an app may use neither their names nor their hosts.
BUILTIN_HOSTS: tuple[BuiltinHost, ...] = ("headscale", "headplane")


@dataclass(frozen=True)
class ExposedHost:
    """One https://<fqdn> that Traefik serves: an app, or a built-in (`builtin` says which)."""

    name: str
    fqdn: str
    namespace: str
    visibility: Literal["private", "public"]
    builtin: BuiltinHost | None = None


class HomelabConfig(StrictModel):
    """Everything one stack needs. Secrets are SecretStr and become Pulumi secrets when used."""

    domain: PublicDomain = Field(
        description="Base domain, one you registered (Let's Encrypt issues for it); services "
        "live at <host>.<domain>."
    )
    lifecycle: Lifecycle = Field(description="Real homelab or throw-away lab, and what follows.")
    cluster: Cluster = Field(description="The Talos cluster and its nodes.")
    network: Network = Field(description="The LAN and the MetalLB address pools.")
    tls: Tls = Field(description="The Let's Encrypt wildcard certificate.")
    remote_access: RemoteAccess = Field(
        description="Headscale, MagicDNS, DERP/STUN, the ACL policy and the subnet router."
    )
    apps: list[App] = Field(default_factory=list, description="Services exposed through Traefik.")
    storage: Storage = Field(default_factory=Storage, description="Persistent storage.")
    backups: Backups | None = Field(
        default=None,
        description="Backup target for Headscale's database and etcd snapshots; without it "
        "nothing is backed up (the render says so).",
    )
    # Secrets: set with `pulumi config set --secret homelab:<key> ...`.
    dns_api_token: Secret = Field(description="DNS provider API token for DNS-01 (secret).")
    headplane_cookie_secret: Secret | None = Field(
        default=None,
        description="Headplane cookie secret, exactly 32 characters (secret); default: generated once.",
    )
    backup_secret_access_key: Secret | None = Field(
        default=None,
        description="Secret access key of `backups.s3` (secret); only with an S3 target.",
    )
    wildcard_certificate: SecretStr | None = Field(
        default=None,
        description="The issued wildcard certificate Secret, saved by `lab destroy` (secret, JSON); "
        "pre-seeds the Secret so cert-manager keeps it instead of ordering another.",
    )

    @property
    def acme_environment(self) -> Literal["staging", "production"]:
        if self.tls.acme_environment is not None:
            return self.tls.acme_environment
        # Production for labs too: Tailscale clients verify the control server against the system
        # roots and Let's Encrypt's production roots only (tailscale @ v1.102.3 :
        # net/tlsdial/tlsdial.go Config, net/bakedroots), so no device joins a staging lab.
        return "production"

    @property
    def certificate_dns_names(self) -> tuple[str, str]:
        """The wildcard certificate's identifiers: Let's Encrypt limits certificates per exact set."""
        return (self.domain, f"*.{self.domain}")

    @property
    def saved_certificate(self) -> SavedCertificate | None:
        """The saved certificate when it parses (the rules report it when it does not)."""
        if self.wildcard_certificate is None:
            return None
        try:
            return parse_saved_certificate(self.wildcard_certificate.get_secret_value())
        except ValueError:
            return None

    @property
    def subnet_routes(self) -> list[ipaddress.IPv4Network]:
        return self.remote_access.router.routes or [self.network.lan_cidr]

    @property
    def stun_ip(self) -> ipaddress.IPv4Address:
        return self.remote_access.derp.stun_ip or self.network.traefik_ip

    def fqdn(self, label: str) -> str:
        return f"{label}.{self.domain}"

    @property
    def headscale_fqdn(self) -> str:
        return self.fqdn(self.remote_access.headscale_host)

    @property
    def headscale_exposure(self) -> ExposedHost:
        """Headscale's public host, found by identity (an app's name can never stand in for it)."""
        return ExposedHost(
            "headscale", self.headscale_fqdn, HEADSCALE_NAMESPACE, "public", builtin="headscale"
        )

    @property
    def headplane_exposure(self) -> ExposedHost | None:
        """Headplane's private host, or None when Headplane is disabled."""
        headplane = self.remote_access.headplane
        if not headplane.enabled:
            return None
        return ExposedHost(
            "headplane",
            self.fqdn(headplane.host),
            HEADSCALE_NAMESPACE,
            "private",
            builtin="headplane",
        )

    def app_exposure(self, app: App) -> ExposedHost:
        return ExposedHost(app.name, self.fqdn(app.host_label), app.namespace, app.visibility)

    def exposed_hosts(self) -> list[ExposedHost]:
        """Every host Traefik serves, sorted by fqdn: Headscale (public), Headplane, the apps.

        The Ingress routes, the certificate's reflection targets and MagicDNS records all derive
        from this one list, so they cannot disagree.
        """
        hosts = [self.headscale_exposure]
        if (headplane := self.headplane_exposure) is not None:
            hosts.append(headplane)
        hosts.extend(self.app_exposure(a) for a in self.apps)
        return sorted(hosts, key=lambda h: h.fqdn)

    def iter_node_ips(self) -> Iterator[ipaddress.IPv4Address]:
        yield from (n.ip for n in self.cluster.nodes)
