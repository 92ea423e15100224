"""Every pinned version of the stack, in one place.

Renovate reads this file (see renovate.json) so a bump arrives as one reviewable pull request.
Sources for each pin: ../shared/reference/components.md section 0.
"""

from __future__ import annotations

from typing import Final

# Talos Linux. The installer image follows this pin, and a bump rolls the nodes one at a time
# (components/cluster/upgrade.py). The machine-config contract does not: it stays where the
# cluster was created (`cluster.talosConfigContract`, config/model.py INITIAL_TALOS_CONFIG_CONTRACT).
# renovate: talos-installer (bumped from the tags of TALOS_INSTALLER_IMAGE, which are Talos versions)
TALOS_VERSION: Final = "v1.13.9"
# Talos v1.13.9 ships Kubernetes 1.36.3 (siderolabs/talos hack/release.toml @ v1.13.9).
# renovate: datasource=docker depName=ghcr.io/siderolabs/kubelet extractVersion=^v(?<version>.+)$
KUBERNETES_VERSION: Final = "1.36.3"
# talosctl for the in-cluster etcd snapshot, tagged with the cluster's Talos version like the
# installer, so the client is always the cluster's own (the image is `FROM scratch`, entrypoint
# /talosctl: siderolabs/talos@v1.13.9:Dockerfile target `talosctl`).
TALOSCTL_IMAGE: Final = "ghcr.io/siderolabs/talosctl"
TALOS_INSTALLER_IMAGE: Final = "ghcr.io/siderolabs/installer"

# Helm charts: (repository, chart, version).
# renovate: datasource=helm depName=metallb
METALLB_CHART_REPO: Final = "https://metallb.github.io/metallb"
METALLB_CHART_VERSION: Final = "0.16.1"
# Traefik's CRDs are applied from this chart version's own crds/ folder (components/platform/traefik.py;
# the traefik-crds chart is deprecated), so a bump of this pin brings its CRDs.
# renovate: datasource=helm depName=traefik
TRAEFIK_CHART_REPO: Final = "https://traefik.github.io/charts"
TRAEFIK_CHART_VERSION: Final = "41.3.0"
# cert-manager chart versions carry a leading "v" (components.md section 7).
# renovate: datasource=helm depName=cert-manager
CERT_MANAGER_CHART_REPO: Final = "https://charts.jetstack.io"
CERT_MANAGER_CHART_VERSION: Final = "v1.21.1"
# renovate: datasource=helm depName=reflector
REFLECTOR_CHART_REPO: Final = "https://emberstack.github.io/helm-charts"
REFLECTOR_CHART_VERSION: Final = "10.0.63"
# Storage: local-path-provisioner v0.0.37 is the newest release tag (rancher/local-path-provisioner
# @ v0.0.37 (49b2be8e) : deploy/local-path-storage.yaml uses this image); its helper pod runs busybox,
# pinned here instead of upstream's untagged `docker.io/library/busybox`.
# renovate: datasource=docker
LOCAL_PATH_PROVISIONER_IMAGE: Final = "docker.io/rancher/local-path-provisioner:v0.0.37"
# renovate: datasource=docker
LOCAL_PATH_HELPER_IMAGE: Final = "docker.io/library/busybox:1.37.0"
# Grafana's chart moved from grafana/helm-charts (deprecated at 10.5.15, 2026-01-30) to
# grafana-community/helm-charts; 12.11.1 is its newest tag (charts/grafana/Chart.yaml, app 13.2.0).
# renovate: datasource=helm depName=grafana
GRAFANA_CHART_REPO: Final = "https://grafana-community.github.io/helm-charts"
GRAFANA_CHART_VERSION: Final = "12.11.1"

# Container images.
# Headscale 0.28.0 + Headplane 0.6.3 is the only pair a stable Headplane declares support for
# (components.md section 0, "Headscale <-> Headplane compatibility decision").
# renovate: datasource=docker
HEADSCALE_IMAGE: Final = "docker.io/headscale/headscale:0.28.0"
# renovate: datasource=docker
HEADPLANE_IMAGE: Final = "ghcr.io/tale/headplane:0.6.3"
# renovate: datasource=docker
TAILSCALE_IMAGE: Final = "ghcr.io/tailscale/tailscale:v1.102.3"

# Backups (config `backups`). Litestream v0.5.16 is the newest tag (benbjohnson/litestream
# @ v0.5.16, 2026-08-04); its release workflow publishes `litestream/litestream:<version>`
# without the leading "v" (.github/workflows/release.docker.yml, docker/metadata-action semver).
# renovate: datasource=docker
LITESTREAM_IMAGE: Final = "docker.io/litestream/litestream:0.5.16"
# rclone copies etcd snapshots to the target and prunes old ones (Alpine-based, so `sh` is there:
# rclone/rclone@v1.75.0:Dockerfile); published as ghcr.io/rclone/rclone:<version>.
# renovate: datasource=docker
RCLONE_IMAGE: Final = "ghcr.io/rclone/rclone:1.75.0"
