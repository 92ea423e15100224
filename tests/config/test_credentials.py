"""A credential pasted into a plain key is never echoed, whatever its alphabet and wherever it lands.

Tokens are drawn as their issuers draw them: uniformly at random from each common credential
alphabet, at its usual length (a CSPRNG's output is what has to stay hidden; a string of forty
'a's is no token). Hypothesis picks the seed, the key and the padding, so a failure shrinks to one
reproducible (seed, key) pair. Every plain key of a config with every optional section set is
tried, and objects and lists that carry a token in a string anywhere, at any position relative
to where a long value is cut.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.credentials import HIDDEN_PREFIX, hidden_kind
from config.loader import SECRET_KEYS, ConfigError, validate_config
from tests.config.corpus import key_of, mutate
from tests.harness import stack_raw_config

ALNUM = string.ascii_letters + string.digits


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"sub": rng.getrandbits(64), "iat": rng.getrandbits(31)}).encode())
    return f"{header}.{claims}.{_b64url(rng.randbytes(32))}"


def _drawn(alphabet: str, length: int) -> Callable[[random.Random], str]:
    return lambda rng: "".join(rng.choice(alphabet) for _ in range(length))


# The credential shapes a homelab person holds, as their issuers generate them.
TOKENS: dict[str, Callable[[random.Random], str]] = {
    "cloudflare-api-token": _drawn(ALNUM + "_-", 40),
    "github-classic-pat": lambda rng: "ghp_" + _drawn(ALNUM, 36)(rng),
    "aws-secret-access-key": _drawn(ALNUM + "+/", 40),
    "base64-24-bytes": lambda rng: base64.b64encode(rng.randbytes(24)).decode(),
    "base64-32-bytes": lambda rng: base64.b64encode(rng.randbytes(32)).decode(),
    "base64url-32-bytes": lambda rng: _b64url(rng.randbytes(32)),
    "hex-16-bytes": lambda rng: rng.randbytes(16).hex(),
    "hex-32-bytes": lambda rng: rng.randbytes(32).hex(),
    "hex-16-bytes-upper": lambda rng: rng.randbytes(16).hex().upper(),
    "uuid": lambda rng: str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
    "jwt": _jwt,
}


def _full_configs() -> list[dict[str, Any]]:
    """The fixture stack with every optional key set, once with an NFS and once with an S3
    backup target, so every plain key kind of the model is there to paste into."""
    common = {
        "cluster.allowSchedulingOnControlPlanes": True,
        "cluster.talosConfigContract": "v1.13.0",
        "cluster.nodes.0.interface": "eth0",
        "cluster.nodes.1.mac": "00:1a:2b:3c:4d:5e",
        "cluster.nodes.2.currentAddress": "192.168.0.50",
        "cluster.imageFactory": {
            "systemExtensions": ["siderolabs/intel-ucode"],
            "extraKernelArgs": ["net.ifnames=0"],
        },
        "network.nameservers": ["192.168.0.1"],
        "tls.acmeEnvironment": "staging",
        "tls.dns01.zone": "sarma.love",
        "tls.recursiveNameservers": ["1.1.1.1:53"],
        "remoteAccess.nameservers": ["1.1.1.1"],
        "remoteAccess.adminUser": "admin",
        "remoteAccess.router": {
            "hostname": "k8s-router",
            "tag": "tag:k8s-router",
            "routes": ["192.168.0.0/24"],
        },
        "remoteAccess.headplane": {"enabled": True, "host": "headplane"},
        "remoteAccess.policy.groups": {"group:family": ["guest@"]},
        "remoteAccess.policy.tagOwners": {"tag:web": ["group:family"]},
        "remoteAccess.policy.hosts": {"nas": "192.168.0.5/32"},
        "apps.1": {
            "name": "wiki",
            "namespace": "wiki",
            "host": "docs",
            "visibility": "public",
            "service": "wiki",
            "port": 8080,
        },
        "storage": {"storageClass": "local-path", "localPathRoot": "/var/mnt/local-path"},
    }
    etcd = {"schedule": "0 3 * * *", "keep": 7}
    nfs = {"backups": {"nfs": {"server": "nas.lan", "path": "/volume1/backups"}, "etcd": etcd}}
    s3 = {
        "backups": {
            "s3": {
                "endpoint": "https://minio.lan:9000",
                "bucket": "homelab-backups",
                "region": "us-east-1",
                "prefix": "homelab",
                "accessKeyId": "homelab",
            },
            "etcd": etcd,
        },
        "backupSecretAccessKey": "s3cr3t-key",
    }
    base = stack_raw_config()
    configs = [mutate(base, {**common, **nfs}), mutate(base, {**common, **s3})]
    for config in configs:
        validate_config(config)  # each is valid: a problem line then comes from the token
    return configs


def _plain_paths(value: Any, path: str = "") -> Iterator[str]:
    """The dotted path of every scalar in `value` (list items by index)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _plain_paths(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _plain_paths(inner, f"{path}.{index}")
    else:
        yield path


CONFIGS = _full_configs()
PLAIN_KEYS = sorted(
    {
        (index, path)
        for index, config in enumerate(CONFIGS)
        for path in _plain_paths(config)
        if path.partition(".")[0] not in SECRET_KEYS
    }
)


def _problem_text(raw: dict[str, Any]) -> str:
    try:
        validate_config(raw)
    except ConfigError as error:
        return error.render()
    return ""  # the token is a valid value of the key (an id, a kernel flag): nothing printed


def _assert_not_echoed(token: str, text: str) -> None:
    # Not the token, nor any long piece of it (a cut at the end of a long value, say).
    piece = 10
    leaked = {token[i : i + piece] for i in range(len(token) - piece + 1)} & {
        text[i : i + piece] for i in range(len(text) - piece + 1)
    }
    assert not leaked, f"{sorted(leaked)[:3]} of the token shown in:\n{text}"


def test_the_full_configs_have_a_plain_key_of_every_kind() -> None:
    keys = {path for _, path in PLAIN_KEYS}
    for kind in (
        "domain",
        "cluster.name",
        "cluster.nodes.0.installDisk",
        "cluster.nodes.1.mac",
        "cluster.imageFactory.extraKernelArgs.0",
        "tls.acmeEmail",
        "remoteAccess.router.tag",
        "remoteAccess.policy.acls.0.dst.0",
        "backups.nfs.path",
        "backups.s3.endpoint",
        "backups.etcd.schedule",
        "storage.localPathRoot",
    ):
        assert kind in keys


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_no_token_is_echoed_from_any_plain_key_one_sweep(kind: str) -> None:
    # Every plain key once per token kind, each with its own random token.
    rng = random.Random(f"sweep-{kind}")
    for index, path in PLAIN_KEYS:
        token = TOKENS[kind](rng)
        _assert_not_echoed(token, _problem_text(mutate(CONFIGS[index], {path: token})))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(TOKENS)),
    seed=st.integers(min_value=0, max_value=2**64),
    key=st.sampled_from(PLAIN_KEYS),
)
def test_no_token_is_echoed_from_a_plain_key(kind: str, seed: int, key: tuple[int, str]) -> None:
    index, path = key
    token = TOKENS[kind](random.Random(seed))
    _assert_not_echoed(token, _problem_text(mutate(CONFIGS[index], {path: token})))


# Objects and lists where the model wants something else, or with a token in a string of a
# section that fails as a whole: the value is shown as an object, cut after 80 characters.
def _nested(token: str, padding: str) -> list[tuple[str, Any]]:
    return [
        ("apps", {"a": padding, "token": token}),
        ("apps", [padding, token]),
        ("apps", [{"name": padding, "namespace": token}]),
        ("cluster", [padding, {"token": token}]),
        ("network.addressPools", {"pool": [padding, token]}),
        ("remoteAccess.policy.acls", {"rule": {"src": [padding], "dst": [token]}}),
        ("remoteAccess.policy.groups", {token: ["guest@"]}),
        ("remoteAccess.policy.groups", {"group:family": [padding, token]}),
        ("remoteAccess.derp", [padding, token]),
        ("backups", {"s3": {"endpoint": padding, "bucket": token}, "nfs": {"server": "nas"}}),
        ("tls.dns01", {"provider": token}),
        ("storage", {"localPathRoot": [padding, token]}),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(TOKENS)),
    seed=st.integers(min_value=0, max_value=2**64),
    padding=st.integers(min_value=0, max_value=90),
    case=st.integers(min_value=0, max_value=len(_nested("", "")) - 1),
)
def test_no_token_is_echoed_from_inside_an_object_or_a_list(
    kind: str, seed: int, padding: int, case: int
) -> None:
    token = TOKENS[kind](random.Random(seed))
    path, value = _nested(token, "x" * padding)[case]
    text = _problem_text(mutate(CONFIGS[0], {path: value}))
    assert text, "the mutation must be refused"
    _assert_not_echoed(token, text)


@pytest.mark.parametrize(
    ("path", "typo", "shown"),
    [
        ("domain", "exmaple..org", '"exmaple..org"'),
        ("domain", "Sarma.Love", '"Sarma.Love"'),
        ("cluster.name", "My_Homelab", '"My_Homelab"'),
        ("tls.acmeEmail", "admin.sarma.love", '"admin.sarma.love"'),
        ("remoteAccess.router.tag", "k8s-router", '"k8s-router"'),
        ("cluster.nodes.0.installDisk", "/dev/nvme0n1p1", '"/dev/nvme0n1p1"'),
        (
            "cluster.nodes.0.installDisk",
            "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNF0R123456A-part1",
            '"/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNF0R123456A-part1"',
        ),
        ("backups.etcd.schedule", "0 24 * * *", '"0 24 * * *"'),
        ("network.gateway", "192.168.0.256", '"192.168.0.256"'),
        ("cluster.imageFactory.extraKernelArgs.0", "intel_iommu=on pt", '"intel_iommu=on pt"'),
        ("storage.localPathRoot", "/mnt/local_path_provisioner", '"/mnt/local_path_provisioner"'),
    ],
)
def test_ordinary_mistakes_are_still_shown(path: str, typo: str, shown: str) -> None:
    text = _problem_text(mutate(CONFIGS[0], {path: typo}))
    assert f"{key_of(path)}: {shown}" in text


def test_a_hidden_value_says_what_kind_of_value_it_was() -> None:
    token = "xLpQ2yMK-Ye9FZ1wUVl4nuYV_d8fNYvvDbzDZST6"
    text = _problem_text(mutate(CONFIGS[0], {"domain": token}))
    assert f"homelab:domain: {hidden_kind(token)} — must be a lowercase DNS name" in text
    assert hidden_kind(token) == (
        f"{HIDDEN_PREFIX} of 40 characters: letters, digits, '-' and '_'; not shown)"
    )


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_a_token_written_as_a_key_is_not_echoed(kind: str) -> None:
    rng = random.Random(f"key-{kind}")
    for _ in range(50):
        token = TOKENS[kind](rng)
        for raw in (
            {**CONFIGS[0], token: "x"},
            mutate(CONFIGS[0], {f"remoteAccess.derp.{token}": True}),
            mutate(CONFIGS[0], {"remoteAccess.policy.hosts": {token: "192.168.0.5/32"}}),
        ):
            _assert_not_echoed(token, _problem_text(raw))


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("cluster.allowSchedulingOnControlPlane", "homelab:cluster.allowSchedulingOnControlPlane"),
        ("remoteAccess.derp.publicDerpFallbak", "homelab:remoteAccess.derp.publicDerpFallbak"),
        ("apps.0.name_space", "homelab:apps[0].name_space"),
    ],
)
def test_a_misspelt_key_is_still_shown(path: str, key: str) -> None:
    assert f"{key}: unknown key" in _problem_text(mutate(CONFIGS[0], {path: True}))
