"""The optional `backups` section: one target, its credentials as a secret, clear refusals."""

from __future__ import annotations

from typing import Any

import pytest

from config.loader import SECRET_KEYS, ConfigError, validate_config
from tests.harness import stack_raw_config

S3 = {"endpoint": "https://minio.lan:9000", "bucket": "homelab-backups", "accessKeyId": "homelab"}
NFS = {"server": "nas.lan", "path": "/volume1/backups"}


def with_backups(backups: Any, **extra: Any) -> dict[str, Any]:
    return {**stack_raw_config(), "backups": backups, **extra}


def problems(raw: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as error:
        validate_config(raw, **kwargs)
    return [p.line() for p in error.value.problems]


def test_backups_are_optional() -> None:
    assert validate_config(stack_raw_config()).backups is None


def test_an_s3_target_with_its_secret_and_defaults() -> None:
    config = validate_config(with_backups({"s3": S3}, backupSecretAccessKey="s3cr3t"))
    assert config.backups is not None
    assert config.backups.target.url == "https://minio.lan:9000/homelab-backups/homelab"
    assert config.backups.etcd.keep >= 1
    assert config.backups.etcd.schedule.count(" ") == 4


def test_an_nfs_target_needs_no_secret() -> None:
    config = validate_config(with_backups({"nfs": NFS}))
    assert config.backups is not None
    assert config.backups.target.url == "nfs://nas.lan/volume1/backups"


def test_the_secret_key_is_a_secret_key_and_refused_in_plaintext() -> None:
    assert "backupSecretAccessKey" in SECRET_KEYS
    lines = problems(
        with_backups({"s3": S3}, backupSecretAccessKey="s3cr3t"),
        plaintext_keys=frozenset({"backupSecretAccessKey"}),
    )
    assert len(lines) == 1
    assert lines[0].startswith("homelab:backupSecretAccessKey: (stored in plaintext)")
    assert "s3cr3t" not in lines[0]


@pytest.mark.parametrize(
    ("backups", "key", "says"),
    [
        ({}, "homelab:backups", "exactly one target"),
        ({"s3": S3, "nfs": NFS}, "homelab:backups", "exactly one target"),
        ({"nfs": {**NFS, "path": "volume1"}}, "homelab:backups.nfs.path", "absolute path"),
        ({"nfs": NFS, "etcd": {"keep": 0}}, "homelab:backups.etcd.keep", "greater than"),
        ({"nfs": NFS, "etcd": {"schedule": "daily"}}, "homelab:backups.etcd.schedule", "cron"),
        ({"nfs": NFS, "etcd": {"schedule": "0 3 * *"}}, "homelab:backups.etcd.schedule", "cron"),
        ({"s3": {**S3, "prefix": "/lab/"}}, "homelab:backups.s3.prefix", "leading or trailing"),
        ({"s3": {**S3, "endpoint": "minio.lan"}}, "homelab:backups.s3.endpoint", "https://"),
        ({"s3": {**S3, "bucket": "Bad_Bucket"}}, "homelab:backups.s3.bucket", "lowercase"),
        ({"nfs": NFS, "target": "x"}, "homelab:backups.target", "not a known key"),
    ],
)
def test_a_mistake_is_one_line_at_its_key(backups: Any, key: str, says: str) -> None:
    extra = {"backupSecretAccessKey": "s3cr3t"} if "s3" in backups else {}
    lines = problems(with_backups(backups, **extra))
    assert len(lines) == 1, lines
    assert lines[0].startswith(key + ":"), lines
    assert says in lines[0], lines
