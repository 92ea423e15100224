"""`python -m homelab fetch-reference`: the upstream schemas and CRDs the contract tests read.

A fork has no `../shared/reference`, so without this its contract tests skip. The command fetches
exactly what they need, from the upstream release URLs at the versions of config/pins.py, into
`.reference/` (ignored by git), where tests/harness.py looks when `HOMELAB_REFERENCE_DIR` is unset
and `../shared/reference` is absent. The layout is that of the shared folder:

    upstream/<project>/chart/values.yaml, values.schema.json   from the pinned chart's archive
    upstream/<project>/crd-schemas/<group>/<Kind>_<version>.json
        each served version's openAPIV3Schema, verbatim, from the CRDs the release ships
    upstream/talos/config.schema.json, upstream/headscale/..., upstream/headplane/...,
    upstream/tailscale/k8s/role.yaml                          the files at the pinned tags
    upstream/kubernetes/standalone-strict-1.35/namespace-v1.json
        derived without a download from the strict schemas kubernetes-validate ships

Nothing here is copied into the project: the cache is a download, like a virtualenv.
"""

from __future__ import annotations

import http.client
import io
import json
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from config import pins
from homelab import engine

CACHE_DIR: Final = engine.PROJECT_ROOT / ".reference"
Downloader = Callable[[str], bytes]

RAW: Final = "https://raw.githubusercontent.com"
# The removed-keys contract compares the pinned Headscale's example config with the next
# release's (what an upgrade would drop); not a deployed version, so not in config/pins.py.
HEADSCALE_NEXT_TAG: Final = "v0.29.2"
STRICT_META_FILE: Final = "kubernetes/standalone-strict-1.35/namespace-v1.json"
KUBERNETES_VALIDATE_SCHEMAS: Final = "v1.35.0-local-strict"


def _tag(image: str) -> str:
    return image.rpartition(":")[2]


@dataclass(frozen=True)
class RawFile:
    """One file at a URL, written as is."""

    destination: str
    url: str


@dataclass(frozen=True)
class Crds:
    """A YAML stream of CustomResourceDefinitions (other documents are skipped)."""

    project: str
    url: str


@dataclass(frozen=True)
class Chart:
    """A chart archive found through its repository's index.yaml; `members` are kept, and the
    CRDs under `crds/` become schemas when `crds` is set."""

    project: str
    repository: str
    name: str
    version: str
    members: tuple[str, ...] = ("values.yaml", "values.schema.json")
    crds: bool = False


Source = RawFile | Crds | Chart


def sources() -> list[Source]:
    """What the contracts read, each from its upstream release at the pinned version."""
    headscale = _tag(pins.HEADSCALE_IMAGE)
    return [
        Chart("metallb", pins.METALLB_CHART_REPO, "metallb", pins.METALLB_CHART_VERSION),
        Crds(
            "metallb",
            f"{RAW}/metallb/metallb/v{pins.METALLB_CHART_VERSION}/config/manifests/metallb-native.yaml",
        ),
        Chart("traefik", pins.TRAEFIK_CHART_REPO, "traefik", pins.TRAEFIK_CHART_VERSION, crds=True),
        Chart(
            "cert-manager",
            pins.CERT_MANAGER_CHART_REPO,
            "cert-manager",
            pins.CERT_MANAGER_CHART_VERSION,
        ),
        Crds(
            "cert-manager",
            "https://github.com/cert-manager/cert-manager/releases/download/"
            f"{pins.CERT_MANAGER_CHART_VERSION}/cert-manager.crds.yaml",
        ),
        Chart(
            "reflector",
            pins.REFLECTOR_CHART_REPO,
            "reflector",
            pins.REFLECTOR_CHART_VERSION,
            members=("values.yaml",),
        ),
        RawFile(
            "talos/config.schema.json",
            f"{RAW}/siderolabs/talos/{pins.TALOS_VERSION}/pkg/machinery/config/schemas/config.schema.json",
        ),
        RawFile(
            f"headscale/v{headscale}/config-example.yaml",
            f"{RAW}/juanfont/headscale/v{headscale}/config-example.yaml",
        ),
        RawFile(
            "headscale/config-example.yaml",
            f"{RAW}/juanfont/headscale/{HEADSCALE_NEXT_TAG}/config-example.yaml",
        ),
        RawFile(
            "headplane/config.example.yaml",
            f"{RAW}/tale/headplane/v{_tag(pins.HEADPLANE_IMAGE)}/config.example.yaml",
        ),
        RawFile(
            "tailscale/k8s/role.yaml",
            f"{RAW}/tailscale/tailscale/{_tag(pins.TAILSCALE_IMAGE)}/docs/k8s/role.yaml",
        ),
    ]


class ReferenceFetchError(Exception):
    """A download or a write failed; the message names the URL or path and what to do."""


def download(url: str) -> bytes:
    """The real downloader (the tests pass a fake one)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
    return data


def _fetched(fetch: Downloader, url: str) -> bytes:
    """`fetch(url)`, or one line naming the URL: no network, a proxy, a moved release."""
    try:
        return fetch(url)
    except urllib.error.HTTPError as error:
        raise ReferenceFetchError(
            f"cannot download {url}: HTTP {error.code} {error.reason}; the pinned release may "
            "have moved (check config/pins.py), then run `python -m homelab fetch-reference` "
            "again"
        ) from None
    except (OSError, http.client.HTTPException) as error:
        # URLError (no DNS, refused, no route) and timeouts are OSErrors.
        reason = getattr(error, "reason", None) or error
        raise ReferenceFetchError(
            f"cannot download {url}: {reason}; check the network connection (behind a proxy, "
            "set HTTPS_PROXY), then run `python -m homelab fetch-reference` again, or point "
            "HOMELAB_REFERENCE_DIR at a copy of the reference data"
        ) from None


def _unexpected_answer(url: str, expected: str, got: str) -> ReferenceFetchError:
    """One line for an answer that is not the file asked for: behind a captive portal or a
    filtering proxy, every URL answers with the same login or block page."""
    return ReferenceFetchError(
        f"the answer from {url} was {got}, not {expected}: is a proxy or a captive portal "
        "(a hotel or guest Wi-Fi login) answering instead? Open any web page in a browser to get "
        "past it, or check HTTPS_PROXY, then run `python -m homelab fetch-reference` again"
    )


def _looks_like_html(data: bytes) -> bool:
    # None of the files fetched here (YAML, JSON, gzip archives) starts like a web page.
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def _checked(url: str, data: bytes, expected: str) -> bytes:
    if _looks_like_html(data):
        raise _unexpected_answer(url, expected, "a web page")
    return data


def _yaml_documents(url: str, data: bytes, expected: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(_checked(url, data, expected).decode()))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise _unexpected_answer(url, expected, "not YAML") from None


def crd_schemas(text: str) -> Iterator[tuple[str, Any]]:
    """(`<group>/<Kind>_<version>.json`, schema) for each served version of each CRD."""
    return _crd_schemas_of(yaml.safe_load_all(text))


def _crd_schemas_of(documents: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                schema = version["schema"]["openAPIV3Schema"]
                yield f"{spec['group']}/{spec['names']['kind']}_{version['name']}.json", schema


def _chart_url(repository: str, name: str, version: str, fetch: Downloader) -> str:
    url = f"{repository.rstrip('/')}/index.yaml"
    expected = "a Helm repository index"
    documents = _yaml_documents(url, _fetched(fetch, url), expected)
    index = documents[0] if len(documents) == 1 else None
    if not isinstance(index, dict) or not isinstance(index.get("entries", {}), dict):
        got = "YAML of another shape" if documents else "empty"
        raise _unexpected_answer(url, expected, got)
    entries = index.get("entries")
    for entry in (entries or {}).get(name) or []:
        if entry.get("version") == version and entry.get("urls"):
            url = str(entry["urls"][0])
            # Relative URLs are relative to the repository (Helm's repo index convention).
            return url if "://" in url else f"{repository.rstrip('/')}/{url}"
    raise ReferenceFetchError(
        f"chart {name} {version} is not in {repository}/index.yaml; check the pin in "
        "config/pins.py against the repository"
    )


def _write(root: Path, relative: str, data: bytes) -> Path:
    path = root / "upstream" / relative
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise ReferenceFetchError(
            f"cannot write {error.filename or path}: {error.strerror or error}; choose a "
            "writable --dest"
        ) from None
    return path


def _schema_bytes(schema: Any) -> bytes:
    return (json.dumps(schema, indent=2, sort_keys=True) + "\n").encode()


def _fetch_chart(root: Path, chart: Chart, fetch: Downloader) -> list[Path]:
    url = _chart_url(chart.repository, chart.name, chart.version, fetch)
    expected = "a chart archive (.tgz)"
    archive = _checked(url, _fetched(fetch, url), expected)
    try:
        return _unpack_chart(root, chart, archive)
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        # A write failure is a ReferenceFetchError already (`_write`): these are the archive's.
        raise _unexpected_answer(url, expected, "not a gzip'd tar archive") from None


def _unpack_chart(root: Path, chart: Chart, archive: bytes) -> list[Path]:
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            inner = member.name.partition("/")[2]  # below the chart's own folder
            data = tar.extractfile(member)
            if data is None:
                continue
            if inner in chart.members:
                written.append(_write(root, f"{chart.project}/chart/{inner}", data.read()))
            elif chart.crds and inner.startswith("crds/") and inner.endswith(".yaml"):
                for name, schema in crd_schemas(data.read().decode()):
                    destination = f"{chart.project}/crd-schemas/{name}"
                    written.append(_write(root, destination, _schema_bytes(schema)))
    return written


def strict_object_meta() -> dict[str, Any]:
    """A Namespace schema whose `metadata` is ObjectMeta with every `$ref` inlined, from the
    strict schemas kubernetes-validate ships (what the contracts read from this file)."""
    import kubernetes_validate  # the dev dependency that ships them

    folder = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / KUBERNETES_VALIDATE_SCHEMAS
    )
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]

    def inline(node: Any) -> Any:
        if isinstance(node, Mapping):
            reference = node.get("$ref")
            if isinstance(reference, str) and "#/$defs/" in reference:
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(definitions[reference.rpartition("/")[2]]), **inline(rest)}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    namespace = json.loads((folder / "namespace-v1.json").read_text())
    return {"properties": {"metadata": inline(namespace["properties"]["metadata"])}}


def fetch_all(root: Path = CACHE_DIR, fetch: Downloader = download) -> list[Path]:
    """Fetch every source into `root/upstream`; returns the files written."""
    written: list[Path] = []
    for source in sources():
        if isinstance(source, RawFile):
            data = _checked(source.url, _fetched(fetch, source.url), "the file")
            written.append(_write(root, source.destination, data))
        elif isinstance(source, Crds):
            expected = "a YAML stream of CRDs"
            documents = _yaml_documents(source.url, _fetched(fetch, source.url), expected)
            schemas = list(_crd_schemas_of(documents))
            if not schemas:
                raise _unexpected_answer(source.url, expected, "YAML without a CRD")
            for name, schema in schemas:
                destination = f"{source.project}/crd-schemas/{name}"
                written.append(_write(root, destination, _schema_bytes(schema)))
        else:
            written.extend(_fetch_chart(root, source, fetch))
    written.append(_write(root, STRICT_META_FILE, _schema_bytes(strict_object_meta())))
    return written
