"""The Talos secrets bundle as the `secrets.yaml` talosctl reads and writes.

The cluster's CAs, keys and tokens exist only in the Pulumi state (the `talos:machine/secrets:Secrets`
resource, protected on the homelab). Exported in this format (the stack output `talosSecrets`) it
is also what `talosctl gen config --with-secrets secrets.yaml` and the provider's import
(`pulumi import talos:machine/secrets:Secrets ... secrets.yaml`, terraform-provider-talos@v0.11.0:
pkg/talos/talos_machine_secrets_resource.go `ImportState`) read back: with it, a lost state can
be rebuilt onto the same cluster identity (docs/operations.md).

Shape (siderolabs/talos@v1.13.9:pkg/machinery/config/generate/secrets/secrets.go `Bundle`, read
with go.yaml.in/yaml/v4 in bundle.go `LoadBundle`): the structs carry no yaml tags, so each key is
the Go field name lowercased (`TrustdInfo` -> `trustdinfo`, `K8sAggregator` -> `k8saggregator`),
`aescbcencryptionsecret`/`secretboxencryptionsecret` are omitted when empty, and a certificate pair
is `{crt, key}` of base64 PEM (siderolabs/crypto x509 `PEMEncodedCertificateAndKey.MarshalYAML`).
The provider keeps the very same base64 text in `cert`/`key` (`bytesToBase64` in
terraform-provider-talos pkg/talos/util.go `secretsBundleTomachineSecrets`), so values are copied
as they are.
"""

from __future__ import annotations

from typing import Any

import pulumiverse_talos as talos
import yaml


def _pair(pair: talos.machine.CertificateArgs) -> dict[str, Any]:
    return {"crt": pair.cert, "key": pair.key}


def secrets_bundle(secrets: talos.machine.MachineSecretsArgs) -> dict[str, Any]:
    """The bundle document, keys in the order talosctl writes them (the struct's field order)."""
    kubernetes: dict[str, Any] = {"bootstraptoken": secrets.secrets.bootstrap_token}
    if secrets.secrets.aescbc_encryption_secret:
        kubernetes["aescbcencryptionsecret"] = secrets.secrets.aescbc_encryption_secret
    if secrets.secrets.secretbox_encryption_secret:
        kubernetes["secretboxencryptionsecret"] = secrets.secrets.secretbox_encryption_secret
    certs = secrets.certs
    return {
        "cluster": {"id": secrets.cluster.id, "secret": secrets.cluster.secret},
        "secrets": kubernetes,
        "trustdinfo": {"token": secrets.trustdinfo.token},
        "certs": {
            "etcd": _pair(certs.etcd),
            "k8s": _pair(certs.k8s),
            "k8saggregator": _pair(certs.k8s_aggregator),
            "k8sserviceaccount": {"key": certs.k8s_serviceaccount.key},
            "os": _pair(certs.os),
        },
    }


def secrets_bundle_yaml(secrets: talos.machine.MachineSecretsArgs) -> str:
    return yaml.safe_dump(secrets_bundle(secrets), sort_keys=False, default_flow_style=False)
