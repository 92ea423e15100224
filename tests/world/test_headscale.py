"""Headscale's CLI in its pod and its registration rules (juanfont/headscale@v0.28.0), and the
subnet router's containerboot login (tailscale/tailscale@v1.102.3)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.world import headscale
from tests.world.conftest import write
from tests.world.world import World

DAY = 86400


@pytest.fixture
def hs(world: World) -> World:
    world.deploy_headscale()
    return world


def cli(world: World, *argv: str) -> tuple[int, str, str]:
    config = write(world, "kubeconfig", world.kubeconfig())
    result = world.cli(
        "kubectl",
        "--kubeconfig",
        config,
        "--namespace",
        "headscale",
        "exec",
        "deployment/headscale",
        "--container",
        "headscale",
        "--",
        "headscale",
        *argv,
    )
    return result.returncode, result.stdout, result.stderr


def listed(world: World, noun: str) -> list[dict[str, Any]]:
    code, out, err = cli(world, noun, "list", "--output", "json")
    assert code == 0, err
    found: list[dict[str, Any]] = json.loads(out) or []
    return found


def test_a_pre_auth_key_is_printed_once_and_listed_masked(hs: World) -> None:
    """cmd/headscale/cli/preauthkeys.go `createPreAuthKeyCmd` prints the key itself;
    `list -o json` is encoding/json of []*v1.PreAuthKey, tab-indented (cli/utils.go `output`):
    the key as `hskey-auth-<prefix>-***` (types/preauth_key.go `Proto`), Timestamps as
    {"seconds": N}, false and empty fields omitted (`omitempty`)."""
    assert cli(hs, "users", "create", "admin")[:2] == (0, "User created\n")
    code, key, _ = cli(
        hs, "preauthkeys", "create", "--user", "1", "--expiration", "1h", "--tags", "tag:router"
    )
    assert code == 0
    key = key.strip()
    assert key.startswith("hskey-auth-")
    assert len(key) == len("hskey-auth-") + 12 + 1 + 64
    code, out, _ = cli(hs, "preauthkeys", "list", "--output", "json")
    assert out.startswith("[\n\t{\n\t\t")
    (entry,) = json.loads(out)
    assert entry["key"] == key[: len("hskey-auth-") + 12] + "-***"
    assert entry["expiration"] == {"seconds": int(hs.now) + 3600}
    assert entry["acl_tags"] == ["tag:router"]
    assert entry["user"]["name"] == "admin"
    assert "used" not in entry
    assert "reusable" not in entry


def test_empty_lists_print_null(hs: World) -> None:
    """A nil slice through encoding/json."""
    assert cli(hs, "users", "list", "-o", "json")[1] == "null\n"
    assert cli(hs, "apikeys", "list", "-o", "json")[1] == "null\n"


def test_an_api_key_is_created_listed_by_its_prefix_and_expired(hs: World) -> None:
    """cli/api_key.go and types/api_key.go `Proto`: `hskey-api-<prefix>-***`."""
    code, key, _ = cli(hs, "apikeys", "create", "--expiration", "90d")
    assert code == 0
    (entry,) = listed(hs, "apikeys")
    assert entry["prefix"] == key.strip()[: len("hskey-api-") + 12] + "-***"
    assert entry["expiration"] == {"seconds": int(hs.now) + 90 * DAY}
    assert cli(hs, "apikeys", "expire", "--id", str(entry["id"]))[:2] == (0, "Key expired\n")
    assert listed(hs, "apikeys")[0]["expiration"] == {"seconds": int(hs.now)}


def login(
    world: World, key: str, machine: str = "mkey:laptop"
) -> tuple[dict[str, Any] | None, str | None]:
    with world.edit() as state:
        return headscale.login_with_authkey(
            state,
            key,
            machine_key=machine,
            node_key="nodekey:" + machine,
            hostname=machine,
            routes=[],
        )


def new_key(world: World, *extra: str) -> str:
    if not listed(world, "users"):
        cli(world, "users", "create", "admin")
    return cli(world, "preauthkeys", "create", "--user", "1", *extra)[1].strip()


def test_a_single_use_key_registers_one_node(hs: World) -> None:
    """hscontrol/state/state.go `HandleNodeFromPreAuthKey` and types/preauth_key.go
    `Validate`: a used single-use key is refused for a new machine ("authkey already used")."""
    key = new_key(hs)
    node, problem = login(hs, key)
    assert problem is None
    assert node is not None
    assert listed(hs, "preauthkeys")[0]["used"] is True
    assert login(hs, key, "mkey:phone") == (None, "authkey already used")


def test_the_same_machine_re_registering_skips_validation(hs: World) -> None:
    """state.go: "Existing node re-registering with same NodeKey and auth key, skipping
    validation" (a container restart sending its used key again)."""
    key = new_key(hs)
    login(hs, key)
    node, problem = login(hs, key)
    assert problem is None
    assert node is not None


def test_an_expired_or_unknown_key_is_refused(hs: World) -> None:
    """`Validate`: "authkey expired"; hscontrol/db/preauth_keys.go `findAuthKey`: a prefix the
    database does not have is "auth-key not found" (a lost database)."""
    key = new_key(hs, "--expiration", "1h")
    hs.advance(3601)
    assert login(hs, key) == (None, "authkey expired")
    hs.headscale_loses_database()
    assert login(hs, key) == (None, "auth-key not found")


def test_nodes_list_shows_a_tagged_node_under_tagged_devices(hs: World) -> None:
    """hscontrol/grpcv1.go `nodesToProto`: a tagged node is listed as user TaggedDevices
    (types/users.go); `online` is omitted while false (node.pb.go json tags, omitempty)."""
    key = new_key(hs, "--tags", "tag:router")
    login(hs, key, "mkey:router")
    (node,) = listed(hs, "nodes")
    assert node["user"]["name"] == "tagged-devices"
    assert node["tags"] == ["tag:router"]
    assert "online" not in node
    assert node["pre_auth_key"]["used"] is True


def test_nodes_register_needs_a_waiting_device_and_a_user(hs: World) -> None:
    """grpcv1.go `RegisterNode`: a 24-character registration ID, an existing user, a device in
    the registration cache; the CLI prints "Node <name> registered" (cli/nodes.go)."""
    cli(hs, "users", "create", "alice")
    code, _, err = cli(hs, "nodes", "register", "--key", "short", "--user", "alice")
    assert (code, err.splitlines()[0]) == (
        1,
        "Cannot register node: registration ID must be 24 characters long",
    )
    waiting = "AbCdEfGhIjKlMnOpQrStUv-_"
    code, _, err = cli(hs, "nodes", "register", "--key", waiting, "--user", "bob")
    assert err.startswith("Cannot register node: looking up user: user not found")
    code, _, err = cli(hs, "nodes", "register", "--key", waiting, "--user", "alice")
    assert err.startswith("Cannot register node: node not found in registration cache")
    with hs.edit() as state:
        state["headscale"]["pending"][waiting] = {
            "hostname": "laptop",
            "machine_key": "mkey:laptop",
        }
    assert cli(hs, "nodes", "register", "--key", waiting, "--user", "alice")[:2] == (
        0,
        "Node laptop registered\n",
    )


# --- the router ----------------------------------------------------------------------------------


def router_world(world: World) -> str:
    """Headscale with the router's single-use key in the Secret the router mounts; the router
    deployed (its first start logs in)."""
    world.deploy_headscale()
    key = new_key(world, "--tags", "tag:router")
    world.put_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "subnet-router-authkey"},
            "stringData": {"authkey": key},
        },
        "tailscale",
    )
    return world.deploy_router(hostname="k8s-router", routes=["10.0.0.0/24"])


def state_secret(world: World) -> dict[str, str]:
    secret = world.state["kube"]["objects"]["Secret/tailscale/subnet-router-state"]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_the_router_logs_in_once_and_then_runs_from_its_state_secret(world: World) -> None:
    """cmd/containerboot/main.go: with TS_AUTH_ONCE `tailscale up --authkey` runs only on
    NeedsLogin; tailscaled keeps `_machinekey` and `_current-profile` in the state Secret
    (ipn/store.go, ipn/store/kubestore), so a restart with Headscale intact runs at once."""
    assert router_world(world) == "Running"
    assert set(state_secret(world)) == {"_machinekey", "_current-profile"}
    (node,) = listed(world, "nodes")
    assert node["online"] is True
    assert node["name"] == "k8s-router"
    assert node["available_routes"] == ["10.0.0.0/24"]
    assert world.router_restarts() == "Running"
    assert len(listed(world, "nodes")) == 1


def test_the_router_crash_loops_after_headscale_loses_its_database(world: World) -> None:
    """containerboot: NeedsLogin (Headscale no longer knows the machine), one `tailscale up`
    with the key it has, refused ("auth-key not found": the database is gone),
    "failed to auth tailscale", CrashLoopBackOff; the stale profile stays in the state Secret."""
    router_world(world)
    world.headscale_loses_database()
    assert world.router_restarts() == "CrashLoopBackOff"
    assert world.state["router"]["log"][-1].endswith("backend error: auth-key not found")
    assert "_current-profile" in state_secret(world)


def test_the_router_crash_loops_after_its_node_is_deleted(world: World) -> None:
    """The same when only the node was deleted (Headplane, `headscale nodes delete`): the
    single-use key is known and used, "authkey already used" (types/preauth_key.go
    `Validate`)."""
    router_world(world)
    with world.edit() as state:
        state["headscale"]["nodes"] = []
    assert world.router_restarts() == "CrashLoopBackOff"
    assert world.state["router"]["log"][-1].endswith("backend error: authkey already used")
