"""The versions the Kubernetes step compares with its target: the kube-system pods upgrade-k8s
reads them from (label k8s-app=<name>, container <name>, the image tag:
siderolabs/talos@v1.13.9: pkg/cluster/kubernetes/detect.go `DetectLowestVersion`) and the
kubelets' `status.nodeInfo.kubeletVersion`."""

from __future__ import annotations

from typing import Any

from components.cluster import upgrade
from programs import kubernetes_upgrade


def pod(app: str, name: str, image: str, container: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"k8s-app": app}},
        "spec": {"containers": [{"name": container or app, "image": image}]},
    }


def test_each_component_and_kubelet_with_its_version() -> None:
    pods = {
        "items": [
            pod("kube-apiserver", "kube-apiserver-cp-1", "registry.k8s.io/kube-apiserver:v1.36.3"),
            pod(
                "kube-proxy",
                "kube-proxy-x",
                "registry.k8s.io/kube-proxy:v1.36.2@sha256:0123456789abcdef",
            ),
            pod("coredns", "coredns-y", "registry.k8s.io/coredns/coredns:v1.12.0"),
            pod("kube-scheduler", "kube-scheduler-cp-1", "scheduler:v1.36.3", container="sidecar"),
            pod("kube-controller-manager", "kcm-cp-1", "registry.k8s.io/kube-controller-manager"),
        ]
    }
    nodes = {
        "items": [
            {"metadata": {"name": "cp-1"}, "status": {"nodeInfo": {"kubeletVersion": "v1.36.1"}}}
        ]
    }
    versions = kubernetes_upgrade.component_versions(
        pods, nodes, list(upgrade.KUBERNETES_COMPONENTS)
    )
    assert versions == {
        "kube-apiserver kube-apiserver-cp-1": "1.36.3",
        "kube-proxy kube-proxy-x": "1.36.2",
        "kubelet cp-1": "1.36.1",
    }
