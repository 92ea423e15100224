"""What the Talos programs read from talosctl, on output of the shape it prints."""

from __future__ import annotations

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
