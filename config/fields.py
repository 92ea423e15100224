"""Single-field value types of the config model, each with a validator that says in words what
is wanted: the node's disk and link, tags, paths, the VPN's resolvers and the backup target's
names (config/model.py uses them; config/names.py and config/cron.py hold the upstream rules).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

from config.credentials import PlainRuns
from config.cron import CronError, check_schedule
from config.names import (
    bucket_name_problem,
    endpoint_problem,
    server_address_problem,
)
from config.networks import TAILSCALE_SERVICE_IP

# Linux names a partition after its disk: sda1, vdb2, xvda1; nvme0n1p1, mmcblk0p1, loop0p1
# (a 'p' before the number when the disk name ends in a digit). udev links a partition as
# <disk link>-part<N> and under by-partuuid/by-partlabel; by-uuid and by-label name filesystems.
_PARTITION = re.compile(
    r"^/dev/(?:(?:[shv]d|xvd)[a-z]+[0-9]+|(?:nvme[0-9]+n[0-9]+|mmcblk[0-9]+|loop[0-9]+)p[0-9]+)$"
    r"|-part[0-9]+$"
    r"|^/dev/disk/by-(?:partuuid|partlabel|uuid|label)/"
)


def _install_disk(value: str) -> str:
    """Talos installs to `machine.install.disk` as a whole disk: the install sequence resolves the
    path's symlinks and hands it to the installer, which writes its own partition table there
    (siderolabs/talos@v1.13.9:internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go
    `Install`, `install.RunInstallerContainer(disk, ...)`), so a partition cannot be one."""
    if _PARTITION.search(value):
        raise ValueError(
            "must be a whole disk, not a partition or filesystem (Talos partitions the disk "
            "itself); e.g. '/dev/sda', '/dev/nvme0n1' or a /dev/disk/by-id/… link without '-partN'"
        )
    return value


def vpn_nameserver(address: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """A nameserver pushed to VPN clients: not Tailscale's own resolver, which forwards to these
    (tailscale/tailscale@v1.102.3:net/tsaddr/tsaddr.go `TailscaleServiceIP`, the MagicDNS proxy)."""
    if address == TAILSCALE_SERVICE_IP:
        raise ValueError(
            "is Tailscale's own resolver on every client (MagicDNS), which forwards to these "
            "nameservers: it would ask itself; give an upstream resolver, e.g. '1.1.1.1'"
        )
    return address


def _install_disk_path(value: str) -> str:
    if not re.fullmatch(r"/dev/[A-Za-z0-9._:/+-]+", value):
        raise ValueError(
            "must be a device path under /dev without spaces, e.g. '/dev/sda', '/dev/nvme0n1' "
            "or a /dev/disk/by-id/… link"
        )
    return _install_disk(value)


def _interface_name(value: str) -> str:
    # Linux link names: at most 15 characters (IFNAMSIZ 16 with the NUL), no '/' or spaces.
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,15}", value):
        raise ValueError(
            "must be a Linux link name of 1-15 letters, digits, '.', '_' or '-', e.g. 'eth0' "
            "or 'enp3s0'"
        )
    return value


def _acl_tag(value: str) -> str:
    if not re.fullmatch(r"tag:[a-z0-9][a-z0-9-]*", value):
        raise ValueError("must be an ACL tag 'tag:' and a lowercase name, e.g. 'tag:k8s-router'")
    return value


def _local_path_root(value: str) -> str:
    if not re.fullmatch(r"/var/[A-Za-z0-9._/-]+", value):
        # Talos' root filesystem is read-only; /var is its writable partition.
        raise ValueError(
            "must be a directory under /var (Talos' only writable place) of letters, digits, "
            "'.', '_', '-' and '/', e.g. '/var/mnt/local-path-provisioner'"
        )
    return value


def _cron(value: str) -> str:
    """A CronJob schedule the API server accepts on create (config/cron.py)."""
    try:
        check_schedule(value)
    except CronError as error:
        raise ValueError(
            f"{error}; a cron schedule is 'minute hour day-of-month month day-of-week', "
            "e.g. '0 3 * * *' (03:00 daily)"
        ) from None
    return value


def _bucket_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValueError(
            "must be a path inside the bucket of letters, digits, '.', '_', '-' and '/', "
            "e.g. 'homelab'"
        )
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(
            "must be a path inside the bucket without leading or trailing '/', e.g. 'homelab'"
        )
    return value


def _s3_endpoint(value: str) -> str:
    if (why := endpoint_problem(value)) is not None:
        raise ValueError(why)
    return value


def _bucket_name(value: str) -> str:
    if (why := bucket_name_problem(value)) is not None:
        raise ValueError(f"{why} (S3's bucket naming rules), e.g. 'homelab-backups'")
    return value


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]+", value):
        raise ValueError(
            "must be a region name of lowercase letters, digits and '-', e.g. 'us-east-1'"
        )
    return value


def _access_key_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9+/=._-]{3,128}", value):
        raise ValueError(
            "must be an access key id of 3-128 letters, digits or '+/=._-', without spaces"
        )
    return value


def _server_address(value: str) -> str:
    if (why := server_address_problem(value)) is not None:
        raise ValueError(
            f"{why}; the NFS server is an IPv4 address or a host name the nodes resolve, "
            "e.g. '192.168.0.5' or 'nas.lan'"
        )
    return value


def _export_path(value: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", value):
        raise ValueError(
            "must be the absolute path the NFS server exports (letters, digits, '.', '_', '-', "
            "'/'), e.g. '/volume1/backups'"
        )
    return value


# What a long run of a plausible value is made of (config/credentials.py `PlainRuns`), where a
# key takes more than lowercase names: a failed value of other characters is shown as the kind
# of value it is, never echoed. Paths join lowercase names with '/' and '_'; device links carry
# a disk's model and serial number; an access key id is uppercase letters and digits.
PATH_RUNS = PlainRuns("a-z0-9_/-")
DEVICE_RUNS = PlainRuns("a-z0-9_/-", free_after=("/dev/",))
ACCESS_KEY_ID_RUNS = PlainRuns("A-Z0-9")
# A schedule is short fields; only a time zone (refused, but readable) makes a long run.
CRON_RUNS = PlainRuns(free_after=("TZ=", "CRON_TZ="))

CronSchedule = Annotated[str, AfterValidator(_cron), CRON_RUNS]
BucketPrefix = Annotated[str, AfterValidator(_bucket_prefix), PATH_RUNS]
ExportPath = Annotated[str, AfterValidator(_export_path), PATH_RUNS]
S3Endpoint = Annotated[str, AfterValidator(_s3_endpoint)]
BucketName = Annotated[str, AfterValidator(_bucket_name)]
Region = Annotated[str, AfterValidator(_region)]
AccessKeyId = Annotated[str, AfterValidator(_access_key_id), ACCESS_KEY_ID_RUNS]
ServerAddress = Annotated[str, AfterValidator(_server_address)]

InstallDisk = Annotated[str, AfterValidator(_install_disk_path), DEVICE_RUNS]
InterfaceName = Annotated[str, AfterValidator(_interface_name)]
AclTag = Annotated[str, AfterValidator(_acl_tag)]
LocalPathRoot = Annotated[str, AfterValidator(_local_path_root), PATH_RUNS]
