"""`talosctl health` for exactly the configured nodes, within one overall timeout: talosctl of the
cluster's Talos minor first, the talosconfig in a private temp file, never in talosctl's
environment."""

from __future__ import annotations

from programs.runtime import credential_file, fail
from programs.talosctl import HealthParams, Talos, healthy, require_client


class Params(HealthParams):
    program: str
    releases: str
    talos_minor: str
    talosconfig_env: str


def main(params: Params) -> str:
    minor = params["talos_minor"]
    require_client(minor, params["releases"], f"the cluster runs Talos {minor}")
    with credential_file(params["talosconfig_env"], "talosconfig") as path:
        passed = healthy(params, Talos(path))
    if not passed:
        fail(
            f"the cluster is not healthy after {params['health_timeout_seconds']}s (see "
            "talosctl's messages above); fix it and run `pulumi up` again"
        )
    return "cluster healthy\n"
