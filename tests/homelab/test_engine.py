"""The recording engine itself: it runs the real program, repeatably, and records faithfully."""

from __future__ import annotations

import pulumi
import pytest

from homelab import engine
from tests.harness import (
    fixture_stack_config,
    homelab_render,
    render_stack,
    stack_raw_config,
    with_changes,
)


def test_homelab_stack_renders_every_component_under_the_stack() -> None:
    render = homelab_render()
    component_types = {r.type for r in render.resources if not r.custom}
    assert {
        "homelab:talos:Cluster",
        "homelab:platform:MetalLB",
        "homelab:platform:Traefik",
        "homelab:platform:CertManager",
        "homelab:platform:Reflector",
        "homelab:remote-access:Headscale",
        "homelab:remote-access:SubnetRouter",
        "homelab:apps:Apps",
    } <= component_types


def test_same_config_renders_byte_identical_records_twice_in_one_process() -> None:
    first = render_stack("homelab")
    second = render_stack("homelab")
    assert engine.canonical_json(first.as_data()) == engine.canonical_json(second.as_data())
    assert first.fingerprint() == second.fingerprint()


def test_a_changed_config_changes_the_fingerprint() -> None:
    # Guards the determinism test above against a fingerprint that ignores its input.
    base = render_stack("homelab")
    raw = stack_raw_config()
    changed = render_stack(
        "homelab",
        overrides={"network": with_changes(raw["network"], {"traefikIp": "192.168.0.223"})},
    )
    assert base.fingerprint() != changed.fingerprint()


def test_kubeconfig_and_talosconfig_outputs_are_secret() -> None:
    render = homelab_render()
    assert render.output_is_secret("kubeconfig")
    assert render.output_is_secret("talosconfig")
    assert not render.output_is_secret("headscaleUrl")


def test_whole_number_floats_come_back_as_ints() -> None:
    assert engine.plain({"port": 3478.0, "ratio": 0.5, "list": [1.0]}) == {
        "list": [1],
        "port": 3478,
        "ratio": 0.5,
    }


def test_bad_config_fails_with_a_run_error_before_any_resource_is_registered() -> None:
    raw = stack_raw_config()
    config = {f"homelab:{k}": v for k, v in raw.items()}
    config["homelab:network"] = with_changes(raw["network"], {"traefikIp": "192.168.0.99"})
    with pytest.raises(engine.RenderError) as failure:
        engine.render("homelab", config=config, secret_keys=["homelab:dnsApiToken"])
    assert isinstance(failure.value.cause, pulumi.RunError)
    assert "homelab:network.traefikIp: '192.168.0.99'" in str(failure.value)
    assert failure.value.partial.resources == []
    # A fresh render after the failure still works: no state leaked from the failed run.
    assert render_stack("homelab").resources


def test_a_preview_sees_the_outputs_it_is_told_are_unknown_as_unknown() -> None:
    # pulumi/runtime/rpc.py `resolve_properties`: during a dry run an output the engine does not
    # return resolves as not known; the engine's mocks leave the named outputs out.
    config, secret_keys = fixture_stack_config("homelab")
    unknown = {"talos:cluster/kubeconfig:Kubeconfig": ["kubeconfigRaw"]}
    preview = engine.render(
        "homelab", config=config, secret_keys=secret_keys, preview=True, unknown_outputs=unknown
    )
    provider = preview.one("pulumi:providers:kubernetes")
    assert provider.input("kubeconfig") == engine.UNKNOWN
    # Outside a preview (or without the option) the same value is known.
    assert homelab_render().one("pulumi:providers:kubernetes").input("kubeconfig") != engine.UNKNOWN
    known = engine.render("homelab", config=config, secret_keys=secret_keys, preview=True)
    assert known.one("pulumi:providers:kubernetes").input("kubeconfig") != engine.UNKNOWN


def test_replacement_trigger_and_replace_with_options_are_recorded() -> None:
    render = homelab_render()
    kubeconfig = render.one("talos:cluster/kubeconfig:Kubeconfig")
    assert kubeconfig.replacement_trigger == "https://192.168.0.10:6443"  # the stack's VIP
    health = next(r for r in render.by_type("command:local:Command") if r.name == "cluster-health")
    assert health.replace_with == (render.one("talos:machine/bootstrap:Bootstrap").urn,)
    assert render.one("talos:machine/bootstrap:Bootstrap").replacement_trigger is None
