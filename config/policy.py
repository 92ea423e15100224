"""The Headscale ACL policy as typed data.

Headscale has no JSON Schema for its policy (components.md 2.4); the shape here follows
docs/ref/policy.md of the pinned Headscale. The stack always adds what the remote-access path
needs (an admin group, the router's tag owner, the LAN rule and the route auto-approver) in
`render_policy`; the config adds anything else. No `acls` at all would mean allow-all in Headscale,
so the rendered policy always carries at least the admin rule: default deny for everything else.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

_GROUP = re.compile(r"^group:[a-z0-9][a-z0-9-]*$")
_TAG = re.compile(r"^tag:[a-z0-9][a-z0-9-]*$")
_USER = re.compile(r"^[a-z0-9][a-z0-9._-]*@$")
_HOST_ALIAS = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PORTS = re.compile(r"^(\*|\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*)$")


def _group_name(value: str) -> str:
    if not _GROUP.fullmatch(value):
        raise ValueError("must look like 'group:admins'")
    return value


def _tag_name(value: str) -> str:
    if not _TAG.fullmatch(value):
        raise ValueError("must look like 'tag:servers' (lowercase)")
    return value


def _owner(value: str) -> str:
    if not (_GROUP.fullmatch(value) or _TAG.fullmatch(value) or _USER.fullmatch(value)):
        raise ValueError("must be a user 'alice@', a 'group:…' or a 'tag:…'")
    return value


def _member(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError("must be a user written with a trailing '@', e.g. 'alice@'")
    return value


def _host_alias(value: str) -> str:
    if not _HOST_ALIAS.fullmatch(value):
        raise ValueError("must be a lowercase name, e.g. 'nas'")
    return value


def _destination(value: str) -> str:
    target, sep, ports = value.rpartition(":")
    if not sep or not target or not _PORTS.fullmatch(ports):
        raise ValueError("must be '<target>:<ports>', e.g. '192.168.0.0/24:*' or 'tag:web:443'")
    return value


GroupName = Annotated[str, AfterValidator(_group_name)]
TagName = Annotated[str, AfterValidator(_tag_name)]
Owner = Annotated[str, AfterValidator(_owner)]
Member = Annotated[str, AfterValidator(_member)]
HostAlias = Annotated[str, AfterValidator(_host_alias)]
Destination = Annotated[str, AfterValidator(_destination)]


class _PolicyModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class AclRule(_PolicyModel):
    action: Literal["accept"] = Field(
        default="accept", description="Only 'accept': everything not accepted is denied."
    )
    src: list[str] = Field(min_length=1, description="Users, groups, tags, hosts or CIDRs.")
    dst: list[Destination] = Field(min_length=1, description="'<target>:<ports>' entries.")


class AclPolicy(_PolicyModel):
    """Extra policy on top of what the stack always adds (see module docstring)."""

    groups: dict[GroupName, list[Member]] = Field(
        default_factory=dict, description="Groups of users, e.g. {'group:family': ['alice@']}."
    )
    tag_owners: dict[TagName, list[Owner]] = Field(
        default_factory=dict, description="Who may assign each tag, e.g. {'tag:web': ['alice@']}."
    )
    hosts: dict[HostAlias, ipaddress.IPv4Network] = Field(
        default_factory=dict, description="Names for networks, e.g. {'nas': '192.168.0.5/32'}."
    )
    acls: list[AclRule] = Field(
        default_factory=list, description="Accept rules added after the built-in admin rule."
    )


ADMIN_GROUP = "group:admins"


def render_policy(
    policy: AclPolicy,
    *,
    admin_user: str,
    router_tag: str,
    subnet_routes: list[ipaddress.IPv4Network],
) -> dict[str, Any]:
    """The policy document Headscale loads (JSON is valid HuJSON), with sorted maps."""
    groups: dict[str, list[str]] = {ADMIN_GROUP: [f"{admin_user}@"]}
    for name, members in policy.groups.items():
        groups[name] = sorted(set(groups.get(name, [])) | set(members))
    tag_owners: dict[str, list[str]] = {router_tag: [ADMIN_GROUP]}
    for tag, owners in policy.tag_owners.items():
        tag_owners[tag] = sorted(set(tag_owners.get(tag, [])) | set(owners))
    routes = [str(r) for r in subnet_routes]
    # Since Headscale 0.29 '*' in dst no longer covers subnet routes (components.md 2.4), so the
    # LAN is named explicitly; the tailnet itself stays reachable for admins through '*:*'.
    admin_rule: dict[str, Any] = {
        "action": "accept",
        "src": [ADMIN_GROUP],
        "dst": ["*:*", *(f"{r}:*" for r in routes)],
    }
    acls = [admin_rule] + [
        {"action": rule.action, "src": list(rule.src), "dst": list(rule.dst)}
        for rule in policy.acls
    ]
    document: dict[str, Any] = {
        "groups": dict(sorted(groups.items())),
        "tagOwners": dict(sorted(tag_owners.items())),
        "hosts": {name: str(net) for name, net in sorted(policy.hosts.items())},
        "acls": acls,
        "autoApprovers": {"routes": {r: [router_tag] for r in sorted(routes)}},
    }
    return document
