"""Talos machines as the world keeps them, and the rules of apid that decide who may talk to whom.

A machine sits at an address and is in one state:

- `maintenance`: booted from install media, not configured. apid serves with a self-signed
  certificate, skips client certificates, runs every request with the reader role and forwards
  nothing (siderolabs/talos@v1.13.9:internal/app/machined/pkg/controllers/runtime/
  api_service_config.go `Run`: SkipVerifyingClientCert, ReadonlyRoleMode, NodeRoutingDisabled).
- `installed`: configured; apid serves a certificate of the cluster's OS CA and requires a client
  certificate of that CA (same file, the branch without a maintenance request).
- `rebooting` until `back_at` on the clock, then `after_reboot`; `dead` (powered off, crashed);
  `off` (shut down through the API); `wiped` (its system disk erased whole: nothing to boot).

Certificates are opaque strings: a CA is what a talosconfig carries as `ca` (base64 PEM); a client
certificate is its `crt`, issued by a CA until `not_after` (`certs`). A machine in maintenance
presents `self-signed:<address>#<hardware>`, which no talosconfig trusts.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from tests.world import clock

State = dict[str, Any]
Node = dict[str, Any]

APID_PORT: Final = 50000
# What a reboot takes on the clock: an arbitrary, fixed bound (firmware, kernel, services).
REBOOT_SECONDS: Final = 90.0
# From a machine's boot (or a hostname change) until its kubelet has registered its Node: a
# bound, not a measurement.
KUBELET_REGISTER_SECONDS: Final = 20.0
# Pulling the installer and writing the new boot assets (`talosctl upgrade`).
INSTALL_SECONDS: Final = 60.0
# siderolabs/talos@v1.13.9:pkg/machinery/constants/constants.go
# TalosAPIDefaultCertificateValidityDuration (the admin client certificate).
CLIENT_CERT_SECONDS: Final = 365 * 86400.0
ADMIN_ROLE: Final = "os:admin"
# The address an apid reaches itself on.
LOOPBACK: Final = "127.0.0.1"
READER_ROLE: Final = "os:reader"


class TalosError(Exception):
    """What talosctl prints for a failed call (its message, as upstream words it)."""


def talos(state: State) -> dict[str, Any]:
    section: dict[str, Any] = state.setdefault(
        "talos",
        {
            "nodes": {},
            "certs": {},
            "etcd": {"members": [], "next_id": 1},
            "schematics": {},
            "cluster": {},
        },
    )
    return section


def nodes(state: State) -> dict[str, Node]:
    found: dict[str, Node] = talos(state)["nodes"]
    return found


def node_at(state: State, address: str) -> Node | None:
    return nodes(state).get(address)


def maintenance_ca(address: str, hardware: int) -> str:
    return f"self-signed:{address}#{hardware}"


def new_machine(address: str, *, version: str, hardware: int = 1) -> Node:
    """A machine booted from install media: maintenance mode, nothing on its disk."""
    return {
        "address": address,
        "hardware": hardware,
        "state": "maintenance",
        "ca": maintenance_ca(address, hardware),
        "role": None,
        "hostname": f"talos-{hashlib.sha256(f'{address}#{hardware}'.encode()).hexdigest()[:5]}",
        "version": version,
        "image": None,
        "staged_image": None,
        "config": None,
        "staged_config": None,
        # MachineConfig `persistent` (the config saved to STATE) when it is set apart from the
        # active one since the last boot; None after a boot (see `apply`, `_boot`).
        "persistent_config": None,
        # Which etcd data directory the machine holds (EPHEMERAL): a wipe starts a new one.
        "etcd_data": 0,
        "boot_id": 1,
        "back_at": None,
        "after_reboot": None,
        "disks": [{"dev_path": "/dev/nvme0n1", "size": 512_110_190_592, "system_disk": False}],
    }


def is_up(machine: Node | None) -> bool:
    return machine is not None and machine["state"] in ("maintenance", "installed")


# --- certificates --------------------------------------------------------------------------


def issue_client_cert(
    state: State, crt: str, ca: str, *, roles: list[str] | None = None, seconds: float | None = None
) -> None:
    """Record `crt` as a client certificate of `ca`, valid from now for `seconds`."""
    talos(state)["certs"][crt] = {
        "ca": ca,
        "not_after": clock.now(state) + (CLIENT_CERT_SECONDS if seconds is None else seconds),
        "roles": roles or [ADMIN_ROLE],
    }


def client_cert_problem(state: State, crt: str, ca: str) -> str | None:
    """Why apid of a machine of `ca` refuses the client certificate `crt`, or None.

    Go's TLS server verifies the client chain against the OS CA and answers with an alert: an
    unknown issuer is `unknown certificate authority`, an expired one `expired certificate`
    (golang/go crypto/tls handshake_server.go `processCertsFromClient`)."""
    cert = talos(state)["certs"].get(crt)
    if cert is None or cert["ca"] != ca:
        return "remote error: tls: unknown certificate authority"
    if clock.now(state) > cert["not_after"]:
        return "remote error: tls: expired certificate"
    return None


def roles_of(state: State, crt: str) -> list[str]:
    cert = talos(state)["certs"].get(crt) or {}
    found: list[str] = cert.get("roles", [])
    return found


# --- reaching apid -------------------------------------------------------------------------


def _connection_error(desc: str) -> str:
    return f'rpc error: code = Unavailable desc = connection error: desc = "{desc}"'


def dial_problem(state: State, address: str) -> str | None:
    """Why a TCP connection to apid at `address` fails, or None."""
    machine = node_at(state, address)
    target = f"{address}:{APID_PORT}"
    if machine is None or machine["state"] in ("dead", "off", "wiped"):
        return _connection_error(
            f"transport: Error while dialing: dial tcp {target}: connect: no route to host"
        )
    if machine["state"] == "rebooting":
        return _connection_error(
            f"transport: Error while dialing: dial tcp {target}: connect: connection refused"
        )
    return None


def connect(state: State, endpoint: str, *, ca: str, crt: str) -> tuple[Node | None, str | None]:
    """A TLS connection from talosctl with a talosconfig (`ca`, `crt`) to apid at `endpoint`.

    TLS is decided by the machine at the ENDPOINT: its serving certificate must be signed by the
    talosconfig's CA, and it checks the client certificate (siderolabs/talos@v1.13.9:
    pkg/machinery/client/connection.go `buildTLSConfig`: RootCAs from the context's `ca`)."""
    problem = dial_problem(state, endpoint)
    if problem:
        return None, problem
    machine = nodes(state)[endpoint]
    if machine["ca"] != ca:
        return None, _connection_error(
            "transport: authentication handshake failed: tls: failed to verify certificate: "
            "x509: certificate signed by unknown authority"
        )
    refused = client_cert_problem(state, crt, ca)
    if refused:
        return None, _connection_error(f"error reading server preface: {refused}")
    return machine, None


def connect_insecure(state: State, address: str) -> tuple[Node | None, str | None]:
    """talosctl's maintenance client: no server verification, no client certificate
    (cmd/talosctl/pkg/talos/global/client.go `WithClientMaintenance`: InsecureSkipVerify, the
    endpoints are the `--nodes`). An installed machine requires a client certificate, so TLS
    1.3 ends with its `certificate required` alert."""
    problem = dial_problem(state, address)
    if problem:
        return None, problem
    machine = nodes(state)[address]
    if machine["state"] != "maintenance":
        return None, _connection_error(
            "error reading server preface: remote error: tls: certificate required"
        )
    return machine, None


def pick_endpoint(
    state: State, endpoints: list[str], *, ca: str, crt: str
) -> tuple[Node | None, str | None]:
    """Several endpoints: talosctl dials them all and sends each call over one that is READY.

    With more than one endpoint the client uses its round-robin resolver (shuffled) and gRPC's
    `round_robin` balancer (siderolabs/talos@v1.13.9:pkg/machinery/client/resolver/roundrobin.go,
    connection.go `getTarget`): a call goes through any endpoint whose connection succeeded and
    fails only when none did. The world takes the first usable one in the given order (upstream
    is random among them; any usable one gives the same answer here) and reports the last
    endpoint's error when none is usable."""
    last = "no endpoints"
    for endpoint in endpoints:
        machine, problem = connect(state, endpoint, ca=ca, crt=crt)
        if machine is not None:
            return machine, None
        last = problem or last
    return None, last


def forward(state: State, via: Node, target: str) -> tuple[Node | None, str | None]:
    """apid on `via` forwarding a call to the `--nodes` target `target`.

    The endpoint's apid dials the target's apid with its own client certificate of the cluster
    CA and verifies the target against that CA (internal/app/apid/pkg/backend/apid.go
    `GetConnection`, the node's `ClientConfig`); a machine in maintenance forwards nothing
    ("no request forwarding": director.go `singleDirector`, NodeRoutingDisabled)."""
    if via["state"] == "maintenance":
        if target == via["address"]:
            return via, None
        return None, "rpc error: code = PermissionDenied desc = no request forwarding"
    if target == LOOPBACK:
        # An installed apid forwards every `--nodes` target through its remote backend, also
        # 127.0.0.1 (director.go `Director`: IsLocalTarget is consulted only when forwarding is
        # disabled), and reaches itself there: it listens on all addresses
        # (internal/app/machined/pkg/controllers/runtime/api_service_config.go `ListenAddress`
        # ":50000") and its certificate names 127.0.0.1
        # (internal/app/machined/pkg/controllers/secrets/api_cert_sans.go `AppendIPs`).
        return via, None
    problem = dial_problem(state, target)
    if problem:
        return None, problem
    machine = nodes(state)[target]
    if machine["ca"] != via["ca"]:
        return None, _connection_error(
            "transport: authentication handshake failed: tls: failed to verify certificate: "
            "x509: certificate signed by unknown authority"
        )
    return machine, None


# --- time passing ----------------------------------------------------------------------------


def settle(state: State) -> None:
    """Bring the machines to the clock: reboots that are over come back."""
    now = clock.now(state)
    for machine in nodes(state).values():
        rebooted = machine["state"] == "rebooting" and machine["back_at"] is not None
        if rebooted and machine["back_at"] <= now:
            _boot(machine)
    from tests.world import etcd

    etcd.settle(state)


def _boot(machine: Node) -> None:
    after = machine.get("after_reboot") or "installed"
    machine["kubelet_from"] = float(machine["back_at"] or 0.0) + KUBELET_REGISTER_SECONDS
    machine["state"] = after
    machine["back_at"] = None
    machine["after_reboot"] = None
    machine["boot_id"] = int(machine["boot_id"]) + 1
    machine["etcd_stopped"] = False
    # At boot the config comes from STATE only, which sets the active MachineConfig and not
    # the persistent one (internal/app/machined/pkg/controllers/config/acquire.go: "if the only
    # source is state, we do not need to persist it").
    machine["persistent_config"] = None
    if after == "installed":
        if machine.get("staged_image"):
            machine["image"] = machine["staged_image"]
            machine["version"] = image_tag(machine["staged_image"])
            machine["staged_image"] = None
        if machine.get("staged_config"):
            machine["config"] = machine["staged_config"]
            machine["staged_config"] = None
            _take_config(machine)


def reboot(state: State, machine: Node, *, after: str = "installed") -> None:
    machine["state"] = "rebooting"
    machine["back_at"] = clock.now(state) + REBOOT_SECONDS
    machine["after_reboot"] = after


# --- configuration ---------------------------------------------------------------------------


def image_tag(image: str) -> str:
    """The Talos version an installer image installs: its tag."""
    return image.rpartition(":")[2]


def schematic_of(image: str | None) -> str | None:
    """The Image Factory schematic of an installer reference
    (`factory.talos.dev/<variant>-installer/<schematic>:<version>`), or None."""
    if not image or not image.startswith("factory.talos.dev/"):
        return None
    path = image.rpartition(":")[0]
    return path.rpartition("/")[2]


def _take_config(machine: Node) -> None:
    config = machine["config"] or {}
    machine["role"] = config.get("role", machine.get("role"))
    machine["hostname"] = config.get("hostname") or machine["hostname"]
    machine["ca"] = config.get("ca", machine["ca"])


def install(state: State, machine: Node, config: dict[str, Any]) -> None:
    """ApplyConfiguration to a machine in maintenance: it installs `config["image"]` to disk and
    reboots into it (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go
    `ApplyConfiguration`: in maintenance a REBOOT mode becomes NO_REBOOT, the install sequence
    then boots the installed system)."""
    machine["config"] = dict(config)
    machine["persistent_config"] = dict(config)
    machine["image"] = config["image"]
    machine["staged_image"] = None
    machine["version"] = image_tag(config["image"])
    _take_config(machine)
    for disk in machine["disks"]:
        disk["system_disk"] = disk["dev_path"] == config.get("install_disk", disk["dev_path"])
    reboot(state, machine, after="installed")


def apply(state: State, machine: Node, config: dict[str, Any], mode: str) -> str:
    """ApplyConfiguration to an installed machine; returns the mode it resolved to.

    `machine.install.image` is read at install time only: a new image in the config changes
    nothing on the running system (an upgrade does). Of the v1alpha1 document a change of role
    or CA is not applied live: it needs a reboot (internal/app/machined/pkg/runtime/v1alpha1/
    v1alpha1_runtime.go `CanApplyImmediate`, which compares the v1alpha1 document only, so the
    HostnameConfig and LinkConfig documents always apply live); `staged` keeps it for the next
    boot. Every mode but `try` saves the config as the `persistent` MachineConfig; all but
    `staged` (and a reboot) make it the active one too (v1alpha1_server.go `ApplyConfiguration`:
    SetPersistedConfig, SetConfig)."""
    current = machine["config"] or {}
    needs_reboot = any(current.get(k) != config.get(k) for k in ("role", "ca"))
    keep_image = dict(config, image=current.get("image", machine["image"]))
    machine["persistent_config"] = keep_image
    if mode == "staged" or (mode == "staged_if_needing_reboot" and needs_reboot):
        machine["staged_config"] = keep_image
        return "staged"
    if mode == "staged_if_needing_reboot":
        mode = "auto"
    if needs_reboot and mode in ("auto", "reboot"):
        machine["staged_config"] = keep_image
        reboot(state, machine)
        return "reboot"
    machine["config"] = keep_image
    machine["staged_config"] = None
    if config.get("hostname") and config["hostname"] != machine["hostname"]:
        machine["hostname"] = config["hostname"]
        machine["kubelet_from"] = clock.now(state) + KUBELET_REGISTER_SECONDS
    if config.get("address") and config["address"] != machine["address"]:
        move(state, machine, str(config["address"]))
    return "no_reboot" if mode == "auto" else mode


def move(state: State, machine: Node, address: str) -> None:
    """The machine's static address changes (its LinkConfig applies live): it answers at the new
    address from now on; its etcd member advertises the new peer URL
    (internal/app/machined/pkg/controllers/etcd/advertised_peer.go) and its kubelet reports the
    new InternalIP."""
    old = machine["address"]
    del nodes(state)[old]
    machine["address"] = address
    nodes(state)[address] = machine
    for member in talos(state)["etcd"]["members"]:
        if member["address"] == old and member["hardware"] == machine["hardware"]:
            member["address"] = address
    for node in (state.get("kube") or {}).get("nodes", {}).values():
        if node["address"] == old:
            node["address"] = address


def reset(state: State, machine: Node, *, labels: list[str], reboot_after: bool) -> None:
    """Reset: with `--system-labels-to-wipe` only those partitions are wiped (STATE and EPHEMERAL
    bring the machine back to maintenance mode from its installed image); without, the whole
    system disk is wiped, boot partitions included, so nothing is left to boot
    (v1alpha1_server.go `Reset`: no SystemPartitionsToWipe wipes the system disk). EPHEMERAL
    holds etcd's data: wiped, the member's data is gone."""
    wiped = set(labels)
    if not wiped:
        machine.update(state="wiped", config=None, staged_config=None, role=None)
        machine["etcd_data"] = int(machine.get("etcd_data", 0)) + 1
        return
    if "STATE" in wiped:
        machine.update(config=None, staged_config=None, persistent_config=None, role=None)
        machine["ca"] = maintenance_ca(machine["address"], machine["hardware"])
    if "EPHEMERAL" in wiped:
        # etcd's data directory lives on EPHEMERAL (/var/lib/etcd).
        machine["etcd_data"] = int(machine.get("etcd_data", 0)) + 1
    after = "maintenance" if "STATE" in wiped else "installed"
    if reboot_after:
        reboot(state, machine, after=after)
    else:
        machine.update(state="off", after_reboot=None)


def extensions(state: State, machine: Node) -> list[dict[str, str]]:
    """The system extensions the machine runs: those of its image's schematic, plus the virtual
    `schematic` extension whose version is the schematic ID, which every Image Factory image
    carries (siderolabs/image-factory@v1.5.0:internal/artifacts/schematic.go
    `schematicExtension`). A plain installer image has none."""
    schematic = schematic_of(machine.get("image"))
    if schematic is None:
        return []
    known: list[dict[str, str]] = talos(state)["schematics"].get(schematic, [])
    return [*known, {"name": "schematic", "version": schematic}]
