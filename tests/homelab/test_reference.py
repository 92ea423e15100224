"""`python -m homelab fetch-reference`: which upstream URLs at which versions, and where each file
lands, driven by a fake downloader (this machine reaches no upstream release server)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from config import pins
from homelab import cli, reference
from tests import harness
from tests.harness import reference_dir


def _crd(group: str, kind: str, plural: str, versions: dict[str, bool]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": plural},
                "versions": [
                    {
                        "name": name,
                        "served": served,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-version": name}},
                    }
                    for name, served in versions.items()
                ],
            },
        }
    )


def _chart_archive(name: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for relative, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{relative}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeUpstream:
    """Answers the chart indexes, chart archives, CRD streams and raw files; records each URL."""

    def __init__(self) -> None:
        self.requested: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.requested.append(url)
        if url.endswith("/index.yaml"):
            repository = url.removesuffix("/index.yaml")
            name, version = next(
                (c.name, c.version) for c in reference.sources()
                if isinstance(c, reference.Chart) and c.repository.rstrip("/") == repository
            )  # fmt: skip
            # One repository answers with a relative URL, as Helm's index allows.
            archive = f"{name}-{version}.tgz"
            entry_url = archive if name == "reflector" else f"{repository}/charts/{archive}"
            index = {"entries": {name: [{"version": "0.0.1", "urls": ["old.tgz"]},
                                        {"version": version, "urls": [entry_url]}]}}  # fmt: skip
            return yaml.safe_dump(index).encode()
        if url.endswith(".tgz"):
            name = url.rpartition("/")[2].rsplit("-", 1)[0]
            files = {
                "values.yaml": f"chart: {name}\n",
                "values.schema.json": "{}",
                "templates/deployment.yaml": "kind: Deployment\n",
            }
            if name == "traefik":
                files["crds/traefik.io_ingressroutes.yaml"] = _crd(
                    "traefik.io", "IngressRoute", "ingressroutes", {"v1alpha1": True}
                )
            return _chart_archive(name, files)
        if url.endswith(("metallb-native.yaml", "cert-manager.crds.yaml")):
            group = "metallb.io" if "metallb" in url else "cert-manager.io"
            kind = "BGPPeer" if "metallb" in url else "Certificate"
            stream = [
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
                _crd(group, kind, "things", {"v1beta1": True, "v1beta2": True, "v1alpha0": False}),
            ]
            return "---\n".join(stream).encode()
        return f"from {url}\n".encode()


def test_the_urls_are_the_upstream_releases_at_the_pinned_versions(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    reference.fetch_all(tmp_path, fetch=upstream)
    raw = "https://raw.githubusercontent.com"
    headscale = pins.HEADSCALE_IMAGE.rpartition(":")[2]
    expected = {
        # Each chart through its repository's index, then the archive the index names.
        f"{pins.METALLB_CHART_REPO}/index.yaml",
        f"{pins.METALLB_CHART_REPO}/charts/metallb-{pins.METALLB_CHART_VERSION}.tgz",
        f"{pins.TRAEFIK_CHART_REPO}/index.yaml",
        f"{pins.TRAEFIK_CHART_REPO}/charts/traefik-{pins.TRAEFIK_CHART_VERSION}.tgz",
        f"{pins.CERT_MANAGER_CHART_REPO}/index.yaml",
        f"{pins.CERT_MANAGER_CHART_REPO}/charts/cert-manager-{pins.CERT_MANAGER_CHART_VERSION}.tgz",
        f"{pins.REFLECTOR_CHART_REPO}/index.yaml",
        f"{pins.REFLECTOR_CHART_REPO}/reflector-{pins.REFLECTOR_CHART_VERSION}.tgz",
        # MetalLB's install manifest (its CRDs) at the tag of the chart version.
        f"{raw}/metallb/metallb/v{pins.METALLB_CHART_VERSION}/config/manifests/metallb-native.yaml",
        # cert-manager's release asset.
        "https://github.com/cert-manager/cert-manager/releases/download/"
        f"{pins.CERT_MANAGER_CHART_VERSION}/cert-manager.crds.yaml",
        # siderolabs/talos@v1.13.9:pkg/machinery/config/schemas/config.schema.json
        f"{raw}/siderolabs/talos/{pins.TALOS_VERSION}/pkg/machinery/config/schemas/config.schema.json",
        f"{raw}/juanfont/headscale/v{headscale}/config-example.yaml",
        f"{raw}/juanfont/headscale/{reference.HEADSCALE_NEXT_TAG}/config-example.yaml",
        f"{raw}/tale/headplane/v{pins.HEADPLANE_IMAGE.rpartition(':')[2]}/config.example.yaml",
        f"{raw}/tailscale/tailscale/{pins.TAILSCALE_IMAGE.rpartition(':')[2]}/docs/k8s/role.yaml",
    }
    assert set(upstream.requested) == expected
    assert len(upstream.requested) == len(expected)


def test_each_file_lands_where_the_contract_tests_read_it(tmp_path: Path) -> None:
    reference.fetch_all(tmp_path, fetch=FakeUpstream())
    root = tmp_path / "upstream"
    headscale = pins.HEADSCALE_IMAGE.rpartition(":")[2]
    for relative in (
        "metallb/chart/values.yaml",
        "metallb/chart/values.schema.json",
        "traefik/chart/values.schema.json",
        "cert-manager/chart/values.yaml",
        "reflector/chart/values.yaml",
        "talos/config.schema.json",
        f"headscale/v{headscale}/config-example.yaml",
        "headscale/config-example.yaml",
        "headplane/config.example.yaml",
        "tailscale/k8s/role.yaml",
        reference.STRICT_META_FILE,
    ):
        assert (root / relative).is_file(), relative
    assert not (root / "reflector" / "chart" / "values.schema.json").exists()
    assert not (root / "metallb" / "chart" / "templates").exists()
    # Served versions only, each its openAPIV3Schema verbatim.
    schemas = sorted(p.relative_to(root).as_posix() for p in root.rglob("crd-schemas/**/*.json"))
    assert schemas == [
        "cert-manager/crd-schemas/cert-manager.io/Certificate_v1beta1.json",
        "cert-manager/crd-schemas/cert-manager.io/Certificate_v1beta2.json",
        "metallb/crd-schemas/metallb.io/BGPPeer_v1beta1.json",
        "metallb/crd-schemas/metallb.io/BGPPeer_v1beta2.json",
        "traefik/crd-schemas/traefik.io/IngressRoute_v1alpha1.json",
    ]
    schema = json.loads((root / schemas[2]).read_text())
    assert schema == {"type": "object", "x-version": "v1beta1"}


def test_the_object_meta_schema_is_standalone_and_strict() -> None:
    meta = reference.strict_object_meta()["properties"]["metadata"]
    assert "$ref" not in json.dumps(meta)
    validator = jsonschema.Draft202012Validator(meta)
    assert list(validator.iter_errors({"name": "x", "labels": {"a": "b"}})) == []
    assert list(validator.iter_errors({"name": "x", "lables": {"a": "b"}}))


def test_the_command_fetches_into_the_ignored_cache_by_default(tmp_path: Path) -> None:
    out = io.StringIO()
    upstream = FakeUpstream()
    code = cli.main(["fetch-reference", "--dest", str(tmp_path)], out=out, fetch=upstream)
    assert code == 0
    assert out.getvalue().startswith("Fetched ")
    assert reference.CACHE_DIR.name == ".reference"
    gitignore = (reference.CACHE_DIR.parent / ".gitignore").read_text().splitlines()
    assert "/.reference/" in gitignore


@pytest.mark.parametrize(
    ("env", "shared", "expected"),
    [
        ({"HOMELAB_REFERENCE_DIR": "/elsewhere"}, True, "/elsewhere"),
        ({}, True, "shared/reference"),
        ({}, False, "project/.reference"),
    ],
)
def test_the_tests_read_the_variable_then_the_shared_folder_then_the_cache(
    tmp_path: Path, env: dict[str, str], shared: bool, expected: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    if shared:
        (tmp_path / "shared" / "reference").mkdir(parents=True)
    found = reference_dir(env, project)
    assert found == (Path(expected) if expected.startswith("/") else tmp_path / expected)


@pytest.mark.parametrize("project", ["metallb", "traefik", "cert-manager"])
def test_the_derivation_gives_the_shared_reference_schemas_from_the_same_crds(
    project: str,
) -> None:
    """The shared folder's crd-schemas were derived from its crds/ (upstream/SOURCES.md): the
    same CRD files through `crd_schemas` give the same schemas, for every served version."""
    crds = harness.reference(f"upstream/{project}/crds")
    for path in sorted(crds.glob("*.yaml")):
        for name, schema in reference.crd_schemas(path.read_text()):
            shared = harness.reference_json(f"upstream/{project}/crd-schemas/{name}")
            assert schema == shared, name
