"""The World: one fake homelab (Talos machines, Kubernetes, Headscale, the router) in a state
file, the fake `talosctl`/`kubectl` that act on it, and the events a flow needs.

    world = World.create(tmp_path, machines=["192.168.0.11", "192.168.0.12"])
    world.install_cluster(control_planes={"192.168.0.11": "cp-1"}, vip="192.168.0.10")
    result = world.run(program_text, {"HOMELAB_TALOSCONFIG": world.talosconfig([...])})
    world.node_dies("192.168.0.11"); world.calls("talosctl"); world.state["talos"]...
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tests.world import clock, configs, etcd, headscale, router, store, talos_model
from tests.world.kube import cluster
from tests.world.kube.objects import put

State = dict[str, Any]

TALOS_VERSION: Final = "v1.13.9"
KUBERNETES_VERSION: Final = "1.36.3"
INSTALLER: Final = "ghcr.io/siderolabs/installer"
# Real-time bound of one program run (the world's own clock is virtual).
RUN_TIMEOUT_SECONDS: Final = 120

_SHIM: Final = """#!{python}
import sys
sys.path.insert(0, {root!r})
from tests.world.cli import main
main({name!r})
"""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "state.json"
        self.log_file = root / "calls.jsonl"
        self.bin = root / "bin"
        self.site = root / "site"
        self.home = root / "home"
        self.tmp = root / "tmp"

    # --- building --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        machines: Sequence[str] = (),
        talos_version: str = TALOS_VERSION,
        talosctl_version: str = TALOS_VERSION,
    ) -> World:
        """A world of machines in maintenance mode (booted from `talos_version` media)."""
        world = cls(root)
        root.mkdir(parents=True, exist_ok=True)
        state: State = {"clock": clock.EPOCH}
        talos_model.talos(state)["client_version"] = talosctl_version
        cluster.kube(state)
        headscale.headscale(state)
        for address in machines:
            talos_model.nodes(state)[address] = talos_model.new_machine(
                address, version=talos_version
            )
        store.save(world.state_file, state)
        world.install()
        return world

    def install(self) -> dict[str, str]:
        """Write the shims and the virtual-time `sitecustomize`; return the environment."""
        project = Path(__file__).resolve().parents[2]
        for directory in (self.bin, self.site, self.home, self.tmp):
            directory.mkdir(parents=True, exist_ok=True)
        for name in ("talosctl", "kubectl"):
            shim = self.bin / name
            shim.write_text(_SHIM.format(python=sys.executable, root=str(project), name=name))
            shim.chmod(0o755)
        (self.site / "sitecustomize.py").write_text(clock.SITECUSTOMIZE)
        return self.env()

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment programs run with: only the fakes on PATH, the world's clock."""
        return {
            "PATH": str(self.bin),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "PYTHONPATH": str(self.site),
            store.STATE_ENV: str(self.state_file),
            store.LOG_ENV: str(self.log_file),
            **(extra or {}),
        }

    # --- running --------------------------------------------------------------------------

    def run(
        self,
        program: str,
        environment: Mapping[str, str] | None = None,
        *,
        interpreter: Sequence[str] = ("python3", "-c"),
        stdin: str | None = None,
    ) -> Result:
        """Run a Command's program as pulumi-command runs it: interpreter + program text, the
        provider's environment plus the Command's (pulumi/pulumi-command@v1.2.1:
        provider/pkg/provider/local/commandOutputs.go `run`). `python3` is this interpreter."""
        argv = [
            sys.executable if interpreter[0] == "python3" else interpreter[0],
            *interpreter[1:],
            program,
        ]
        done = subprocess.run(
            argv,
            env=self.env(environment),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            cwd=self.tmp,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def cli(
        self, name: str, *argv: str, env: Mapping[str, str] | None = None, stdin: str = ""
    ) -> Result:
        """One fake CLI call from the test itself (logged like a program's)."""
        from tests.world.cli import execute

        code, out, err = execute(name, list(argv), self.env(env), stdin)
        return Result(code, out, err)

    # --- inspecting --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return store.load(self.state_file)

    @contextlib.contextmanager
    def edit(self) -> Iterator[State]:
        with store.locked(self.state_file) as state:
            yield state

    @property
    def now(self) -> float:
        return clock.now(self.state)

    def calls(self, cli: str | None = None) -> list[dict[str, Any]]:
        return [c for c in store.read_log(self.log_file) if cli is None or c["cli"] == cli]

    def machine(self, address: str) -> dict[str, Any]:
        found = talos_model.node_at(self.state, address)
        assert found is not None, address
        return found

    def settle(self) -> None:
        with self.edit() as state:
            cluster.settle(state)

    # --- credentials ---------------------------------------------------------------------------

    def talosconfig(
        self,
        endpoints: Sequence[str],
        nodes: Sequence[str] = (),
        *,
        roles: Sequence[str] = ("os:admin",),
        ca: str | None = None,
        name: str = "homelab",
    ) -> str:
        """A talosconfig of the cluster's CA (or `ca`) with a client certificate the world issued
        now for `roles`; `nodes` left out when empty, as talosctl writes it."""
        with self.edit() as state:
            cluster_ca = ca or self._cluster_ca(state)
            serial = len(talos_model.talos(state)["certs"]) + 1
            crt = base64.b64encode(f"world client certificate {serial}".encode()).decode()
            talos_model.issue_client_cert(state, crt, cluster_ca, roles=list(roles))
        context: dict[str, Any] = {
            "endpoints": list(endpoints),
            "ca": cluster_ca,
            "crt": crt,
            "key": "d29ybGQ=",
        }
        if nodes:
            context["nodes"] = list(nodes)
        document = {"context": name, "contexts": {name: context}}
        text = yaml.safe_dump(document, sort_keys=True)
        with self.edit() as state:
            configs.remember(state, text, document)
        return text

    def service_account_talosconfig(self, roles: Sequence[str] = ("os:etcd:backup",)) -> str:
        """What Talos writes into a `talos.dev` ServiceAccount's Secret: the endpoint
        `talos.default`, no nodes (siderolabs/talos@v1.13.9: internal/app/machined/pkg/
        controllers/kubeaccess/serviceaccount/crd_controller.go, `clientconfig.NewConfig`)."""
        return self.talosconfig(["talos.default"], roles=roles, name="talos-sa")

    def kubeconfig(self, server: str | None = None) -> str:
        with self.edit() as state:
            endpoint = server or talos_model.talos(state)["cluster"].get(
                "endpoint", "https://127.0.0.1:6443"
            )
            document = cluster.issue_kubeconfig(state, str(endpoint))
            text = yaml.safe_dump(document, sort_keys=True)
            configs.remember(state, text, document)
        return text

    def trust_talosconfig(self, text: str, *, roles: Sequence[str] = ("os:admin",)) -> None:
        """Make `text` (e.g. the talosconfig a render hands its Commands) the cluster's: its CA
        becomes the OS CA, its client certificate is issued now for `roles`. Call it before
        `install_cluster`."""
        context = _context(text)
        with self.edit() as state:
            configs.load(state, text)
            talos_model.talos(state)["cluster"]["ca"] = str(context.get("ca", ""))
            talos_model.issue_client_cert(
                state, str(context.get("crt", "")), str(context.get("ca", "")), roles=list(roles)
            )

    def trust_kubeconfig(self, text: str) -> None:
        """Make the cluster accept `text` (its CA and client identity, valid a year from now)."""
        with self.edit() as state:
            cluster.trust(state, configs.load(state, text))

    @staticmethod
    def _cluster_ca(state: State) -> str:
        section = talos_model.talos(state)["cluster"]
        if not section.get("ca"):
            section["ca"] = base64.b64encode(b"world talos os CA").decode()
        return str(section["ca"])

    # --- setting up ------------------------------------------------------------------------------

    def install_cluster(
        self,
        *,
        control_planes: Mapping[str, str],
        workers: Mapping[str, str] | None = None,
        vip: str | None = None,
        talos_version: str = TALOS_VERSION,
        kubernetes_version: str = KUBERNETES_VERSION,
        image: str | None = None,
    ) -> None:
        """Machines (address → hostname) installed and running, etcd bootstrapped with every
        control plane a started member, Kubernetes up with their Nodes Ready."""
        with self.edit() as state:
            ca = self._cluster_ca(state)
            section = talos_model.talos(state)["cluster"]
            first = next(iter(control_planes))
            section.update(
                vip=vip,
                endpoint=f"https://{vip or first}:6443",
                kubernetes_version=kubernetes_version,
            )
            for role, chosen in (("controlplane", control_planes), ("worker", workers or {})):
                for address, hostname in chosen.items():
                    machine = talos_model.nodes(state).setdefault(
                        address, talos_model.new_machine(address, version=talos_version)
                    )
                    config = {
                        "role": role,
                        "hostname": hostname,
                        "image": image or f"{INSTALLER}:{talos_version}",
                        "ca": ca,
                        "kubernetes_version": kubernetes_version,
                    }
                    machine.update(
                        config=config,
                        image=config["image"],
                        version=talos_version,
                        state="installed",
                    )
                    machine.update(role=role, hostname=hostname, ca=ca)
            etcd.bootstrap(state, talos_model.nodes(state)[first])
            cluster.settle(state)

    def add_machine(self, address: str, *, version: str = TALOS_VERSION) -> None:
        with self.edit() as state:
            talos_model.nodes(state)[address] = talos_model.new_machine(address, version=version)

    def deploy(
        self,
        namespace: str,
        name: str,
        *,
        kind: str = "Deployment",
        replicas: int = 1,
        claims: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        containers: Sequence[str] = (),
        emptydir: bool = False,
        env: Mapping[str, str] | None = None,
        on_node: str | None = None,
    ) -> None:
        """A workload whose pods the world schedules and runs (on `on_node` only, if given:
        a `nodeName`/node selector)."""
        with self.edit() as state:
            workload = {
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "replicas": replicas,
                "claims": list(claims),
                "labels": dict(labels or {"app.kubernetes.io/name": name}),
                "containers": list(containers or [name]),
                "emptydir": emptydir,
                "env": dict(env or {}),
                "on_node": on_node,
            }
            cluster.kube(state)["workloads"][cluster.workload_key(workload)] = workload
            cluster.settle(state)

    def deploy_headscale(self) -> None:
        """Headscale's Deployment with its containers (headscale, litestream) and its volume."""
        self.deploy(
            "headscale",
            "headscale",
            containers=("headscale", "litestream"),
            claims=("headscale-data",),
        )

    def deploy_router(self, *, hostname: str = "subnet-router", routes: Sequence[str] = ()) -> str:
        """The subnet router's Deployment (TS_HOSTNAME, TS_ROUTES); its pod starts and
        containerboot logs in (tests/world/router.py). Returns the router's status."""
        self.deploy(
            router.NAMESPACE,
            "subnet-router",
            containers=("tailscale",),
            env={"TS_HOSTNAME": hostname, "TS_ROUTES": ",".join(routes)},
        )
        return str(self.state["router"]["status"])

    def put_object(self, document: Mapping[str, Any], namespace: str = "") -> None:
        with self.edit() as state:
            put(state, dict(document), namespace)

    def serve_url(self, url: str, text: str) -> None:
        """What `kubectl apply -f <url>` downloads."""
        with self.edit() as state:
            state.setdefault("urls", {})[url] = text

    def webhook(
        self, name: str, *, group: str, service: str, serving_in: float | None = 0.0
    ) -> None:
        """A validating webhook (failurePolicy Fail) over `group`, serving `serving_in` seconds
        from now (None: not serving)."""
        with self.edit() as state:
            cluster.kube(state)["webhooks"][name] = {
                "group": group,
                "service": service,
                "serving_at": None if serving_in is None else clock.now(state) + serving_in,
                "deny": {},
            }

    def register_schematic(self, schematic: str, extensions: Sequence[Mapping[str, str]]) -> None:
        with self.edit() as state:
            talos_model.talos(state)["schematics"][schematic] = [dict(e) for e in extensions]

    # --- events --------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        with self.edit() as state:
            clock.advance(state, seconds)
            cluster.settle(state)

    def a_year_passes(self) -> None:
        """366 days: every client certificate issued today has expired."""
        self.advance(366 * 86400.0)

    def node_dies(self, address: str) -> None:
        with self.edit() as state:
            machine = talos_model.nodes(state)[address]
            machine["before_death"] = machine["state"]
            machine.update(state="dead", back_at=None)
            cluster.settle(state)

    def node_returns(self, address: str) -> None:
        """Powered on again: it boots what is on its disk (back after a reboot's time)."""
        with self.edit() as state:
            machine = talos_model.nodes(state)[address]
            after = "installed" if machine.get("config") else "maintenance"
            talos_model.reboot(state, machine, after=after)
            cluster.settle(state)

    def replace_hardware(self, address: str, *, version: str = TALOS_VERSION) -> None:
        """New hardware at the same address, booted from install media: maintenance mode, no
        etcd data (the old machine's member stays in etcd until removed)."""
        with self.edit() as state:
            old = talos_model.nodes(state).get(address)
            hardware = int(old["hardware"]) + 1 if old else 1
            talos_model.nodes(state)[address] = talos_model.new_machine(
                address, version=version, hardware=hardware
            )
            cluster.settle(state)

    def device_waits(self, registration: str, hostname: str) -> None:
        """A device ran `tailscale up --login-server ...` and waits in Headscale's registration
        cache under `registration` (24 characters) until an admin registers it."""
        with self.edit() as state:
            headscale.headscale(state)["pending"][registration] = {
                "hostname": hostname,
                "machine_key": f"mkey:{hostname}",
            }

    def headscale_loses_database(self) -> None:
        with self.edit() as state:
            headscale.lose_database(state)

    def router_restarts(self) -> str:
        """The router pod restarts: containerboot starts over with the state Secret
        (tests/world/router.py); returns `Running` or `CrashLoopBackOff`."""
        with self.edit() as state:
            router.stop(state)
            return router.start(state)

    def reschedule(self, namespace: str, pod: str) -> None:
        """The pod is deleted; its controller creates another, which the scheduler places."""
        with self.edit() as state:
            found = cluster.kube(state)["pods"][f"{namespace}/{pod}"]
            found["deletion"] = clock.now(state)
            cluster.settle(state)

    def dump(self) -> str:
        return json.dumps(self.state, indent=1, sort_keys=True)


def _context(talosconfig: str) -> dict[str, Any]:
    document = yaml.safe_load(talosconfig) or {}
    found: dict[str, Any] = (document.get("contexts") or {}).get(document.get("context"), {})
    return found
