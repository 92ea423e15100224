"""A lab must not collide with the real homelab on the shared LAN or in DNS.

A lab runs on the same LAN as the homelab, so an address both claim (a node IP, the VIP, a MetalLB
pool, Traefik's or STUN's LoadBalancer IP) would break the homelab the moment the lab comes up
(ARP for the same IP from two clusters), and a shared name (node hostname, an exposed FQDN, the
MagicDNS base domain, the cluster name that keys kubeconfig/talosconfig contexts) would hijack or
overwrite the homelab's. The loader runs this for every lab stack (environment 'lab', with its own
Pulumi.<stack>.yaml), against Pulumi.homelab.yaml in the project root; without that file there is
nothing to collide with.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from config.model import HomelabConfig, parse_address_range
from config.rules import NS, Problem
from config.stack_file import StackFileError, read_stack_document

HOMELAB_STACK: Final = "homelab"
HOMELAB_STACK_FILE: Final = Path(__file__).resolve().parent.parent / "Pulumi.homelab.yaml"
# Stand-ins for the homelab's secrets, which are irrelevant here (and encrypted in its file).
_PLACEHOLDER_SECRETS: Final = {
    "dnsApiToken": "placeholder",
    "headplaneCookieSecret": "0" * 32,
}


@dataclass(frozen=True)
class _Claim:
    """Addresses one config key claims on the LAN: `first..last` (one IP: first == last)."""

    key: str
    value: str
    what: str
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def overlaps(self, other: _Claim) -> bool:
        return self.first <= other.last and other.first <= self.last


def _single(key: str, what: str, ip: ipaddress.IPv4Address) -> _Claim:
    return _Claim(key, str(ip), what, ip, ip)


def address_claims(c: HomelabConfig) -> Iterator[_Claim]:
    """Every LAN address a stack takes for itself (the gateway is shared, so it is not one)."""
    for i, node in enumerate(c.cluster.nodes):
        yield _single(f"cluster.nodes[{i}].ip", f"node {node.hostname}", node.ip)
        if node.current_address is not None:
            # Where `up` sends the node's Talos config while it moves: never the other stack's.
            yield _single(
                f"cluster.nodes[{i}].currentAddress",
                f"node {node.hostname}'s current address",
                node.current_address,
            )
    if c.cluster.vip is not None:
        yield _single("cluster.vip", "cluster VIP", c.cluster.vip)
    for i, pool in enumerate(c.network.address_pools):
        for j, entry in enumerate(pool.addresses):
            first, last = parse_address_range(entry)
            key = f"network.addressPools[{i}].addresses[{j}]"
            yield _Claim(key, entry, f"MetalLB pool {pool.name!r}", first, last)
    yield _single("network.traefikIp", "Traefik IP", c.network.traefik_ip)
    if c.remote_access.derp.stun_ip is not None:
        yield _single("remoteAccess.derp.stunIp", "STUN IP", c.remote_access.derp.stun_ip)


def load_stack_file(path: Path) -> HomelabConfig | Problem:
    """A stack file's config (its secrets stubbed), or why it cannot be read."""
    try:
        config = read_stack_document(path)
    except StackFileError as error:
        return Problem(path.name, "(unreadable)", f"cannot compare the lab with it: {error}")
    raw = {
        key.partition(":")[2]: value
        for key, value in config.items()
        if key.startswith(f"{NS}:") and not (isinstance(value, dict) and set(value) == {"secure"})
    }
    for key, placeholder in _PLACEHOLDER_SECRETS.items():
        raw.pop(key, None)
        raw[key] = placeholder
    try:
        return HomelabConfig.model_validate(raw)
    except ValidationError as error:
        return Problem(
            path.name,
            "(invalid)",
            f"cannot compare the lab with it ({error.error_count()} errors); fix it first",
        )


@dataclass(frozen=True)
class Neighbour:
    """Another stack on the same LAN: its config, who it is, and the file it comes from."""

    config: HomelabConfig
    owner: str
    file: str


def _address_collisions(lab: HomelabConfig, other: Neighbour) -> Iterator[Problem]:
    theirs = list(address_claims(other.config))
    for claim in address_claims(lab):
        hits = [f"{o.what} ({o.value})" for o in theirs if claim.overlaps(o)]
        if hits:
            yield Problem(
                f"{NS}:{claim.key}",
                repr(claim.value),
                f"collides with {other.owner}'s {', '.join(hits)} ({other.file}); "
                "a lab needs LAN addresses of its own",
            )


def _name_collisions(lab: HomelabConfig, other: Neighbour) -> Iterator[Problem]:
    theirs = {n.hostname for n in other.config.cluster.nodes}
    for i, node in enumerate(lab.cluster.nodes):
        if node.hostname in theirs:
            yield Problem(
                f"{NS}:cluster.nodes[{i}].hostname",
                repr(node.hostname),
                f"is a node hostname of {other.owner} ({other.file}); pick another",
            )
    if lab.cluster.name == other.config.cluster.name:
        yield Problem(
            f"{NS}:cluster.name",
            repr(lab.cluster.name),
            f"is the cluster name of {other.owner} ({other.file}); its kubeconfig/talosconfig "
            "contexts would be replaced, pick another",
        )
    shared_hosts = sorted(
        {h.fqdn for h in lab.exposed_hosts()} & {h.fqdn for h in other.config.exposed_hosts()}
    )
    if shared_hosts:
        yield Problem(
            f"{NS}:domain",
            repr(lab.domain),
            f"gives hosts {other.owner} serves ({', '.join(shared_hosts)}; {other.file}); use a "
            f"subdomain of its own, e.g. 'lab.{other.config.domain}'",
        )
    # Let's Encrypt counts certificates per exact set of identifiers (5 per 7 days): a lab with
    # the same set would spend the other's budget (reported once: shared hosts imply it).
    if not shared_hosts and set(lab.certificate_dns_names) == set(
        other.config.certificate_dns_names
    ):
        yield Problem(
            f"{NS}:domain",
            repr(lab.domain),
            f"gives the same wildcard certificate names as {other.owner} "
            f"({', '.join(lab.certificate_dns_names)}; {other.file}), which share one Let's "
            f"Encrypt limit of 5 certificates a week; use a subdomain of its own, e.g. "
            f"'lab.{other.config.domain}'",
        )
    base = lab.remote_access.magic_dns_base_domain
    if base == other.config.remote_access.magic_dns_base_domain:
        # A concrete suggestion, never the refused value itself.
        own = next(d for d in (f"ts.{lab.domain}", f"ts.lab.{lab.domain}") if d != base)
        yield Problem(
            f"{NS}:remoteAccess.magicDnsBaseDomain",
            repr(base),
            f"is the MagicDNS domain of {other.owner} ({other.file}); use the lab's own, e.g. "
            f"{own!r}",
        )


def collisions(lab: HomelabConfig, other: Neighbour) -> list[Problem]:
    """Every address and name `lab` would share with `other`, sorted."""
    return sorted([*_address_collisions(lab, other), *_name_collisions(lab, other)])


def check_against_file(lab: HomelabConfig, path: Path, owner: str) -> list[Problem]:
    """Collisions of `lab` with the stack file at `path` (described as `owner` in messages)."""
    other = load_stack_file(path)
    if isinstance(other, Problem):
        return [other]
    return collisions(lab, Neighbour(other, owner, path.name))


def check_lab_isolation(
    lab: HomelabConfig, *, stack: str, homelab_file: Path = HOMELAB_STACK_FILE
) -> list[Problem]:
    """Every collision of lab config `lab` (stack `stack`) with the homelab's stack file.

    Labs are stacks with their own Pulumi.<stack>.yaml beside the homelab's; nothing is checked
    for a non-lab environment, for the homelab stack itself (comparing the file with itself says
    nothing), for config that is not a stack file of the project (a test's in-memory variant), or
    when the homelab file does not exist.
    """
    if not lab.lifecycle.is_lab or stack == HOMELAB_STACK or not homelab_file.exists():
        return []
    if not (homelab_file.parent / f"Pulumi.{stack}.yaml").exists():
        return []
    return check_against_file(lab, homelab_file, "the homelab")


def stack_identity_problems(
    config: HomelabConfig, *, stack: str, project_dir: Path = HOMELAB_STACK_FILE.parent
) -> list[Problem]:
    """`lifecycle.environment` must match who the stack is.

    The `homelab` stack is the real homelab: as 'lab' it would lose its protection, reset its
    nodes on destroy and take staging certificates, all by one key. A lab (any other stack with
    its own Pulumi.<stack>.yaml in the project) may not claim 'homelab' either: that would skip
    the collision checks against the homelab above and make its resources protected and its
    certificates production ones. A stack without a file of the project (a test's in-memory
    variant) is not judged.
    """
    environment = config.lifecycle.environment
    key = f"{NS}:lifecycle.environment"
    if stack == HOMELAB_STACK and environment == "lab":
        return [
            Problem(
                key,
                repr(environment),
                f"must be 'homelab' for the {HOMELAB_STACK!r} stack, the real homelab; make a lab "
                "as a stack of its own instead: `python -m homelab lab up <name>` (its config "
                "starts from the Pulumi.lab.yaml template)",
            )
        ]
    is_project_stack = (project_dir / f"Pulumi.{stack}.yaml").exists()
    if stack != HOMELAB_STACK and environment == "homelab" and is_project_stack:
        return [
            Problem(
                key,
                repr(environment),
                f"must be 'lab' for stack {stack!r}: only the {HOMELAB_STACK!r} stack is the "
                "real homelab (./scripts/up)",
            )
        ]
    return []
