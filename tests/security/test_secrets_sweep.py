"""No secret ever reaches plaintext: not a resource's inputs or outputs, not an invoke, not the stack
or component outputs, not a log line. Proven on the real program with sentinel config secrets and
the mocks' FAKE keys, and on a program that leaks on purpose (so the sweep is seen to catch each
kind of leak)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable

import pytest

from homelab import engine
from homelab.engine import Render
from tests.harness import PROJECT_ROOT, fixture_stack_config, render_stack
from tests.security.leaks import Leak, fake_secrets, find_leaks, forms, secrets_in_text
from tests.synthetic import record, render_of

LEAKY_PROGRAM = PROJECT_ROOT / "tests" / "security" / "leaky_program.py"
# Custom sentinels, distinct from engine.SENTINEL_SECRETS, so a value hard-coded anywhere to the
# engine's defaults would not hide a leak. The cookie secret must be exactly 32 characters.
SWEEP_SECRETS = {
    "dnsApiToken": "SWEEP-dns-api-token-7f3a9c2e51d4",
    "headplaneCookieSecret": "SWEEPcookie0123456789abcdefABCDE",
}


@pytest.fixture
def captured(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Callable[[Callable[[], Render]], tuple[Render, str]]:
    """Run a render and return it with everything it logged or printed."""

    def run(render: Callable[[], Render]) -> tuple[Render, str]:
        caplog.set_level(logging.DEBUG)
        result = render()
        out, err = capfd.readouterr()
        messages = "\n".join(r.getMessage() for r in caplog.records)
        return result, "\n".join([messages, caplog.text, out, err])

    return run


def where(leaks: list[Leak]) -> list[str]:
    return sorted(leak.where for leak in leaks)


def test_sentinel_secrets_reach_no_plaintext_path_or_log(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    assert len(SWEEP_SECRETS["headplaneCookieSecret"]) == 32
    render, logs = captured(lambda: render_stack("homelab", secrets=SWEEP_SECRETS))
    assert render.resources
    assert find_leaks(render, SWEEP_SECRETS) == []
    assert secrets_in_text(logs, SWEEP_SECRETS) == []


def test_engine_default_sentinels_reach_no_plaintext_path_or_log(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    render, logs = captured(lambda: render_stack("homelab"))
    assert find_leaks(render, engine.SENTINEL_SECRETS) == []
    assert secrets_in_text(logs, engine.SENTINEL_SECRETS) == []


def test_mock_generated_keys_flow_only_through_secret_paths(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    render, logs = captured(lambda: render_stack("homelab", secrets=SWEEP_SECRETS))
    fakes = fake_secrets(render)
    # Their producers' own outputs hold them by construction; what matters is where they go next.
    assert find_leaks(render, fakes, include_outputs=False) == []
    assert secrets_in_text(logs, fakes) == []


def test_a_secret_config_error_names_the_key_but_never_the_value(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    wrong_length = "SWEEP-too-short-cookie"
    with pytest.raises(engine.RenderError) as failure:
        captured(lambda: render_stack("homelab", secrets={"headplaneCookieSecret": wrong_length}))
    message = str(failure.value)
    assert "homelab:headplaneCookieSecret" in message
    assert wrong_length not in message


SAVED_KEY_PEM = (
    "-----BEGIN EC PRIVATE KEY-----\nSWEEP-saved-private-key-5c1e\n-----END EC PRIVATE KEY-----\n"
)
SAVED_CERT_PEM = "-----BEGIN CERTIFICATE-----\nSWEEP-saved-cert-77ab\n-----END CERTIFICATE-----\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_saved_wildcard_certificate_reaches_no_plaintext_path_or_log(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    """`lab destroy` stores the issued Secret, private key included, as homelab:wildcardCertificate;
    the render that seeds it from there must keep every form of it secret."""
    bundle = json.dumps(
        {
            "annotations": {"cert-manager.io/issuer-kind": "ClusterIssuer"},
            "tls.crt": _b64(SAVED_CERT_PEM),
            "tls.key": _b64(SAVED_KEY_PEM),
        }
    )
    secrets = {**SWEEP_SECRETS, "wildcardCertificate": bundle}
    render, logs = captured(lambda: render_stack("lab", secrets=secrets))
    seeded = [
        r
        for r in render.by_type("kubernetes:core/v1:Secret")
        if r.inputs.get("metadata", {}).get("name") == "wildcard-tls"
    ]
    assert len(seeded) == 1, "the saved certificate must be seeded for this sweep to mean much"
    pieces = {
        "wildcardCertificate": bundle,
        "saved tls.key": _b64(SAVED_KEY_PEM),
        "saved tls.key PEM": SAVED_KEY_PEM,
        "saved tls.crt": _b64(SAVED_CERT_PEM),
    }
    assert find_leaks(render, pieces) == []
    assert secrets_in_text(logs, pieces) == []


def test_a_broken_saved_certificate_is_reported_without_any_of_it() -> None:
    broken = '{"annotations": {}, "tls.crt": "SWEEP-broken-cert", "tls.key": "SWEEP-broken-key"}'
    with pytest.raises(engine.RenderError) as failure:
        render_stack("lab", secrets={"wildcardCertificate": broken})
    message = str(failure.value)
    assert "homelab:wildcardCertificate" in message
    assert "SWEEP-broken" not in message


# --- the sweep catches what it must ------------------------------------------------------------


def leaky_render() -> Render:
    config, secret_keys = fixture_stack_config(
        "homelab", secrets={f"homelab:{k}": v for k, v in SWEEP_SECRETS.items()}
    )
    return engine.render("homelab", config=config, secret_keys=secret_keys, program=LEAKY_PROGRAM)


def test_sweep_reports_a_config_secret_in_every_plaintext_place(
    captured: Callable[[Callable[[], Render]], tuple[Render, str]],
) -> None:
    render, logs = captured(leaky_render)
    stack_urn = "urn:pulumi:homelab::homelab::pulumi:pulumi:Stack::homelab-homelab"
    assert where(find_leaks(render, SWEEP_SECRETS)) == sorted(
        [
            "input of kubernetes:core/v1:ConfigMap leaky at data.token",
            "output of kubernetes:core/v1:ConfigMap leaky at data.token",
            "invoke test:index:echo at value",
            "stack outputs at token",
            f"registered outputs of {stack_urn} at token",
        ]
    )
    # The cookie, read with require_secret, is everywhere only at secret paths; the token is in
    # the printed line and the Pulumi log message.
    assert secrets_in_text(logs, SWEEP_SECRETS) == ["dnsApiToken"]


def test_sweep_reports_a_generated_key_passed_on_without_output_secret() -> None:
    render = leaky_render()
    fakes = fake_secrets(render)
    assert any("hskey" in value for value in fakes.values())
    assert where(find_leaks(render, fakes, include_outputs=False)) == [
        "input of kubernetes:core/v1:ConfigMap leaky-key at data.key"
    ]


def test_sweep_sees_encoded_values_names_and_map_keys() -> None:
    secret = {"token": "SWEEP-synthetic-0001"}
    encoded = next(f for f in forms(secret["token"]) if f != secret["token"])
    render = render_of(
        [
            record(
                "kubernetes:core/v1:Secret",
                "ok",
                inputs={"data": {"t": encoded}},
                secret_paths=["data"],
            ),
            record(
                "kubernetes:core/v1:ConfigMap", "encoded", inputs={"binaryData": {"t": encoded}}
            ),
            record(
                "kubernetes:core/v1:ConfigMap", "keyed", inputs={"data": {secret["token"]: "x"}}
            ),
            record("test:index:Thing", f"named-{secret['token']}"),
        ]
    )
    found = where(find_leaks(render, secret, include_outputs=False))
    assert found == sorted(
        [
            "input of kubernetes:core/v1:ConfigMap encoded at binaryData.t",
            f"input of kubernetes:core/v1:ConfigMap keyed at data.{secret['token']}",
            "name/URN of test:index:Thing named-SWEEP-synthetic-0001",
            "name/URN of test:index:Thing named-SWEEP-synthetic-0001",
        ]
    )


def test_fake_secrets_leave_out_public_certificates() -> None:
    talos = record(
        "talos:machine/secrets:Secrets",
        "secrets",
        outputs={
            "certs": {
                "os": {
                    "cert": "-----BEGIN CERTIFICATE-----\nFAKE-public\n-----END CERTIFICATE-----\n",
                    "key": "-----BEGIN PRIVATE KEY-----\nFAKE-private\n-----END PRIVATE KEY-----\n",
                }
            }
        },
    )
    assert sorted(fake_secrets(render_of([talos])).values()) == ["FAKE-private"]
