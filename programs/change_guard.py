"""The cluster changes one `up` may make together. `record` prints what the cluster is configured
to be (Talos version, installer, Kubernetes version, nodes); `check` compares that with what the
last run recorded (PULUMI_COMMAND_STDOUT) before anything of the cluster changes, and refuses,
with one line naming the setting:

- a new Talos version, installer (schematic) or Kubernetes version together with a node added or
  removed: the roll checks the cluster's health with exactly the configured nodes
  (`talosctl health`), which a node that has not joined yet, or one still leaving, fails, so the
  roll could never go on;
- renaming a node that holds local-path volumes: the kubelet registers a new Node under the new
  name, and a local-path PersistentVolume is pinned to its node by `kubernetes.io/hostname`
  (rancher/local-path-provisioner@v0.0.37: provisioner.go `provisionFor`, the PV's
  NodeAffinity), so every pod of such a volume would stay Pending.

A refused run fails, so Pulumi keeps the previous record and the next `up` checks against it
again."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Literal

from programs.runtime import credential_file, fail, run_cli, say
from programs.talosctl import (
    EndpointParams,
    endpoints_for,
    fetched_kubeconfig,
    require_client,
)

Node = dict[str, str]
# The node label local-path volumes are pinned by (provisioner.go `provisionFor`:
# `KeyNode = "kubernetes.io/hostname"` in the PV's required node affinity).
HOSTNAME_LABEL = "kubernetes.io/hostname"


class Params(EndpointParams):
    cluster_key: str
    kubeconfig_argv: list[str]
    mode: Literal["record", "check"]
    nodes_key: str
    program: str
    record: dict[str, Any]
    releases: str
    talos_minor: str
    talosconfig_env: str


def same(old: Node, new: Node) -> bool:
    """The same machine: its address, or the address it answers on while it moves."""
    return old["ip"] in (new["ip"], new["address"])


def node_changes(
    previous: Sequence[Node], current: Sequence[Node]
) -> tuple[list[Node], list[Node], list[tuple[str, str]]]:
    """(added, removed, renamed as (old, new) hostnames)."""
    added = [n for n in current if not any(same(o, n) for o in previous)]
    removed = [o for o in previous if not any(same(o, n) for n in current)]
    renamed = [
        (o["hostname"], n["hostname"])
        for o in previous
        for n in current
        if same(o, n) and o["hostname"] != n["hostname"]
    ]
    return added, removed, renamed


VERSIONS = {
    "talos_version": "Talos",
    "installer": "the installer (schematic)",
    "kubernetes_version": "Kubernetes",
}


def moves(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{what} {previous.get(key)} -> {current.get(key)}"
        for key, what in VERSIONS.items()
        if previous.get(key) != current.get(key)
    ]


def pinned_volumes(persistent_volumes: Any, hostname: str) -> list[str]:
    """The PersistentVolumes (`kubectl get pv -o json`) pinned to the Node `hostname`, with their
    claims."""
    found: list[str] = []
    for pv in persistent_volumes.get("items", []):
        spec = pv.get("spec") or {}
        required = (spec.get("nodeAffinity") or {}).get("required") or {}
        for term in required.get("nodeSelectorTerms") or []:
            for expression in term.get("matchExpressions") or []:
                if expression.get("key") == HOSTNAME_LABEL and hostname in (
                    expression.get("values") or []
                ):
                    claim = spec.get("claimRef") or {}
                    owner = f"{claim.get('namespace', '?')}/{claim.get('name', '?')}"
                    found.append(f"{pv['metadata']['name']} ({owner})")
    return sorted(set(found))


def check_renames(params: Params, renamed: list[tuple[str, str]]) -> None:
    require_client(
        params["talos_minor"], params["releases"], f"the cluster runs Talos {params['talos_minor']}"
    )
    with credential_file(params["talosconfig_env"], "talosconfig") as path:
        talos = endpoints_for(params, path)
        with fetched_kubeconfig(talos, params["kubeconfig_argv"], talos.endpoints) as kubeconfig:
            listed = run_cli(
                ["kubectl", "get", "persistentvolumes", "--output", "json"],
                timeout=120,
                env={"KUBECONFIG": kubeconfig},
            )
    if listed is None or listed.returncode != 0:
        error = listed.stderr.strip() if listed is not None else "timed out"
        fail(f"{params['nodes_key']}: cannot check the volumes of the renamed nodes: {error}")
    volumes = json.loads(listed.stdout)
    for old, new in renamed:
        pinned = pinned_volumes(volumes, old)
        if pinned:
            fail(
                f"{params['nodes_key']}: renaming {old} to {new} would strand the local-path "
                f"volumes pinned to {HOSTNAME_LABEL}={old}: {', '.join(pinned)} (their pods would "
                f"stay Pending on a Node that no longer exists). Keep the name, or move those "
                f"volumes off {old} first (docs/operations.md, Rename a node)"
            )
        say(f"{old} holds no local-path volume; renaming it to {new}")


def check(params: Params, previous: dict[str, Any]) -> None:
    current = params["record"]
    added, removed, renamed = node_changes(previous.get("nodes", []), current["nodes"])
    moved = moves(previous, current)
    if moved and (added or removed):
        changed = [f"adds {n['hostname']}" for n in added] + [
            f"removes {n['hostname']}" for n in removed
        ]
        fail(
            f"{params['cluster_key']}: this `up` moves {', '.join(moved)} and {', '.join(changed)}: "
            "the roll checks the cluster's health with exactly the configured nodes, which a node "
            "joining or leaving fails. Do one per `up`: undo one of the two changes, run `up`, "
            "then make the other"
        )
    if renamed:
        check_renames(params, renamed)


def main(params: Params) -> str:
    current = json.dumps(params["record"], sort_keys=True)
    if params["mode"] == "record":
        return current
    recorded = os.environ.get("PULUMI_COMMAND_STDOUT") or ""
    try:
        previous = json.loads(recorded or "null")
    except ValueError:
        previous = None
    if not isinstance(previous, dict):
        say("no previous record; recording this one")
        return current
    check(params, previous)
    return current
