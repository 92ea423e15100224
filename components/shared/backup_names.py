"""Names the backup pieces create and `python -m homelab status` looks up.

Defined once here so the component that creates an object and the status command that reads it
cannot drift apart.
"""

from typing import Final

# The namespace of the scheduled etcd snapshot job (and its Talos API access), one of those the
# stack owns (config/namespaces.py).
from config.namespaces import BACKUP_NAMESPACE as BACKUP_NAMESPACE

# The CronJob that takes etcd snapshots through the Talos API.
ETCD_SNAPSHOT_CRONJOB: Final = "etcd-snapshot"
# The Headscale pod's replication sidecar (and its restore-on-empty init container's prefix).
LITESTREAM_CONTAINER: Final = "litestream"
