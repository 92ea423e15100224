"""A model of how long a first `pulumi up` takes: expected durations on the recorded graph.

Each custom resource gets an expected create duration with the reason for it (`estimate`). The
engine starts a resource as soon as everything it waits for (homelab/graph.py `waits_for`) has
finished, with unlimited parallelism, so the modelled first `up` is the makespan of the graph: the
latest finish time, reached along its critical path (`makespan`). The essential chain is what must
happen in order whatever the implementation (bench/render_bench.py `ESSENTIAL_CHAIN`); its time is
the sum of its steps' durations (`essential_seconds`). The gap between the two is time lost to
false serialisation.

The durations are estimates for a home LAN with a ~100 Mbit/s uplink, not measurements; where an
upstream default bounds a wait, the source says which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from homelab import graph
from homelab.engine import Render, ResourceRecord


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str


API_CALL: Final = Estimate(1, "one API call, no await (pulumi-kubernetes creates and moves on)")
TYPE_ESTIMATES: Final[dict[str, Estimate]] = {
    "talos:machine/secrets:Secrets": Estimate(1, "key generation on the workstation, no network"),
    "talos:machine/configurationApply:ConfigurationApply": Estimate(
        240,
        "first apply to a maintenance-mode node: installer image pull, install to disk, reboot "
        "into the installed Talos (create timeout 10 min, terraform-provider-talos v0.11.0)",
    ),
    "talos:machine/bootstrap:Bootstrap": Estimate(
        150,
        "etcd bootstrap, then the control-plane static pods' images pulled and started before the "
        "API answers (counted here: the next resource is the first that needs the API)",
    ),
    "talos:cluster/kubeconfig:Kubeconfig": Estimate(2, "derived from the machine secrets"),
    "pulumi:providers:kubernetes": Estimate(0, "configure only; no call until first use"),
    "random:index/randomPassword:RandomPassword": Estimate(0, "local"),
    "kubernetes:apps/v1:Deployment": Estimate(
        30,
        "image pull and readiness; pulumi-kubernetes awaits the rollout (default timeout 10 min)",
    ),
    "kubernetes:cert-manager.io/v1:ClusterIssuer": Estimate(
        5, "ACME account registration with Let's Encrypt"
    ),
    "kubernetes:cert-manager.io/v1:Certificate": Estimate(
        120,
        "DNS-01: TXT record created, propagation checked against public resolvers, Let's Encrypt "
        "validates and issues (awaited through pulumi.com/waitFor Ready)",
    ),
}
RELEASE = "kubernetes:helm.sh/v3:Release"
RELEASE_SOURCE: Final = (
    "image pulls and readiness of every workload; helm.v3.Release waits for all (timeout 300 s)"
)
CHART_SECONDS: Final[dict[str, float]] = {
    "cert-manager": 60,  # three Deployments and the startupapicheck Job
    "grafana": 60,  # one large image (~150 MB)
    "metallb": 45,  # controller Deployment and speaker DaemonSet on every node
    "reflector": 25,
    "traefik": 30,
}
COMMAND = "command:local:Command"
# By resource name suffix: what each kind of local command waits for.
COMMAND_ESTIMATES: Final[dict[str, Estimate]] = {
    "-webhook-ready": Estimate(
        20,
        "MetalLB's cert rotator writes the serving certificate and CA bundle, then the webhook "
        "listens (metallb v0.16.1 internal/k8s/k8s.go)",
    ),
    "-crds": Estimate(10, "download and server-side apply of the CRDs, wait for Established"),
    "-key": Estimate(15, "kubectl exec into the Headscale pod, CLI answers, key minted"),
}


def estimate(record: ResourceRecord) -> Estimate:
    """The expected create duration of `record`, with its source."""
    if record.type == RELEASE:
        chart = str(record.inputs.get("chart"))
        return Estimate(CHART_SECONDS.get(chart, 45), f"{chart} chart: {RELEASE_SOURCE}")
    if record.type == COMMAND:
        for suffix, value in COMMAND_ESTIMATES.items():
            if record.name.endswith(suffix):
                return value
        return Estimate(15, "a local command talking to the cluster")
    return TYPE_ESTIMATES.get(record.type, API_CALL)


def makespan(
    edges: Mapping[str, set[str]], seconds: Mapping[str, float]
) -> tuple[float, list[str]]:
    """The finish time of the last node when each starts once all it waits for have finished,
    and the critical path leading to it (ties to the smallest key, so the answer is stable).

    `edges[node]` are the nodes `node` waits for. Raises ValueError on a cycle.
    """
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    visiting: set[str] = set()

    def visit(node: str) -> float:
        if node in finish:
            return finish[node]
        stack: list[tuple[str, bool]] = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if current in finish:
                continue
            before = sorted(edges.get(current, set()))
            if not expanded:
                if current in visiting:
                    raise ValueError(f"dependency cycle through {current}")
                visiting.add(current)
                stack.append((current, True))
                stack.extend((b, False) for b in reversed(before) if b not in finish)
                continue
            visiting.discard(current)
            start, latest = 0.0, None
            for candidate in before:
                if candidate not in finish:
                    raise ValueError(f"dependency cycle through {candidate}")
                if finish[candidate] > start:
                    start, latest = finish[candidate], candidate
            finish[current] = start + seconds.get(current, 0.0)
            previous[current] = latest
        return finish[node]

    for node in sorted(edges):
        visit(node)
    if not finish:
        return 0.0, []
    end = min(finish, key=lambda n: (-finish[n], n))
    path: list[str] = []
    current: str | None = end
    while current is not None:
        path.append(current)
        current = previous[current]
    return finish[end], list(reversed(path))


@dataclass(frozen=True)
class Schedule:
    """The modelled first `up`: its makespan and critical path (records with finish times)."""

    seconds: float
    critical_path: list[tuple[ResourceRecord, Estimate, float]]


def first_up(render: Render) -> Schedule:
    edges = graph.waits_for(render)
    records = {r.urn: r for r in render.resources if r.custom}
    estimates = {urn: estimate(record) for urn, record in records.items()}
    total, path = makespan(edges, {urn: e.seconds for urn, e in estimates.items()})
    finish, _ = 0.0, None
    timed: list[tuple[ResourceRecord, Estimate, float]] = []
    for urn in path:
        finish += estimates[urn].seconds
        timed.append((records[urn], estimates[urn], finish))
    return Schedule(total, timed)


# The essential chain's steps (render_bench.ESSENTIAL_CHAIN), each as the records that carry it out;
# a step takes as long as its slowest record (e.g. the node installs run in parallel).
EssentialStep = tuple[str, Callable[[ResourceRecord], bool]]
ESSENTIAL_STEPS: Final[tuple[EssentialStep, ...]] = (
    ("cluster", lambda r: r.type.startswith("talos:")),
    ("Kubernetes API", lambda r: r.type == "kubernetes:core/v1:Namespace"),
    ("charts", lambda r: r.type == RELEASE and r.inputs.get("chart") == "cert-manager"),
    ("issuer", lambda r: r.type == "kubernetes:cert-manager.io/v1:ClusterIssuer"),
    ("certificate", lambda r: r.type == "kubernetes:cert-manager.io/v1:Certificate"),
    ("Headscale", lambda r: r.type == "kubernetes:apps/v1:Deployment" and "headscale" in r.name),
    ("pre-auth key", lambda r: r.type == COMMAND and r.name.endswith("router-key")),
    (
        "subnet router",
        lambda r: r.type == "kubernetes:apps/v1:Deployment" and "subnet-router" in r.name,
    ),
)
TALOS_SEQUENCE: Final = (
    "talos:machine/secrets:Secrets",
    "talos:machine/configurationApply:ConfigurationApply",
    "talos:machine/bootstrap:Bootstrap",
    "talos:cluster/kubeconfig:Kubeconfig",
)


def essential_seconds(render: Render) -> list[tuple[str, float]]:
    """Each essential step with its modelled duration (Talos' own steps run one after another)."""
    customs = [r for r in render.resources if r.custom]
    steps: list[tuple[str, float]] = []
    for label, carries in ESSENTIAL_STEPS:
        matching = [r for r in customs if carries(r)]
        if label == "cluster":
            seconds = sum(
                max((estimate(r).seconds for r in matching if r.type == t), default=0.0)
                for t in TALOS_SEQUENCE
            )
        else:
            seconds = max((estimate(r).seconds for r in matching), default=0.0)
        steps.append((label, seconds))
    return steps
