"""What the Talos programs read from talosctl, on output of the shape it prints."""

from __future__ import annotations

import json

from programs import talosctl


def long_block(tag: str) -> str:
    """pkg/machinery/version/version.go `versionTemplate` at siderolabs/talos@v1.13.9."""
    return (
        f"\tTag:         {tag}\n\tSHA:         0123abcd\n\tBuilt:       \n"
        "\tGo version:  go1.25.5\n\tOS/Arch:     linux/amd64\n"
    )


def version_output(client: str, server: str, node: str = "192.168.0.11") -> str:
    """`talosctl version`: the client's block, then "Server:" and per node NODE and its block
    (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/version.go `cmdVersion`)."""
    return (
        f"Client:\n{long_block(client)}Server:\n\tNODE:        {node}\n{long_block(server)}"
        "\tEnabled:     RBAC\n"
    )


def test_the_servers_tag_is_read_not_the_clients() -> None:
    assert talosctl.server_tag(version_output("v1.13.10", "v1.13.9")) == "v1.13.9"


def test_without_a_server_part_there_is_no_tag() -> None:
    assert talosctl.server_tag(f"Client:\n{long_block('v1.13.9')}") is None
    assert talosctl.server_tag("") is None


def test_the_clients_version_and_minor_from_its_short_form() -> None:
    """`talosctl version --client --short` prints "Client:" then `Short()`, "Talos <tag>"."""
    assert talosctl.client_minor("Client:\nTalos v1.13.4\n") == ("v1.13.4", "v1.13")
    assert talosctl.client_minor("Client:\nTalos v1.12.6-alpha.1\n") == ("v1.12.6", "v1.12")
    assert talosctl.client_minor("Client:\nTalos (devel)\n") is None


def test_the_talosconfig_and_the_time_left_go_into_the_command_line() -> None:
    argv = ["talosctl", "--talosconfig", talosctl.TALOSCONFIG, "health", "--wait-timeout", "600s"]
    with_path = talosctl.with_talosconfig(argv, "/tmp/homelab-talosconfig-x")
    assert with_path[2] == "/tmp/homelab-talosconfig-x"
    assert talosctl.with_wait_timeout(with_path, 42) == [*with_path[:-1], "42s"]
    assert argv[2] == talosctl.TALOSCONFIG  # the parameters are left as they are


def get_output(*resources: dict[str, object]) -> str:
    """`talosctl get <type> -o json`: each resource an indented JSON object with its node, one
    after the other (siderolabs/talos@v1.13.9: cmd/talosctl/cmd/talos/output/json.go
    `writeAsIndentedJSON`)."""
    return "".join(json.dumps({**r, "node": "192.168.0.11"}, indent=4) + "\n" for r in resources)


def extension(name: str, version: str) -> dict[str, object]:
    """An ExtensionStatus (pkg/machinery/resources/runtime/extension_status.go: the spec is an
    extensions.Layer, `image` and `metadata`)."""
    return {
        "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev"},
        "spec": {"image": f"{name}.sqsh", "metadata": {"name": name, "version": version}},
    }


def test_the_schematic_is_the_version_of_the_schematic_extension() -> None:
    """siderolabs/image-factory@v1.5.0: internal/artifacts/schematic.go `schematicExtension`:
    every factory image carries a virtual extension `schematic` versioned with its ID."""
    listed = talosctl.resources(
        get_output(extension("iscsi-tools", "v0.2.0"), extension("schematic", "abc123"))
    )
    assert talosctl.schematic_of(listed) == "abc123"
    assert talosctl.schematic_of(talosctl.resources(get_output())) is None


def machine_config(resource_id: str, spec: str) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "config",
            "type": "MachineConfigs.config.talos.dev",
            "id": resource_id,
        },
        "spec": spec,
    }


def test_a_staged_config_is_a_saved_config_apart_from_the_active_one() -> None:
    """pkg/machinery/resources/config/machine_config.go: `persistent` is ahead of `v1alpha1`
    while a staged config waits; after a boot only `v1alpha1` is there (acquire.go)."""
    active = machine_config("v1alpha1", "version: v1alpha1\nmachine: {}\n")
    assert not talosctl.staged_pending(talosctl.resources(get_output(active)))
    same = machine_config("persistent", "version: v1alpha1\nmachine: {}\n")
    assert not talosctl.staged_pending(talosctl.resources(get_output(active, same)))
    ahead = machine_config("persistent", "version: v1alpha1\nmachine: {type: worker}\n")
    assert talosctl.staged_pending(talosctl.resources(get_output(active, ahead)))
