"""Records of the recording engine as the policy SDK's `ResourceValidationArgs`, so tests run the
real policies without the CLI: same argument objects, same unknown-checking property proxies."""

from __future__ import annotations

import copy
from typing import Any

from pulumi_policy import (
    PolicyProviderResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.policy import PolicyCustomTimeouts
from pulumi_policy.proxy import unknown_checking_proxy

from homelab.engine import ResourceRecord
from homelab.graph import provider_urn


def validation_args(record: ResourceRecord) -> ResourceValidationArgs:
    provider = None
    if record.provider:
        urn = provider_urn(record.provider)
        provider = PolicyProviderResource(
            urn.split("::")[2].split("$")[-1], {}, urn, urn.split("::")[-1]
        )
    options = PolicyResourceOptions(
        protect=record.protect,
        ignore_changes=list(record.ignore_changes),
        delete_before_replace=record.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(record.additional_secret_outputs),
        parent=record.parent,
    )
    props: dict[str, Any] = copy.deepcopy(dict(record.inputs))
    return ResourceValidationArgs(
        record.type, unknown_checking_proxy(props), record.urn, record.name, options, provider
    )


def violations(policy: ResourceValidationPolicy, record: ResourceRecord) -> list[str]:
    """What `policy` reports for `record`, run exactly as the analyzer runs it."""
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    result = policy.validate(validation_args(record), report)
    assert result is None, "policies are synchronous"
    return found
