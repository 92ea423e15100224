"""cert-manager: CRDs from the chart, the DNS-01 ClusterIssuer and the reflected wildcard."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from config import model, pins
from config.loader import validate_config
from config.model import HomelabConfig
from homelab import engine
from homelab.engine import Render, ResourceRecord
from tests.contracts import component_records, depends_on, validate_helm_values, validate_objects
from tests.harness import (
    helm_values,
    homelab_render,
    reference_json,
    render_stack,
    stack_raw_config,
    with_changes,
)
from tests.security.leaks import find_leaks

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


def test_homelab_and_labs_use_lets_encrypt_production_unless_staging_is_chosen() -> None:
    """tailscale/tailscale@v1.102.3:net/tlsdial/tlsdial.go `Config` (VerifyConnection: system
    roots, then extra roots, then `bakedroots.Get()`) and net/bakedroots/bakedroots.go `Get`
    (ISRG Root X1, X2, YE, YR: production roots only). The control client fetches /key through
    that config (control/controlclient/direct.go NewDirect, loadServerPubKeys), so a lab on a
    staging certificate can be joined by no device and not by the subnet router: labs default to
    production. Staging stays available, explicitly, to debug DNS-01."""
    assert homelab_render().one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["production"]
    lab = render_with_tls({}, lifecycle="lab")
    assert lab.one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["production"]
    assert lab.one(ISSUER).input("metadata.name") == "letsencrypt-production"
    lab_on_staging = render_with_tls({"acmeEnvironment": "staging"}, lifecycle="lab")
    assert lab_on_staging.one(ISSUER).input("spec.acme.server") == LETS_ENCRYPT["staging"]


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


# --- awaiting the certificate ------------------------------------------------------------------

CERTIFICATE_SCHEMA = "upstream/cert-manager/crd-schemas/cert-manager.io/Certificate_v1.json"


@dataclass(frozen=True)
class AwaitCondition:
    kind: Literal["condition", "jsonpath"]
    condition_type: str = ""
    status: str = ""


def parse_wait_for(value: str) -> list[AwaitCondition]:
    """pulumi-kubernetes's reading of `pulumi.com/waitFor` (provider/pkg/metadata/overrides.go
    ReadyCondition; condition/custom.go NewCustom): a JSON string array, else one expression;
    each must start with "jsonpath=" or "condition="; a condition is `Type` or `Type=Status`,
    the status defaulting to "True"."""
    try:
        decoded = json.loads(value)
        values = decoded if isinstance(decoded, list) else [value]
    except json.JSONDecodeError:
        values = [value]
    if not values:
        raise ValueError("at least one condition must be specified")
    parsed: list[AwaitCondition] = []
    for expression in values:
        if expression.startswith("jsonpath="):
            parsed.append(AwaitCondition("jsonpath"))
        elif expression.startswith("condition="):
            condition_type, _, status = expression.removeprefix("condition=").partition("=")
            parsed.append(AwaitCondition("condition", condition_type, status or "True"))
        else:
            raise ValueError(f'expected a "jsonpath=" or "condition=" prefix, got {expression!r}')
    return parsed


def certificate_condition_schema() -> tuple[str, str]:
    """The Certificate CRD's descriptions of `status.conditions[].type` and `.status`."""
    schema = reference_json(CERTIFICATE_SCHEMA)
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    item = conditions["items"]["properties"]
    return conditions["description"], item["status"]["description"]


def test_certificate_is_awaited_on_a_condition_cert_manager_sets() -> None:
    """pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/metadata/overrides.go `ReadyCondition`
    (no waitFor, no PULUMI_K8S_AWAIT_ALL: no wait at all for a custom resource) and
    condition/custom.go `NewCustom` + condition/kubectl.go `checkCondition` (type compared
    case-insensitively, status "True" by default); cert-manager/cert-manager@v1.21.1:
    pkg/apis/certmanager/v1/types_certificate.go `CertificateConditionReady` ("Ready"), whose CRD
    lists `Ready` and `Issuing` as the known condition types. (We pin pulumi-kubernetes 4.34.2;
    v4.32.0 is the newest tag in the mirror.)"""
    certificate = homelab_render().one(CERTIFICATE)
    annotations = certificate.input("metadata.annotations")
    (condition,) = parse_wait_for(annotations["pulumi.com/waitFor"])
    known_types, known_statuses = certificate_condition_schema()
    assert condition.kind == "condition"
    assert f"`{condition.condition_type}`" in known_types
    assert condition.condition_type.lower() == "ready"
    assert f"`{condition.status}`" in known_statuses
    assert condition.status == "True"


def test_the_wait_for_grammar_port_rejects_what_pulumi_kubernetes_rejects() -> None:
    """Guards the port above (overrides.go ReadyCondition errors), so it cannot pass everything."""
    with pytest.raises(ValueError, match="prefix"):
        parse_wait_for("Ready")
    with pytest.raises(ValueError, match="at least one"):
        parse_wait_for("[]")
    assert parse_wait_for('["condition=Ready=False", "jsonpath={.status}"]') == [
        AwaitCondition("condition", "Ready", "False"),
        AwaitCondition("jsonpath"),
    ]


def test_the_await_timeout_is_the_annotation_and_fits_dns01() -> None:
    """pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/metadata/overrides.go `TimeoutDuration`:
    the resource's customTimeouts win, else `pulumi.com/timeoutSeconds` parsed by strconv.Atoi
    (an invalid value is silently ignored and the 10-minute default of await.go applies).
    cert-manager/cert-manager@v1.21.1: internal/apis/config/controller/v1alpha1/defaults.go
    (`defaultDNS01CheckRetryPeriod` 10s) and pkg/issuer/acme/dns/cloudflare/cloudflare.go
    (TXT TTL 120): two TXT values at one name, each visible after at most a TTL plus a check,
    then validation and signing; the timeout must leave room for that several times over."""
    certificate = homelab_render().one(CERTIFICATE)
    assert certificate.custom_timeouts == {} or not any(certificate.custom_timeouts.values())
    timeout = certificate.input("metadata.annotations")["pulumi.com/timeoutSeconds"]
    assert re.fullmatch(r"[+-]?[0-9]+", timeout), "strconv.Atoi would reject it"
    dns01_worst_case = 2 * (120 + 10) + 60
    assert 2 * dns01_worst_case <= int(timeout) <= 30 * 60


def test_everything_serving_trusted_tls_waits_for_the_certificate() -> None:
    """Every IngressRoute (Headscale's, Headplane's, the apps') depends on the awaited
    Certificate, so a failed DNS-01 stops `up` there, named, and not later at the router."""
    render = homelab_render()
    certificate = render.one(CERTIFICATE)
    routes = render.by_type("kubernetes:traefik.io/v1alpha1:IngressRoute")
    assert routes
    assert [r.name for r in routes if not depends_on(r, certificate)] == []


def test_the_component_exposes_the_awaited_certificate_and_its_solver() -> None:
    render = homelab_render()
    outputs = render.component_outputs[render.one(CERT_MANAGER).urn]
    assert outputs["certificate"] == "cert-manager/wildcard"
    assert outputs["dns01Solver"] == f"DNS-01 via cloudflare in zone {homelab_config().domain}"
    assert outputs["reusesSavedCertificate"] is False


# --- reusing a saved certificate -----------------------------------------------------------------

ISSUED_CERT = "-----BEGIN CERTIFICATE-----\nSWEEP-issued-certificate\n-----END CERTIFICATE-----\n"
ISSUED_KEY = (
    "-----BEGIN EC PRIVATE KEY-----\nSWEEP-issued-private-key\n-----END EC PRIVATE KEY-----\n"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def saved(annotations: dict[str, str]) -> str:
    return json.dumps(
        {"annotations": annotations, "tls.crt": b64(ISSUED_CERT), "tls.key": b64(ISSUED_KEY)}
    )


# What cert-manager v1.21.1 writes on a Secret it issued through our production ClusterIssuer
# (pkg/controller/certificates/issuing/internal/secret.go setValues).
ISSUED_BY_PRODUCTION = {
    "cert-manager.io/certificate-name": "wildcard",
    "cert-manager.io/issuer-group": "cert-manager.io",
    "cert-manager.io/issuer-kind": "ClusterIssuer",
    "cert-manager.io/issuer-name": "letsencrypt-production",
}


def render_lab_with_saved(annotations: dict[str, str]) -> Render:
    return render_stack("lab", secrets={"wildcardCertificate": saved(annotations)})


def seeded_secret(render: Render) -> ResourceRecord:
    (record,) = [
        r
        for r in component_records(render, CERT_MANAGER)
        if r.type == SECRET and r.input("metadata.name") == "wildcard-tls"
    ]
    return record


def reissue_reason(certificate: ResourceRecord, secret: ResourceRecord | None) -> str | None:
    """The metadata half of cert-manager's trigger chain, in its order: why it would order a new
    certificate, or None when it keeps the Secret (cert-manager/cert-manager@v1.21.1:
    internal/controller/certificates/policies/policies.go `NewTriggerPolicyChain`; checks.go
    `SecretDoesNotExist`, `SecretIsMissingData`, `SecretIssuerAnnotationsMismatch` with Go's
    precedence `(ok1||ok2||ok3) && name != ref.Name || !kindsEqual || !groupsEqual` and empty
    kind/group defaulting to Issuer/cert-manager.io, `SecretCertificateNameAnnotationsMismatch`).
    The X.509 half (key matches certificate, ECDSA P-256 per spec, SANs equal spec.dnsNames, not
    past its renewal time) is decided by cert-manager on the saved bytes, which are the ones it
    wrote for this same spec."""
    if secret is None or (
        secret.input("metadata.name"),
        secret.input("metadata.namespace"),
    ) != (certificate.input("spec.secretName"), certificate.input("metadata.namespace")):
        return "DoesNotExist"
    data = secret.inputs.get("data") or {}
    if not data.get("tls.key") or not data.get("tls.crt"):
        return "MissingData"
    annotations = secret.input("metadata.annotations")
    ref = certificate.input("spec.issuerRef")
    present = any(k in annotations for k in model.ISSUER_ANNOTATIONS)
    name = annotations.get("cert-manager.io/issuer-name", "")
    kind = annotations.get("cert-manager.io/issuer-kind", "") or "Issuer"
    group = annotations.get("cert-manager.io/issuer-group", "") or "cert-manager.io"
    if (
        (present and name != ref["name"])
        or kind != (ref.get("kind") or "Issuer")
        or group != (ref.get("group") or "cert-manager.io")
    ):
        return "IncorrectIssuer"
    certificate_name = annotations.get(model.CERTIFICATE_NAME_ANNOTATION)
    if certificate_name is not None and certificate_name != certificate.input("metadata.name"):
        return "IncorrectCertificate"
    return None


def test_a_saved_certificate_is_seeded_so_cert_manager_keeps_it() -> None:
    """cert-manager/cert-manager@v1.21.1:internal/controller/certificates/policies/policies.go
    `NewTriggerPolicyChain` (see `reissue_reason`): the seeded Secret passes it, and exists
    before the Certificate, so no order is placed (Let's Encrypt: 5 certificates per exact set of
    identifiers per 7 days)."""
    render = render_lab_with_saved(ISSUED_BY_PRODUCTION)
    certificate = render.one(CERTIFICATE)
    secret = seeded_secret(render)
    assert reissue_reason(certificate, secret) is None
    assert depends_on(certificate, secret)
    assert validate_objects([secret]) == 1
    # Immutable type: cert-manager keeps the existing one (issuing/internal/secret.go).
    assert secret.input("type") == "kubernetes.io/tls"
    # cert-manager renews into it with a forced apply; Pulumi must not write the old one back.
    assert "data" in secret.ignore_changes
    assert secret.retain_on_delete
    # Reflector mirrors it at once, as it would the Secret cert-manager writes.
    template = certificate.input("spec.secretTemplate.annotations")
    assert template.items() <= secret.input("metadata.annotations").items()
    assert depends_on(secret, render.one(RELEASE, "reflector"))
    outputs = render.component_outputs[render.one(CERT_MANAGER).urn]
    assert outputs["reusesSavedCertificate"] is True


def test_the_trigger_chain_port_reissues_what_cert_manager_reissues() -> None:
    """Guards `reissue_reason` on the cases checks.go decides: no Secret, no annotations at all
    (kind "" means Issuer, not our ClusterIssuer: reissued), a staging-issued Secret under the
    production issuer, another Certificate's Secret."""
    plain = render_stack("lab")
    assert reissue_reason(plain.one(CERTIFICATE), None) == "DoesNotExist"
    unannotated = render_lab_with_saved({})
    assert reissue_reason(unannotated.one(CERTIFICATE), seeded_secret(unannotated)) == (
        "IncorrectIssuer"
    )
    from_staging = render_lab_with_saved(
        {**ISSUED_BY_PRODUCTION, "cert-manager.io/issuer-name": "letsencrypt-staging"}
    )
    assert reissue_reason(from_staging.one(CERTIFICATE), seeded_secret(from_staging)) == (
        "IncorrectIssuer"
    )
    other = render_lab_with_saved({**ISSUED_BY_PRODUCTION, "cert-manager.io/certificate-name": "x"})
    assert reissue_reason(other.one(CERTIFICATE), seeded_secret(other)) == "IncorrectCertificate"


def test_without_a_saved_certificate_cert_manager_owns_the_secret() -> None:
    render = render_stack("lab")
    secrets = [r for r in component_records(render, CERT_MANAGER) if r.type == SECRET]
    assert [r.input("metadata.name") for r in secrets] == ["dns01-cloudflare-api-token"]


def test_the_saved_key_and_certificate_reach_the_cluster_only_as_secrets() -> None:
    render = render_lab_with_saved(ISSUED_BY_PRODUCTION)
    secret = seeded_secret(render)
    assert secret.is_secret("data.tls.key")
    assert secret.is_secret("data.tls.crt")
    # As saved (base64, the Secret's own form) and decoded; the whole config value too.
    pieces = {
        "key": b64(ISSUED_KEY),
        "key PEM": ISSUED_KEY,
        "certificate": b64(ISSUED_CERT),
        "bundle": saved(ISSUED_BY_PRODUCTION),
    }
    assert find_leaks(render, pieces) == []


def test_issuer_certificate_and_seeded_secret_are_deterministic() -> None:
    first = render_lab_with_saved(ISSUED_BY_PRODUCTION)
    second = render_lab_with_saved(ISSUED_BY_PRODUCTION)
    for pick in (lambda r: r.one(ISSUER), lambda r: r.one(CERTIFICATE), seeded_secret):
        assert pick(first).inputs == pick(second).inputs
