"""Commands that run `kubectl` on the workstation where Pulumi's own resources cannot do the job.

Each is a `pulumi_command.local.Command` running one of the programs (needs `kubectl` and
`python3`, like the key minting in components/remote_access/keys.py): programs/webhook_gate.py,
programs/crd_apply.py, programs/crd_gate.py, made into the Command's text by programs/build.py.
The program writes the kubeconfig (a secret, handed over in the environment) to a 0600 temp file
under umask 077, deletes it afterwards and never prints it.

- `webhook_gate`: wait until a validating admission webhook really answers. A chart's Release
  being ready says its Deployments are, not that their webhook serves. MetalLB's controller
  reports ready (`/readyz` is a plain ping) before its webhook listens, which happens only after
  its certificate rotator has written the serving certificate and the CA bundle
  (metallb/metallb@v0.16.1:internal/k8s/k8s.go `startListeners`, internal/k8s/webhook.go). Its
  webhooks fail closed (`failurePolicy: Fail`), so an object created in that window is refused
  with "failed calling webhook", which pulumi-kubernetes does not retry: the first `up` of a fresh
  cluster fails (metallb #1597, #1697, #2566). The gate submits the object about to be created as
  a server-side dry run (`kubectl apply --dry-run=server`: admission webhooks with
  `sideEffects: None` are called, nothing is stored), retries while the webhook cannot be called,
  a bounded number of times, then fails with a message that says so; a webhook that answers and
  denies the object fails it at once (a real config error, waiting would not fix it).
- `apply_crds`: server-side apply CustomResourceDefinitions from pinned URLs and wait until each
  is Established, the way traefik/traefik-helm-chart@v41.3.0:README.md upgrades them
  (`helm show crds ... | kubectl apply --server-side --force-conflicts -f -`); Helm itself
  installs a chart's `crds/` once and never upgrades them.
- `crd_established_gate`: wait until a CRD someone else installs (Talos applies its own manifests
  asynchronously) exists and is Established, so a custom resource of it created in the same `up`
  is not refused with "no matches for kind". kubectl's `get --ignore-not-found -o json` prints
  nothing and exits 0 for a missing object (kubernetes/kubectl `pkg/cmd/get/get.go`
  `printGeneric`), and the CRD reports `status.conditions[]` entries `{type, status}` with
  `Established` / `"True"` once it serves (kubernetes/kubernetes
  `staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1/types.go`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Final

import pulumi
import pulumi_command as command

from programs import crd_apply, crd_gate
from programs import webhook_gate as webhook_gate_program
from programs.build import INTERPRETER, environment, program_text

KUBECONFIG_ENV: Final = "HOMELAB_KUBECONFIG"
# 60 x 5 s: MetalLB's rotator normally finishes within a minute of the controller starting.
GATE_ATTEMPTS: Final = 60
GATE_RETRY_DELAY_SECONDS: Final = 5
# A webhook that answered and refused the object: kube-apiserver's admission error
# ("admission webhook \"...\" denied the request: ...").
DENIED_MARKER: Final = "denied the request"
CRD_ATTEMPTS: Final = 5
CRD_RETRY_DELAY_SECONDS: Final = 10
CRD_ESTABLISHED_TIMEOUT: Final = "120s"
# Field manager of the CRD apply: its own, so a later `helm upgrade`-style apply does not fight it.
CRD_FIELD_MANAGER: Final = "homelab-crds"
# Resource names of these commands end with one of these (the render contracts tell them apart
# from the key-minting commands by it).
GATE_SUFFIX: Final = "-webhook-ready"
CRDS_SUFFIX: Final = "-crds"
CRD_GATE_SUFFIX: Final = "-crd-established"
# 60 x 5 s: five minutes for the installer to act after the config apply, kube-apiserver still
# coming up included (Talos's manifest apply waits for etcd and the API, then applies:
# talos@v1.13.9:internal/app/machined/pkg/controllers/k8s/manifest_apply.go). A bound, not a measurement.
CRD_GATE_ATTEMPTS: Final = 60
CRD_GATE_RETRY_DELAY_SECONDS: Final = 5


def gate_script(
    manifest: Mapping[str, Any],
    *,
    webhook: str,
    attempts: int = GATE_ATTEMPTS,
    retry_delay_seconds: int = GATE_RETRY_DELAY_SECONDS,
) -> str:
    """The program of a webhook gate."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    metadata = manifest.get("metadata") or {}
    return program_text(
        webhook_gate_program,
        webhook_gate_program.Params(
            attempts=attempts,
            denied_marker=DENIED_MARKER,
            kubeconfig_env=KUBECONFIG_ENV,
            manifest=json.dumps(manifest, sort_keys=True),
            namespace=str(metadata.get("namespace", "")),
            program="webhook gate",
            retry_delay_seconds=retry_delay_seconds,
            webhook=webhook,
        ),
    )


def crds_script(
    urls: Sequence[str],
    names: Sequence[str],
    *,
    attempts: int = CRD_ATTEMPTS,
    retry_delay_seconds: int = CRD_RETRY_DELAY_SECONDS,
) -> str:
    """The program that applies the CRDs at `urls` and waits for `names` to be Established."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if not urls or len(urls) != len(names):
        raise ValueError("one CRD name per URL, at least one")
    return program_text(
        crd_apply,
        crd_apply.Params(
            attempts=attempts,
            field_manager=CRD_FIELD_MANAGER,
            kubeconfig_env=KUBECONFIG_ENV,
            names=list(names),
            program="CRDs",
            retry_delay_seconds=retry_delay_seconds,
            timeout=CRD_ESTABLISHED_TIMEOUT,
            urls=list(urls),
        ),
    )


def crd_gate_script(
    crd_name: str,
    *,
    hint: str,
    attempts: int = CRD_GATE_ATTEMPTS,
    retry_delay_seconds: int = CRD_GATE_RETRY_DELAY_SECONDS,
) -> str:
    """The program that waits until the CRD `crd_name` exists and is Established; `hint` ends
    its failure message (who installs the CRD and what to check)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    return program_text(
        crd_gate,
        crd_gate.Params(
            attempts=attempts,
            crd=crd_name,
            hint=hint,
            kubeconfig_env=KUBECONFIG_ENV,
            program="CRD gate",
            retry_delay_seconds=retry_delay_seconds,
        ),
    )


def _command(
    name: str,
    program: ModuleType,
    script: str,
    *,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    triggers: Sequence[str] = (),
) -> command.local.Command:
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
    return command.local.Command(
        name,
        create=script,
        # A changed text (a new pin, another object, a changed program) or kubeconfig runs it again.
        update=script,
        interpreter=list(INTERPRETER),
        environment={**environment(program), KUBECONFIG_ENV: secret_kubeconfig},
        logging=command.local.Logging.STDERR,
        # A change here runs the command again (as a replacement).
        triggers=list(triggers) or None,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def webhook_gate(
    name: str,
    manifest: Mapping[str, Any],
    *,
    webhook: str,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    triggers: Sequence[str] = (),
) -> command.local.Command:
    """A Command that finishes once `webhook` admits `manifest` in a server-side dry run.

    `triggers` (e.g. the chart version) re-run it when the webhook's server is replaced, so the
    objects created in the same `up` wait for the new one too.
    """
    if not name.endswith(GATE_SUFFIX):
        raise ValueError(f"a webhook gate's name ends with {GATE_SUFFIX!r}")
    return _command(
        name,
        webhook_gate_program,
        gate_script(manifest, webhook=webhook),
        kubeconfig=kubeconfig,
        parent=parent,
        depends_on=depends_on,
        triggers=triggers,
    )


def apply_crds(
    name: str,
    urls: Sequence[str],
    names: Sequence[str],
    *,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> command.local.Command:
    """A Command that server-side applies the CRDs at `urls` and waits until they are Established."""
    if not name.endswith(CRDS_SUFFIX):
        raise ValueError(f"a CRD command's name ends with {CRDS_SUFFIX!r}")
    return _command(
        name,
        crd_apply,
        crds_script(urls, names),
        kubeconfig=kubeconfig,
        parent=parent,
        depends_on=depends_on,
    )


def crd_established_gate(
    name: str,
    crd_name: str,
    *,
    hint: str,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """A Command that finishes once the CRD `crd_name`, installed by something other than this
    program, exists and is Established. `depends_on` is whatever makes that installer act."""
    if not name.endswith(CRD_GATE_SUFFIX):
        raise ValueError(f"a CRD gate's name ends with {CRD_GATE_SUFFIX!r}")
    return _command(
        name,
        crd_gate,
        crd_gate_script(crd_name, hint=hint),
        kubeconfig=kubeconfig,
        parent=parent,
        depends_on=depends_on,
    )
