"""Every Kubernetes object lives and dies with the cluster: the stack's provider, `deleted_with`
the Talos cluster (components/shared/common.py ClusterAccess.opts; peers.md "What users trip over" 9).

CrossGuard cannot see `deleted_with` (PolicyResourceOptions has no such field), so this is a test
over the recorded options rather than a policy; the provider half is also the policy
`kubernetes-explicit-provider`."""

from __future__ import annotations

from homelab.engine import Render
from tests.harness import homelab_render
from tests.synthetic import record, render_of

CLUSTER = "homelab:talos:Cluster"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"


def cluster_anchor(render: Render) -> str:
    """The URN whose deletion means the cluster is gone: the cluster component's Bootstrap
    (components/cluster/talos.py explains the choice: it goes exactly when its cluster is torn down)."""
    cluster = render.one(CLUSTER).urn
    (bootstrap,) = [r for r in render.by_type(BOOTSTRAP) if r.parent == cluster]
    return bootstrap.urn


def objects_outliving_the_cluster(render: Render) -> list[str]:
    """Kubernetes custom resources (not providers) not `deleted_with` the cluster."""
    cluster = cluster_anchor(render)
    return [
        f"{r.type} {r.name}"
        for r in render.resources
        if r.custom and r.type.startswith("kubernetes:") and r.deleted_with != cluster
    ]


def test_every_kubernetes_object_of_the_homelab_is_deleted_with_the_cluster() -> None:
    assert objects_outliving_the_cluster(homelab_render()) == []


def test_an_object_without_deleted_with_is_reported() -> None:
    cluster = record(CLUSTER, "cluster", custom=False)
    bootstrap = record(BOOTSTRAP, "cluster-bootstrap", parent=cluster)
    provider = record("pulumi:providers:kubernetes", "cluster-kubernetes", parent=cluster)
    tied = record("kubernetes:core/v1:Namespace", "tied", provider=provider, deleted_with=bootstrap)
    on_component = record(
        "kubernetes:core/v1:Namespace", "on-component", provider=provider, deleted_with=cluster
    )
    loose = record("kubernetes:helm.sh/v3:Release", "loose", provider=provider)
    render = render_of([cluster, bootstrap, provider, tied, on_component, loose])
    assert objects_outliving_the_cluster(render) == [
        "kubernetes:core/v1:Namespace on-component",
        "kubernetes:helm.sh/v3:Release loose",
    ]
