"""The fake `talosctl` (v1.13.9): its flags, its talosconfig, reaching apid, and the commands the
programs run. Sources are siderolabs/talos@v1.13.9 unless said otherwise; `cmd/` means
cmd/talosctl/cmd/talos/."""

from __future__ import annotations

from typing import Any, Final

from tests.world import talos_client, talos_etcd, talos_model, talos_ops
from tests.world.flags import FlagError, command_words, parse
from tests.world.talos_model import TalosError

State = dict[str, Any]

GLOBAL: Final = {
    "talosconfig": ("string", None),
    "context": ("string", None),
    "nodes": ("slice", "n"),
    "endpoints": ("slice", "e"),
    "cluster": ("string", "c"),
    "siderov1-keys-dir": ("string", None),
}
# cmd/track.go `addTrackActionFlags`.
TRACK: Final = {
    "progress": ("string", None),
    "wait": ("bool", None),
    "debug": ("bool", None),
    "timeout": ("duration", None),
}
COMMANDS: Final[dict[tuple[str, ...], dict[str, tuple[str, str | None]]]] = {
    ("version",): {
        "short": ("bool", None),
        "client": ("bool", None),
        "insecure": ("bool", "i"),
        "json": ("bool", None),
    },
    ("health",): {
        "init-node": ("string", None),
        "control-plane-nodes": ("slice", None),
        "worker-nodes": ("slice", None),
        "wait-timeout": ("duration", None),
        "k8s-endpoint": ("string", None),
        "server": ("bool", None),
        "run-e2e": ("bool", None),
    },
    ("upgrade",): {
        **TRACK,
        "image": ("string", None),
        "namespace": ("string", None),
        "reboot-mode": ("string", None),
        "no-reboot": ("bool", None),
        "drain": ("bool", None),
        "drain-timeout": ("duration", None),
        "legacy": ("bool", None),
        "force": ("bool", None),
        "insecure": ("bool", None),
        "preserve": ("bool", None),
        "stage": ("bool", None),
    },
    ("reboot",): {
        **TRACK,
        "mode": ("string", "m"),
        "drain": ("bool", None),
        "drain-timeout": ("duration", None),
    },
    ("reset",): {
        **TRACK,
        "graceful": ("bool", None),
        "reboot": ("bool", None),
        "insecure": ("bool", None),
        "wipe-mode": ("string", None),
        "user-disks-to-wipe": ("slice", None),
        "system-labels-to-wipe": ("slice", None),
    },
    ("shutdown",): {**TRACK, "force": ("bool", None)},
    ("kubeconfig",): {
        "force": ("bool", "f"),
        "force-context-name": ("string", None),
        "merge": ("bool", "m"),
    },
    ("upgrade-k8s",): {
        "from": ("string", None),
        "to": ("string", None),
        "endpoint": ("string", None),
        "with-examples": ("bool", None),
        "with-docs": ("bool", None),
        "pre-pull-images": ("bool", None),
        "upgrade-kubelet": ("bool", None),
        "dry-run": ("bool", None),
        "manifests-force": ("bool", None),
        "manifests-no-prune": ("bool", None),
        "manifests-reconcile-timeout": ("duration", None),
    },
    ("bootstrap",): {"recover-from": ("string", None), "recover-skip-hash-check": ("bool", None)},
    ("get",): {
        "namespace": ("string", None),
        "output": ("string", "o"),
        "watch": ("bool", "w"),
        "insecure": ("bool", "i"),
    },
    ("etcd", "members"): {},
    ("etcd", "leave"): {},
    ("etcd", "remove-member"): {},
    ("etcd", "snapshot"): {},
}
# Defaults that differ from the flag kind's zero value.
DEFAULTS: Final = {
    "wait": True,
    "server": True,
    "graceful": True,
    "merge": True,
    "timeout": 1800.0,
    "wait-timeout": 1200.0,
    "drain-timeout": 300.0,
    "output": "table",
}


def run(state: State, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """talosctl's exit code, stdout and stderr (errors printed as cmd/root.go `Execute` does:
    the message, and the usage when it mentions a flag, an arg or a "command")."""
    words = command_words(argv, GLOBAL, 2)
    path = tuple(words) if tuple(words) in COMMANDS else tuple(words[:1])
    if path not in COMMANDS:
        return 1, "", f'unknown command "{" ".join(words)}" for "talosctl"\n'
    try:
        parsed = parse(argv, {**GLOBAL, **COMMANDS[path]})
    except FlagError as error:
        return 1, "", f"{error}\n\n{_usage(path)}\n"
    flags = {**DEFAULTS, **parsed.flags}
    args = parsed.args[len(path) :]
    call = talos_client.Call(state=state, path=path, flags=flags, args=args, env=env)
    try:
        talos_ops.settle(state)
        COMMAND_RUNNERS[path](call)
    except TalosError as error:
        message = str(error)
        usage = any(w in message for w in ("arg(s)", "flag", "command"))
        return (
            1,
            "".join(call.out),
            "".join(call.err) + message + "\n" + (f"\n{_usage(path)}\n" if usage else ""),
        )
    return 0, "".join(call.out), "".join(call.err)


def _usage(path: tuple[str, ...]) -> str:
    return f"Usage:\n  talosctl {' '.join(path)} [flags]"


# --- version -----------------------------------------------------------------------------------

_SHA: Final = "ad8823176"
_GO: Final = "go1.25.5"


def long_block(tag: str) -> str:
    """pkg/machinery/version/version.go `versionTemplate`."""
    return (
        f"\tTag:         {tag}\n\tSHA:         {_SHA}\n\tBuilt:       \n"
        f"\tGo version:  {_GO}\n\tOS/Arch:     linux/amd64\n"
    )


def version(call: talos_client.Call) -> None:
    """cmd/version.go: "Client:" and the client block, then "Server:" before connecting, then
    per answering node NODE, its block and "Enabled". A node that failed is reported as an error
    (all failed) or a warning (some did: pkg/machinery/client/reply.go `FilterMessages`)."""
    client = str(talos_model.talos(call.state).get("client_version", "v1.13.9"))
    call.out.append("Client:\n")
    call.out.append(f"Talos {client}\n" if call.flags.get("short") else long_block(client))
    if call.flags.get("client"):
        return
    call.out.append("Server:\n")
    if call.flags.get("insecure"):
        targets = list(call.flags.get("nodes") or [])
        machine, problem = talos_client.connect_insecure_any(call.state, targets)
        if machine is None:
            raise TalosError(f"error getting version: {problem}")
        call.out.append(f"\tNODE:        {machine['address']}\n")
        call.out.append(long_block(machine["version"]) + "\tEnabled:     RBAC\n")
        return
    via, nodes = talos_client.secure(call, "error getting version")
    answers, errors = talos_client.each_node(call, via, nodes, "/machine.MachineService/Version")
    if errors and not answers:
        raise TalosError(f"error getting version: {talos_client.multierror(errors)}")
    if errors:
        call.err.append(f"WARNING: {talos_client.multierror(errors)}")
    for node, machine in answers:
        call.out.append(f"\tNODE:        {node}\n")
        call.out.append(long_block(machine["version"]) + "\tEnabled:     RBAC\n")


COMMAND_RUNNERS: Final = {
    ("version",): version,
    ("health",): talos_ops.health,
    ("upgrade",): talos_ops.upgrade,
    ("reboot",): talos_ops.reboot,
    ("reset",): talos_ops.reset,
    ("shutdown",): talos_ops.shutdown,
    ("kubeconfig",): talos_ops.kubeconfig,
    ("upgrade-k8s",): talos_ops.upgrade_k8s,
    ("bootstrap",): talos_ops.bootstrap,
    ("get",): talos_ops.get,
    ("etcd", "members"): talos_etcd.etcd_members,
    ("etcd", "leave"): talos_etcd.etcd_leave,
    ("etcd", "remove-member"): talos_etcd.etcd_remove_member,
    ("etcd", "snapshot"): talos_etcd.etcd_snapshot,
}
