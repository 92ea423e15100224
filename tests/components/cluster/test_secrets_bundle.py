"""The `talosSecrets` stack output: talosctl's secrets.yaml, secret, from the protected bundle."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.components.remote_access.remote_access import key_paths
from tests.harness import PROJECT_ROOT, homelab_render, render_stack

# Every key of the bundle talosctl writes and reads, as in its own fixture
# (siderolabs/talos@v1.13.9:pkg/machinery/config/generate/secrets/testdata/secrets.yaml; the
# Bundle structs have no yaml tags, so go-yaml lowercases the Go field names: secrets.go).
UPSTREAM_BUNDLE_KEYS = frozenset(
    {
        "cluster.id",
        "cluster.secret",
        "secrets.bootstraptoken",
        "secrets.secretboxencryptionsecret",
        "trustdinfo.token",
        "certs.etcd.crt",
        "certs.etcd.key",
        "certs.k8s.crt",
        "certs.k8s.key",
        "certs.k8saggregator.crt",
        "certs.k8saggregator.key",
        "certs.k8sserviceaccount.key",
        "certs.os.crt",
        "certs.os.key",
    }
)
# Only set by bundles of Talos < 1.3 contracts (secrets.go `AESCBCEncryptionSecret`, omitempty).
OPTIONAL_KEYS = frozenset({"secrets.aescbcencryptionsecret"})


def exported_bundle() -> dict[str, Any]:
    document = yaml.safe_load(str(homelab_render().outputs["talosSecrets"]))
    assert isinstance(document, dict)
    return document


def provider_secrets() -> dict[str, Any]:
    (secrets,) = [
        r for r in homelab_render().resources if r.type == "talos:machine/secrets:Secrets"
    ]
    value = secrets.outputs["machineSecrets"]
    assert isinstance(value, dict)
    return value


def test_the_export_has_exactly_the_keys_talosctl_reads() -> None:
    keys = key_paths(exported_bundle())
    assert UPSTREAM_BUNDLE_KEYS <= keys <= UPSTREAM_BUNDLE_KEYS | OPTIONAL_KEYS


def test_each_value_is_the_providers_own_base64_text_in_its_place() -> None:
    """The provider stores `bytesToBase64(bundle.Certs.X.Crt)` as `cert` (terraform-provider-talos
    @v0.11.0:pkg/talos/util.go `secretsBundleTomachineSecrets`) and talosctl writes base64 of the
    same bytes as `crt` (siderolabs/crypto x509 `MarshalYAML`): the text moves unchanged."""
    bundle, provider = exported_bundle(), provider_secrets()
    certs = provider["certs"]
    for ours, theirs in [
        ("etcd", "etcd"),
        ("k8s", "k8s"),
        ("k8saggregator", "k8sAggregator"),
        ("os", "os"),
    ]:
        assert bundle["certs"][ours] == {"crt": certs[theirs]["cert"], "key": certs[theirs]["key"]}
    assert bundle["certs"]["k8sserviceaccount"] == {"key": certs["k8sServiceaccount"]["key"]}
    assert bundle["cluster"] == provider["cluster"]
    assert bundle["secrets"]["bootstraptoken"] == provider["secrets"]["bootstrapToken"]
    assert (
        bundle["secrets"]["secretboxencryptionsecret"]
        == provider["secrets"]["secretboxEncryptionSecret"]
    )
    assert bundle["trustdinfo"] == provider["trustdinfo"]
    # Distinct values: a swapped pair would not go unnoticed.
    assert len({bundle["certs"][k]["key"] for k in ("etcd", "k8s", "k8saggregator", "os")}) == 4


def test_the_export_is_a_secret_with_or_without_a_backup_target() -> None:
    assert homelab_render().output_is_secret("talosSecrets")
    nfs = render_stack(overrides={"backups": {"nfs": {"server": "nas.lan", "path": "/b"}}})
    assert nfs.output_is_secret("talosSecrets")


def test_the_bundle_it_comes_from_is_protected_on_the_homelab_and_not_on_a_lab() -> None:
    def secrets_protected(stack: str) -> bool:
        render = homelab_render() if stack == "homelab" else render_stack("lab")
        (secrets,) = [r for r in render.resources if r.type == "talos:machine/secrets:Secrets"]
        return secrets.protect

    assert secrets_protected("homelab")
    assert not secrets_protected("lab")


# --- the runbook names what the program creates -----------------------------------------------

OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"


def test_the_runbooks_import_file_names_the_programs_own_secrets_and_parent() -> None:
    """`pulumi import` adopts a resource under the URN given by type, name and parent; the
    program then finds it only if all three match what it registers."""
    text = OPERATIONS.read_text()
    start = text.index("cat > import.json <<'EOF'\n") + len("cat > import.json <<'EOF'\n")
    document = json.loads(text[start : text.index("\n   EOF", start)])
    render = homelab_render()
    by_name = {r.name: r for r in render.resources}
    for entry in document["resources"]:
        record = by_name[entry["name"]]
        assert record.type == entry["type"]
        assert record.custom is not entry.get("component", False)
        if "parent" in entry:
            assert record.parent == by_name[entry["parent"]].urn
    secrets = next(e for e in document["resources"] if e["type"].startswith("talos:"))
    assert by_name[secrets["name"]].protect, (
        "the adopted bundle must be protected like the original"
    )


def test_every_urn_in_the_runbooks_is_one_the_program_registers() -> None:
    # The root stack's type is not part of a URN's type chain: the children's URNs in this very
    # render start at `homelab:talos:Cluster$...`; only the mock's own URN for a top-level
    # component keeps the `pulumi:pulumi:Stack$` prefix, which a real state does not have.
    urns = {r.urn.replace("::pulumi:pulumi:Stack$", "::") for r in homelab_render().resources}
    quoted = re.findall(r"'(urn:pulumi:[^']+)'", OPERATIONS.read_text())
    parents = re.findall(r"=(urn:pulumi:[^']+)'", OPERATIONS.read_text())
    assert quoted or parents
    for urn in quoted + parents:
        assert urn in urns, urn
