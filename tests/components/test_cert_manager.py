"""cert-manager: CRDs from the chart, the DNS-01 ClusterIssuer and the reflected wildcard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from homelab import engine
from homelab.engine import Render, ResourceRecord
from tests.contracts import component_records, depends_on, validate_helm_values, validate_objects
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config, with_changes

CERT_MANAGER = "homelab:platform:CertManager"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
LETS_ENCRYPT = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
TOKEN = engine.SENTINEL_SECRETS["dnsApiToken"]


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def render_with_tls(changes: dict[str, Any], lifecycle: str | None = None) -> Render:
    raw = stack_raw_config()
    overrides: dict[str, Any] = {"tls": with_changes(raw["tls"], changes)}
    if lifecycle is not None:
        overrides["lifecycle"] = {"environment": lifecycle}
    # A lab variant of the homelab file cannot run as the `homelab` stack.
    return render_stack("homelab", overrides=overrides, as_stack="variant" if lifecycle else None)


def token_secret(render: Render) -> ResourceRecord:
    (record,) = [r for r in component_records(render, CERT_MANAGER) if r.type == SECRET]
    return record


def paths_containing(value: Any, needle: str, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_containing(item, needle, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_containing(item, needle, f"{path}.{index}" if path else str(index))
    elif isinstance(value, str) and needle in value:
        yield path


def test_every_cert_manager_object_meets_its_schema() -> None:
    # Namespace, token Secret, ClusterIssuer, Certificate.
    assert validate_objects(component_records(homelab_render(), CERT_MANAGER)) == 4


def test_chart_is_pinned_with_its_leading_v_and_installs_its_crds() -> None:
    release = homelab_render().one(RELEASE, "cert-manager")
    assert release.input("version") == pins.CERT_MANAGER_CHART_VERSION
    assert release.input("version").startswith("v")
    values = helm_values(release)
    assert values["crds"]["enabled"] is True
    validate_helm_values("cert-manager", values)


def test_dns01_self_checks_use_only_the_configured_recursive_nameservers() -> None:
    values = helm_values(homelab_render().one(RELEASE, "cert-manager"))
    configured = homelab_config().tls.recursive_nameservers
    assert values["dns01RecursiveNameservers"].split(",") == configured
    assert values["dns01RecursiveNameserversOnly"] is True
    custom = render_with_tls({"recursiveNameservers": ["9.9.9.9:53"]})
    assert helm_values(custom.one(RELEASE, "cert-manager"))["dns01RecursiveNameservers"] == (
        "9.9.9.9:53"
    )


def test_token_secret_is_in_the_cluster_resource_namespace_and_stays_secret() -> None:
    render = homelab_render()
    secret = token_secret(render)
    # A ClusterIssuer reads its secrets from cert-manager's own namespace (components.md 7 #2).
    assert secret.input("metadata.namespace") == render.one(RELEASE, "cert-manager").input(
        "namespace"
    )
    assert list(paths_containing(secret.inputs, TOKEN)) == ["stringData.api-token"]
    assert secret.is_secret("stringData.api-token")


def test_the_dns_token_never_appears_outside_a_secret() -> None:
    render = homelab_render()
    found = 0
    for record in render.resources:
        for path in paths_containing(record.inputs, TOKEN):
            found += 1
            assert record.is_secret(path), f"{record.type} {record.name} leaks it at {path}"
    assert found >= 1
    assert not list(paths_containing(render.outputs, TOKEN))
    for component in render.component_outputs.values():
        assert not list(paths_containing(component, TOKEN))


def test_issuer_solves_dns01_with_the_token_secret() -> None:
    render = homelab_render()
    secret = token_secret(render)
    (solver,) = render.one(ISSUER).input("spec.acme.solvers")
    reference = solver["dns01"]["cloudflare"]["apiTokenSecretRef"]
    assert reference["name"] == secret.input("metadata.name")
    assert reference["key"] in secret.input("stringData")
    assert solver["selector"]["dnsZones"] == [homelab_config().domain]


def test_homelab_uses_lets_encrypt_production_and_a_lab_uses_staging() -> None:
    assert homelab_render().one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["production"]
    lab = render_with_tls({}, lifecycle="lab")
    assert lab.one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["staging"]
    lab_on_production = render_with_tls({"acmeEnvironment": "production"}, lifecycle="lab")
    assert lab_on_production.one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["production"]


def test_issuer_registers_the_configured_account() -> None:
    acme = homelab_render().one(ISSUER).input("spec.acme")
    assert acme["email"] == homelab_config().tls.acme_email
    assert acme["privateKeySecretRef"]["name"]


def test_wildcard_certificate_covers_the_domain_and_every_host_under_it() -> None:
    render = homelab_render()
    certificate = render.one(CERTIFICATE)
    domain = homelab_config().domain
    assert set(certificate.input("spec.dnsNames")) == {domain, f"*.{domain}"}
    issuer = certificate.input("spec.issuerRef")
    assert issuer["kind"] == "ClusterIssuer"
    assert issuer["name"] == render.one(ISSUER).input("metadata.name")
    for host in homelab_config().exposed_hosts():
        assert host.fqdn.removesuffix("." + domain).count(".") == 0, host.fqdn


def test_issuer_and_certificate_wait_for_the_chart_and_reflector() -> None:
    render = homelab_render()
    release = render.one(RELEASE, "cert-manager")
    issuer = render.one(ISSUER)
    certificate = render.one(CERTIFICATE)
    assert depends_on(issuer, release)
    assert depends_on(issuer, token_secret(render))
    assert depends_on(certificate, release)
    assert depends_on(certificate, issuer)
    # Reflector must watch before the annotated Secret appears (components.md 8 #4).
    assert depends_on(certificate, render.one(RELEASE, "reflector"))
