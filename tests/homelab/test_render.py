"""The offline render: complete, redacted, deterministic, and pinned by a golden copy."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from homelab import cli, engine, render
from homelab.engine import InvokeRecord, Render, ResourceRecord
from tests.harness import (
    committed_render,
    fixture_stack_file,
    render_stack,
    stack_raw_config,
    with_changes,
    yaml_documents,
)
from tests.synthetic import record, render_of

SENTINEL_COOKIE = engine.SENTINEL_SECRETS["headplaneCookieSecret"]

# --- synthetic records: every kind of resource the render knows, with secrets in them --------


def component(type_: str, name: str, parent: ResourceRecord | None = None) -> ResourceRecord:
    return record(type_, name, parent=parent, custom=False)


def synthetic_render(
    resources: Sequence[ResourceRecord],
    *,
    invokes: Sequence[InvokeRecord] = (),
    outputs: Mapping[str, Any] | None = None,
    output_secret_paths: Sequence[str] = (),
) -> Render:
    return render_of(
        resources,
        invokes=list(invokes),
        outputs=dict(outputs or {}),
        output_secret_paths=tuple(output_secret_paths),
    )


def _sample() -> Render:
    """One of each: a cluster with provider, a platform component with a chart, manifests,
    a Talos apply with patches, a key-minting command, and a data source."""
    cluster = component("homelab:talos:Cluster", "cluster")
    secrets = record("talos:machine/secrets:Secrets", "cluster-secrets", parent=cluster)
    provider = record(
        "pulumi:providers:kubernetes",
        "cluster-kubernetes",
        parent=cluster,
        inputs={"kubeconfig": "FAKE-kubeconfig-in-plaintext-under-mocks"},
    )
    apply = record(
        "talos:machine/configurationApply:ConfigurationApply",
        "talos-cp-1",
        parent=cluster,
        inputs={
            "node": "192.168.0.11",
            "machineConfigurationInput": "FAKE-machine-config",
            "clientConfiguration": {"clientKey": "FAKE-client-key", "caCertificate": "FAKE-ca"},
            "configPatches": [
                "machine:\n  install:\n    disk: /dev/nvme0n1\n",
                '{"cluster": {"secretboxEncryptionSecret": "SENTINEL-in-a-patch"}}',
            ],
            "onDestroy": {"reset": True, "graceful": True, "reboot": False},
        },
        secret_paths=["configPatches.1"],
        dependencies=[secrets],
    )
    platform = component("homelab:platform:Traefik", "traefik")
    namespace = record(
        "kubernetes:core/v1:Namespace",
        "traefik-namespace",
        parent=platform,
        inputs={"metadata": {"name": "traefik", "labels": {"a": "b"}}},
        provider=provider,
        deleted_with=cluster,
    )
    chart = record(
        "kubernetes:helm.sh/v3:Release",
        "traefik",
        parent=platform,
        inputs={
            "chart": "traefik",
            "version": "41.3.0",
            "repositoryOpts": {"repo": "https://traefik.github.io/charts"},
            "namespace": "traefik",
            "values": {"service": {"annotations": {"metallb.io/loadBalancerIPs": "192.168.0.220"}}},
            "skipAwait": False,
        },
        provider=provider,
        dependencies=[namespace],
    )
    token_secret = record(
        "kubernetes:core/v1:Secret",
        "dns-token",
        parent=platform,
        inputs={
            "metadata": {"namespace": "traefik", "annotations": {"reflector.v1/x.y": "z"}},
            "stringData": {"api-token": engine.SENTINEL_SECRETS["dnsApiToken"]},
        },
        secret_paths=["stringData"],
        provider=provider,
    )
    middleware = record(
        "kubernetes:traefik.io/v1alpha1:Middleware",
        "private-only",
        parent=platform,
        inputs={
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "private-only", "namespace": "traefik"},
            "spec": {"ipAllowList": {"sourceRange": ["192.168.0.0/24"]}},
        },
        property_dependencies={"metadata": [chart]},
        provider=provider,
    )
    issuer = record(
        "kubernetes:cert-manager.io/v1:ClusterIssuer",
        "letsencrypt",
        parent=platform,
        inputs={"metadata": {"name": "letsencrypt"}, "spec": {"acme": {}}},
        provider=provider,
    )
    remote = component("homelab:remote-access:Headscale", "headscale")
    mint = record(
        "command:local:Command",
        "router-key",
        parent=remote,
        inputs={
            "create": "kubectl exec deploy/headscale -- headscale preauthkeys create\n",
            "delete": "echo nothing to delete\n",
            "environment": {"KUBECONFIG_DATA": "FAKE-kubeconfig"},
        },
        secret_paths=["environment"],
        dependencies=[middleware],
    )
    cookie = record(
        "random:index/randomPassword:RandomPassword",
        "cookie",
        parent=remote,
        inputs={"length": 32, "special": False},
    )
    machine_config = InvokeRecord(
        token="talos:machine/getConfiguration:getConfiguration",
        args={
            "clusterName": "homelab",
            "machineType": "controlplane",
            "machineSecrets": {"secrets": {"bootstrapToken": "abc.FAKE0123"}},
            "configPatches": ["cluster:\n  allowSchedulingOnControlPlanes: true\n"],
        },
        secret_paths=(),
        provider=None,
        depends_on=(),
    )
    health = InvokeRecord(
        token="talos:cluster/getHealth:getHealth",
        args={
            "controlPlaneNodes": ["192.168.0.11"],
            "clientConfiguration": {"clientKey": "FAKE-k"},
        },
        secret_paths=(),
        provider=None,
        depends_on=(),
    )
    return synthetic_render(
        [
            cluster,
            secrets,
            provider,
            apply,
            platform,
            namespace,
            chart,
            token_secret,
            middleware,
            issuer,
            remote,
            mint,
            cookie,
        ],
        invokes=[machine_config, health],
        outputs={
            "kubeconfig": "FAKE-kubeconfig-output",
            "headscaleUrl": "https://headscale.sarma.love",
            "portForwards": [
                {"port": 3478, "protocol": "udp", "to": "192.168.0.220", "why": "STUN"},
                {"port": 443, "protocol": "tcp", "to": "192.168.0.220", "why": "Headscale"},
            ],
        },
        output_secret_paths=["kubeconfig"],
    )


def _all_text(files: Mapping[str, str]) -> str:
    return "\n".join(files.values())


# --- redaction -------------------------------------------------------------------------------


def test_redact_replaces_exactly_the_values_at_secret_paths() -> None:
    value = {
        "metadata": {"annotations": {"a.b/c": "secret-annotation", "plain": "x"}},
        "items": [{"key": "k1"}, {"key": "k2"}],
        "keep": 1,
    }
    redacted = render.redact(value, ["metadata.annotations.a.b/c", "items.1.key"])
    assert redacted == {
        "metadata": {"annotations": {"a.b/c": render.SECRET, "plain": "x"}},
        "items": [{"key": "k1"}, {"key": render.SECRET}],
        "keep": 1,
    }


def test_a_secret_path_hides_the_whole_value_below_it() -> None:
    assert render.redact({"env": {"A": "1", "B": "2"}}, ["env"]) == {"env": render.SECRET}


def test_inputs_providers_mark_secret_are_redacted_even_when_the_mock_engine_does_not() -> None:
    # Under mocks the Talos and Kubernetes providers' schema secrets are not honoured
    # (components.md 1.2 "Secrecy"); the render must still not show them.
    files = render.render_files(_sample())
    talos = yaml_documents(files["talos/talos-cp-1.yaml"])[0]
    assert talos["machineConfigurationInput"] == render.SECRET
    assert talos["clientConfiguration"] == render.SECRET
    provider = yaml_documents(files["resources/cluster.yaml"])
    kubeconfigs = [d["inputs"]["kubeconfig"] for d in provider if "kubeconfig" in d["inputs"]]
    assert kubeconfigs == [render.SECRET]


def test_no_sentinel_or_fake_secret_reaches_any_rendered_file() -> None:
    files = render.render_files(_sample())
    text = _all_text(files)
    for sentinel in engine.SENTINEL_SECRETS.values():
        assert sentinel not in text
    assert "SENTINEL" not in text
    assert "FAKE" not in text
    # ... while every kind of file still carries the redaction marker where a secret was.
    for path in (
        "kubernetes/traefik.yaml",
        "talos/talos-cp-1.yaml",
        "commands/router-key.yaml",
        "SUMMARY.md",
        "talos/machine-configuration-homelab-controlplane.yaml",
        "invokes.yaml",
    ):
        assert render.SECRET in files[path], path


def test_the_homelab_stack_with_sentinel_secrets_renders_none_of_them(tmp_path: Path) -> None:
    result = render_stack("homelab", secrets={"headplaneCookieSecret": SENTINEL_COOKIE})
    render.write_files(render.render_files(result), tmp_path)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written
    for path in written:
        text = path.read_text()
        for sentinel in engine.SENTINEL_SECRETS.values():
            assert sentinel not in text, path
        assert "FAKE" not in text, path
    # The secret outputs are shown as redacted, not dropped.
    summary = (tmp_path / render.SUMMARY_FILE).read_text()
    assert f"| kubeconfig | {render.SECRET} |" in summary


def test_assets_in_inputs_are_named_not_fatal() -> None:
    script = record(
        "command:local:Command",
        "with-asset",
        inputs={
            "create": "true",
            "assets": {"a": pulumi.StringAsset("x"), "b": pulumi.FileAsset("f.sh")},
        },
    )
    command = yaml_documents(
        render.render_files(synthetic_render([script]))["commands/with-asset.yaml"]
    )
    assert command[0]["assets"] == {"a": "<StringAsset x>", "b": "<FileAsset f.sh>"}


# --- layout ----------------------------------------------------------------------------------


def test_kubernetes_objects_are_grouped_by_namespace_with_the_namespace_first() -> None:
    files = render.render_files(_sample())
    documents = yaml_documents(files["kubernetes/traefik.yaml"])
    assert [d["kind"] for d in documents] == ["Namespace", "Middleware", "Secret"]
    secret = documents[2]
    # apiVersion and kind come from the type token when the inputs do not carry them.
    assert secret["apiVersion"] == "v1"
    assert secret["stringData"] == render.SECRET
    assert secret["metadata"]["annotations"] == {"reflector.v1/x.y": "z"}


def test_cluster_scoped_objects_go_to_their_own_file() -> None:
    files = render.render_files(_sample())
    issuer = yaml_documents(files["kubernetes/_cluster.yaml"])
    assert [(d["kind"], d["metadata"]["name"]) for d in issuer] == [
        ("ClusterIssuer", "letsencrypt")
    ]


def test_autonamed_objects_are_marked_as_such() -> None:
    # Without metadata.name Pulumi appends a random suffix: the render must not pretend otherwise.
    files = render.render_files(_sample())
    header = next(
        line for line in files["kubernetes/traefik.yaml"].splitlines() if "dns-token" in line
    )
    assert "random suffix" in header
    assert "random suffix" not in files["kubernetes/_cluster.yaml"]


def test_each_helm_release_shows_chart_repository_version_namespace_and_values() -> None:
    files = render.render_files(_sample())
    release = yaml_documents(files["helm/traefik.yaml"])[0]
    assert release["chart"] == "traefik"
    assert release["repository"] == "https://traefik.github.io/charts"
    assert release["version"] == "41.3.0"
    assert release["namespace"] == "traefik"
    assert release["values"]["service"]["annotations"]["metallb.io/loadBalancerIPs"] == (
        "192.168.0.220"
    )
    assert release["options"] == {"skipAwait": False}
    assert (
        "| traefik | traefik | traefik | https://traefik.github.io/charts | 41.3.0 |"
        in (files["SUMMARY.md"])
    )


def test_talos_patches_are_shown_as_data_and_a_secret_patch_stays_hidden() -> None:
    files = render.render_files(_sample())
    apply = yaml_documents(files["talos/talos-cp-1.yaml"])[0]
    assert apply["configPatches"] == [
        {"machine": {"install": {"disk": "/dev/nvme0n1"}}},
        render.SECRET,
    ]
    assert apply["onDestroy"] == {"reset": True, "graceful": True, "reboot": False}
    data_source = yaml_documents(files["talos/machine-configuration-homelab-controlplane.yaml"])[0]
    assert data_source["configPatches"] == [{"cluster": {"allowSchedulingOnControlPlanes": True}}]
    assert data_source["machineSecrets"] == render.SECRET


def test_command_scripts_are_readable_literal_blocks() -> None:
    files = render.render_files(_sample())
    text = files["commands/router-key.yaml"]
    assert "create: |\n  kubectl exec deploy/headscale -- headscale preauthkeys create\n" in text
    command = yaml_documents(text)[0]
    assert command["delete"] == "echo nothing to delete\n"
    assert command["environment"] == render.SECRET


def test_every_resource_appears_in_the_resource_tree_with_its_destroy_options() -> None:
    sample = _sample()
    text = render.render_files(sample)["RESOURCES.txt"]
    for resource in sample.resources:
        assert f"{resource.name} ({resource.type})" in text
    namespace_line = next(line for line in text.splitlines() if "traefik-namespace" in line)
    assert "deleted-with=cluster" in namespace_line
    # Children are indented under their component.
    assert "\n  talos-cp-1 (" in text


def test_protect_shows_in_the_resource_tree() -> None:
    protected = record("talos:machine/secrets:Secrets", "secrets", protect=True)
    text = render.resources_text(synthetic_render([protected]))
    assert "secrets (talos:machine/secrets:Secrets) [protect]" in text


def test_summary_lists_port_forwards_and_outputs_with_secrets_hidden() -> None:
    summary = render.render_files(_sample())["SUMMARY.md"]
    assert "## Router port forwards" in summary
    assert "| 3478 | udp | 192.168.0.220 | STUN |" in summary
    assert "| 443 | tcp | 192.168.0.220 | Headscale |" in summary
    assert f"| kubeconfig | {render.SECRET} |" in summary
    assert "| headscaleUrl | https://headscale.sarma.love |" in summary


def test_summary_counts_resources_per_component() -> None:
    summary = render.render_files(_sample())["SUMMARY.md"]
    assert "| cluster | homelab:talos:Cluster | 3 |" in summary
    assert "| traefik | homelab:platform:Traefik | 5 |" in summary
    assert "| kubernetes:core/v1:Namespace | 1 |" in summary


# --- a new stack, values only `up` knows, what the summary cites ------------------------------


def test_a_stack_pulumi_has_not_created_has_no_upgrade_plan_and_no_aliases() -> None:
    # The fixture homelab has both: upgrade steps, and node applies renamed from hostnames to IPs.
    result = render_stack("homelab")
    existing = render.render_files(result)
    assert "## Upgrade plan" in existing["SUMMARY.md"]
    assert "[aliases=" in existing["RESOURCES.txt"]
    assert "## New stack" not in existing["SUMMARY.md"]
    new = render.render_files(result, new_stack=True)
    assert "## Upgrade plan" not in new["SUMMARY.md"]
    assert "aliases=" not in new["RESOURCES.txt"]
    assert f"## New stack\n\n{render.NEW_STACK_NOTE}" in new["SUMMARY.md"]
    # Nothing else differs: the same resources, inputs and outputs.
    assert {k: v for k, v in new.items() if k not in ("SUMMARY.md", "RESOURCES.txt")} == {
        k: v for k, v in existing.items() if k not in ("SUMMARY.md", "RESOURCES.txt")
    }


@pytest.mark.parametrize(
    ("extra", "new"),
    [
        ("", True),
        ("encryptionsalt: v1:c2FsdA==:v1:bm9uY2U=:Y2lwaGVy\n", False),  # passphrase provider
        ("secretsprovider: awskms://alias/x\nencryptedkey: a2V5\n", False),  # a cloud KMS
    ],
)
def test_a_new_stack_is_one_whose_file_pulumi_never_wrote_its_encryption_into(
    tmp_path: Path, extra: str, new: bool
) -> None:
    path = tmp_path / "Pulumi.mine.yaml"
    path.write_text(extra + fixture_stack_file("homelab").read_text())
    assert render.is_new_stack(path) is new
    path.write_text(path.read_text() + "  homelab:dnsApiToken:\n    secure: v1:Y2lwaGVy\n")
    assert render.is_new_stack(path) is False


def test_key_expiries_show_as_known_after_up_never_as_the_fakes_date() -> None:
    from homelab.fakes import FAKE_KEY_EXPIRY

    result = render_stack("homelab")
    assert result.outputs["routerAuthKeyExpiry"] == FAKE_KEY_EXPIRY  # what the mock stands in with
    summary = render.render_files(result)["SUMMARY.md"]
    assert FAKE_KEY_EXPIRY not in summary
    assert f"| routerAuthKeyExpiry | {render.KNOWN_AFTER_UP} |" in summary
    assert f"| headplaneApiKeyExpiry | {render.KNOWN_AFTER_UP} |" in summary


# A project path a person could open: not after "@tag:" or "/" (an upstream source, a path in a
# container), with a file extension.
_CITED_FILE = re.compile(r"(?<![\w@:/.-])((?:[\w.-]+/)*[\w-]+\.(?:md|py|ya?ml|json|sh|toml))\b")


def test_the_human_facing_render_files_cite_only_files_a_fork_has() -> None:
    files = render.render_files(render_stack("homelab"))
    cited = {
        (name, match.group(1))
        for name in ("SUMMARY.md", "access.md", "architecture.md")
        for match in _CITED_FILE.finditer(files[name])
    }
    assert ("SUMMARY.md", "docs/operations.md") in cited  # the pattern finds what is there
    missing = [
        (name, path)
        for name, path in sorted(cited)
        if path not in files and not (engine.PROJECT_ROOT / path).exists()
    ]
    assert missing == []
    for name, text in files.items():
        assert "components.md" not in text, name
        assert "../shared" not in text, name


# --- the architecture diagram ----------------------------------------------------------------


def test_component_edges_come_from_dependencies_property_dependencies_and_providers() -> None:
    nodes, edges = render.component_graph(_sample())
    names = {n.urn: n.name for n in nodes}
    named = {(names[a], names[b]) for a, b in edges}
    # traefik's manifests use the cluster's provider; headscale's command depends on a traefik
    # Middleware; the Middleware's property dependency on the chart stays inside traefik.
    assert named == {("cluster", "traefik"), ("traefik", "headscale")}
    assert sorted(names.values()) == ["cluster", "headscale", "traefik"]


def test_the_mermaid_diagram_has_one_node_per_component_and_one_line_per_edge() -> None:
    diagram = render.architecture_mermaid(_sample())
    assert diagram.startswith("```mermaid\nflowchart LR\n")
    assert diagram.count("<br/>") == 3
    assert "  c_cluster --> c_traefik\n" in diagram
    assert "  c_traefik --> c_headscale\n" in diagram
    assert diagram.count(" --> ") == 2


@pytest.mark.stack_files
def test_docs_architecture_is_the_diagram_of_the_homelab_stack() -> None:
    expected = render.architecture_markdown(committed_render("homelab"))
    actual = render.ARCHITECTURE_DOC.read_text() if render.ARCHITECTURE_DOC.exists() else ""
    assert actual == expected, (
        f"{render.ARCHITECTURE_DOC} is out of date; regenerate it with `{render.REGENERATE_COMMAND}`"
    )


@pytest.mark.stack_files
def test_readme_embeds_the_same_generated_diagram() -> None:
    readme = render.README.read_text()
    expected = render.embed_between_markers(
        readme, render.architecture_mermaid(committed_render("homelab"))
    )
    assert readme == expected, (
        f"README's architecture diagram is out of date; regenerate it with "
        f"`{render.REGENERATE_COMMAND}`"
    )


def test_embed_between_markers_replaces_only_the_marked_block() -> None:
    readme = "intro\n<!-- architecture:start -->\nold\n<!-- architecture:end -->\noutro\n"
    embedded = render.embed_between_markers(readme, "```mermaid\nA-->B\n```\n")
    assert embedded == (
        "intro\n<!-- architecture:start -->\n```mermaid\nA-->B\n```\n<!-- architecture:end -->\n"
        "outro\n"
    )
    assert render.embed_between_markers(embedded, "```mermaid\nA-->B\n```\n") == embedded
    with pytest.raises(ValueError, match="markers"):
        render.embed_between_markers("no markers here", "x")


# --- determinism and the golden render -------------------------------------------------------


@pytest.mark.stack_files  # the command renders the project's own stack file
def test_two_renders_in_one_process_write_byte_identical_files(tmp_path: Path) -> None:
    for out in (tmp_path / "a", tmp_path / "b"):
        assert cli.main(["render", "--stack", "homelab", "--out", str(out)], out=io.StringIO()) == 0
    first, second = render.read_files(tmp_path / "a"), render.read_files(tmp_path / "b")
    assert first
    assert first == second


@pytest.mark.stack_files  # the command renders the project's own stack file
def test_a_render_in_a_fresh_process_equals_the_in_process_render(tmp_path: Path) -> None:
    # Another process has another hash seed: set or dict order leaking into output shows here.
    out = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, "-m", "homelab", "render", "--stack", "homelab", "--out", str(out)],
        cwd=engine.PROJECT_ROOT,
        check=True,
        capture_output=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert render.read_files(out) == render.render_stack_files("homelab")


def test_the_render_changes_when_what_would_be_deployed_changes() -> None:
    raw = stack_raw_config()
    changed = render_stack(
        "homelab",
        overrides={"network": with_changes(raw["network"], {"traefikIp": "192.168.0.221"})},
    )
    assert render.render_files(changed) != render.render_files(render_stack("homelab"))


@pytest.mark.stack_files
def test_golden_render_of_the_homelab_stack() -> None:
    actual = render.render_stack_files("homelab")
    golden = render.read_render(render.GOLDEN_DIR)
    if actual != golden:
        diff, changed = render.unified_diff(golden, actual)
        pytest.fail(
            "The offline render of Pulumi.homelab.yaml differs from tests/golden/homelab:\n"
            + "\n".join(changed)
            + "\n"
            + diff[:6000]
            + f"\nIf the change is intended, regenerate it with `{render.REGENERATE_COMMAND}` "
            "and commit the result with the change that caused it.",
            pytrace=False,
        )


# --- the command -----------------------------------------------------------------------------


@pytest.mark.stack_files  # the command renders the project's own stack file
def test_render_refuses_to_overwrite_a_directory_that_is_not_a_render(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    err = io.StringIO()
    code = cli.main(["render", "--out", str(tmp_path)], out=io.StringIO(), err=err)
    assert code == 2
    assert "refusing to overwrite" in err.getvalue()
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.stack_files  # the command renders the project's own stack file
def test_rerendering_removes_files_a_previous_render_left(tmp_path: Path) -> None:
    assert cli.main(["render", "--out", str(tmp_path)], out=io.StringIO()) == 0
    stale = tmp_path / "kubernetes" / "gone.yaml"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("---\n")
    assert cli.main(["render", "--out", str(tmp_path)], out=io.StringIO()) == 0
    assert not stale.exists()


def test_a_stack_with_bad_config_fails_with_one_line_per_problem_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = yaml.safe_load(fixture_stack_file("homelab").read_text())
    bad["config"]["homelab:network"]["traefikIp"] = "192.168.0.99"
    monkeypatch.setattr(engine, "PROJECT_ROOT", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(bad))
    err = io.StringIO()
    code = cli.main(["render", "--stack", "broken", "--out", str(tmp_path / "out")], err=err)
    assert code == 2
    message = err.getvalue()
    assert "homelab:network.traefikIp: '192.168.0.99'" in message
    assert "Traceback" not in message


def test_a_missing_stack_file_is_a_one_line_error() -> None:
    err = io.StringIO()
    assert cli.main(["render", "--stack", "nope"], out=io.StringIO(), err=err) == 2
    assert err.getvalue() == "error: no stack file Pulumi.nope.yaml\n"


# --- the pull-request comment ----------------------------------------------------------------


def test_the_diff_comment_lists_changed_files_and_carries_its_marker() -> None:
    base = {"SUMMARY.md": "a\n", "helm/old.yaml": "x\n", "helm/same.yaml": "s\n"}
    head = {"SUMMARY.md": "b\n", "helm/new.yaml": "y\n", "helm/same.yaml": "s\n"}
    comment = render.diff_comment(base, head, stack="homelab")
    assert comment.startswith(render.DIFF_MARKER + "\n")
    assert "- `SUMMARY.md` changed (+1 −1)" in comment
    assert "- `helm/new.yaml` added (+1 −0)" in comment
    assert "- `helm/old.yaml` removed (+0 −1)" in comment
    assert "same.yaml" not in comment
    assert "-a\n+b\n" in comment


def test_the_diff_comment_says_so_when_nothing_changes() -> None:
    files = {"SUMMARY.md": "a\n"}
    comment = render.diff_comment(files, dict(files), stack="homelab")
    assert "changes nothing" in comment
    assert "```diff" not in comment


def test_a_long_diff_is_truncated_below_githubs_comment_limit() -> None:
    head = {"big.yaml": "".join(f"line {i}\n" for i in range(20_000))}
    comment = render.diff_comment({}, head, stack="homelab")
    assert len(comment) < 65_536
    assert "truncated" in comment


def test_render_diff_command_treats_a_missing_base_as_empty(tmp_path: Path) -> None:
    head = tmp_path / "head"
    render.write_files({"SUMMARY.md": "# Offline render of stack `x`\n"}, head)
    out = io.StringIO()
    assert cli.main(["render-diff", str(tmp_path / "no-base"), str(head)], out=out) == 0
    assert "- `SUMMARY.md` added" in out.getvalue()


def test_golden_regeneration_hint_names_a_command_that_exists() -> None:
    # The hint printed by the golden test must be accepted by the parser.
    prefix = "./scripts/homelab "  # `python -m homelab` without uv on PATH (tests/test_fork.py)
    assert render.REGENERATE_COMMAND.startswith(prefix)
    args = cli._parser().parse_args(render.REGENERATE_COMMAND.removeprefix(prefix).split())
    assert args.update_golden is True
