"""The CrossGuard policies: each pure check of policies/rules.py as a mandatory resource policy.

`__main__.py` hands `POLICIES` to `PolicyPack` (which starts the analyzer server, so it is only
built there); the tests call each policy's `validate` with `ResourceValidationArgs` they build.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policies import rules

Check = Callable[[str, rules.Props], list[str]]


def resource_policy(
    name: str, description: str, check: Check, *, project_objects_only: bool
) -> ResourceValidationPolicy:
    """A mandatory policy reporting every message of `check`.

    `project_objects_only` skips the children of Helm charts: their manifests are upstream's, and a
    finding there can only be fixed through the chart's values, which the Helm checks cover.
    """

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if project_objects_only and rules.from_helm_chart(args.urn):
            return
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _validate_provider(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    provider = args.provider.urn if args.provider is not None else None
    for message in rules.check_explicit_provider(args.resource_type, provider):
        report_violation(message, None)


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        "load-balancer-explicit-ip",
        "LoadBalancer Services request a fixed LAN IP with the metallb.io/loadBalancerIPs "
        "annotation.",
        rules.check_load_balancer_ip,
        project_objects_only=False,
    ),
    resource_policy(
        "no-plaintext-secrets",
        "No token, password, key or PEM private key in a ConfigMap or a container's env, command "
        "or args.",
        rules.check_no_plaintext_secrets,
        project_objects_only=True,
    ),
    resource_policy(
        "private-routes-carry-allowlist",
        "Routes not annotated homelab-as-code/visibility: public use the private-only "
        "allowlist middleware.",
        rules.check_private_routes_allowlisted,
        project_objects_only=True,
    ),
    resource_policy(
        "routes-name-entrypoints",
        "Every IngressRoute names spec.entryPoints and every Ingress the "
        "traefik.ingress.kubernetes.io/router.entrypoints annotation, never Traefik's defaults.",
        rules.check_routes_name_entrypoints,
        project_objects_only=True,
    ),
    resource_policy(
        "images-pinned",
        "Container images name a fixed tag or digest (never latest or untagged); Helm charts name "
        "their version.",
        rules.check_images_pinned,
        project_objects_only=False,
    ),
    resource_policy(
        "resource-limits",
        "Every container of this project's workloads sets CPU and memory limits.",
        rules.check_resource_limits,
        project_objects_only=True,
    ),
    ResourceValidationPolicy(
        name="kubernetes-explicit-provider",
        description="Kubernetes objects use the stack's provider, never the default one "
        "(~/.kube/config).",
        validate=_validate_provider,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
