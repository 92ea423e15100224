"""The homelab's guard rails as pure functions: (resource type, properties) in, violations out.

Each `check_*` function returns one message per violation (empty list = compliant). They take
plain mappings, so the unit tests call them directly on records of the recording engine, and the
CrossGuard pack (policies/pack.py) wraps each one in a `ResourceValidationPolicy`. Nothing here
imports Pulumi: the pack runs in its own virtualenv (policies/requirements.txt) and the tests in
the project's.

Properties arrive as the resource's inputs, with Kubernetes field names (camelCase). During a
preview the policy SDK hands over proxies (`Mapping`/`Sequence`, never `dict`/`list`) that raise on
unknown values, so every check only uses the abstract collection types.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

Props = Mapping[str, Any]

# --- shared conventions (kept equal to components/ by tests/policies/test_conventions.py) -------

# The public marker on an IngressRoute or Ingress; components/shared/security.py imports this one constant
# (the pack cannot import components, which need Pulumi's Kubernetes SDK). The prefix is the
# project's name, not any one user's domain: a DNS-1123 subdomain as Kubernetes requires of an
# annotation prefix (kubernetes/apimachinery pkg/util/validation/validation.go IsQualifiedName).
VISIBILITY_ANNOTATION: Final = "homelab-as-code/visibility"
# Traefik's LAN/tailnet allowlist middleware every private route must use (components/platform/traefik.py).
PRIVATE_MIDDLEWARE_NAME: Final = "private-only"
PRIVATE_MIDDLEWARE_NAMESPACE: Final = "traefik"
# How a plain Ingress names that middleware: `<namespace>-<name>@kubernetescrd` (Traefik docs,
# "Kubernetes Ingress" provider, router.middlewares annotation).
PRIVATE_MIDDLEWARE_INGRESS_REF: Final = (
    f"{PRIVATE_MIDDLEWARE_NAMESPACE}-{PRIVATE_MIDDLEWARE_NAME}@kubernetescrd"
)
# MetalLB's per-Service IP request (components.md section 5); the older prefix is deprecated.
METALLB_IPS_ANNOTATION: Final = "metallb.io/loadBalancerIPs"
DEPRECATED_METALLB_IPS_ANNOTATION: Final = "metallb.universe.tf/loadBalancerIPs"

# Tags that move, so a restart can run different code than the one reviewed.
MOVING_TAGS: Final = frozenset({"latest", "main", "master", "edge", "nightly", "dev"})

# --- type tokens ---------------------------------------------------------------------------------

_POD_SPEC_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
}
_HELM_TYPES: Final = frozenset(
    {"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart"}
)
# Kubernetes types that are components, not objects on the cluster: they carry no provider of
# their own in every engine version, so the provider rule does not apply to them.
_KUBERNETES_COMPONENT_TYPES: Final = frozenset(
    {
        "kubernetes:helm.sh/v3:Chart",
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:yaml:ConfigFile",
        "kubernetes:yaml:ConfigGroup",
        "kubernetes:yaml/v2:ConfigFile",
        "kubernetes:yaml/v2:ConfigGroup",
        "kubernetes:kustomize:Directory",
        "kubernetes:kustomize/v2:Directory",
    }
)
# Parents whose children are upstream's chart internals, not objects this project writes.
_CHART_PARENT_TYPES: Final = ("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")


@dataclass(frozen=True)
class KubernetesType:
    group: str
    version: str
    kind: str


def kubernetes_type(resource_type: str) -> KubernetesType | None:
    """`kubernetes:apps/v1:Deployment` -> (apps, v1, Deployment); None for other packages."""
    if not resource_type.startswith("kubernetes:"):
        return None
    module, _, kind = resource_type.removeprefix("kubernetes:").rpartition(":")
    group, _, version = module.rpartition("/")
    return KubernetesType(group=group, version=version, kind=kind)


def kind_of(resource_type: str) -> str | None:
    parsed = kubernetes_type(resource_type)
    return parsed.kind if parsed is not None else None


def from_helm_chart(urn: str) -> bool:
    """Whether a URN belongs to a child of a Helm chart component (upstream's manifests).

    A URN spells the type of every ancestor: `urn:pulumi:<stack>::<project>::<parent
    types joined by $>$<type>::<name>`.
    """
    type_chain = urn.split("::")[2] if urn.count("::") >= 3 else ""
    ancestors = type_chain.split("$")[:-1]
    return any(a in _CHART_PARENT_TYPES for a in ancestors)


# --- small accessors -----------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else ()


def _at(props: Props, path: Sequence[str]) -> Any:
    value: Any = props
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _annotations(props: Props) -> Mapping[str, Any]:
    return _mapping(_mapping(props.get("metadata")).get("annotations"))


def _describe(kind: str, props: Props) -> str:
    metadata = _mapping(props.get("metadata"))
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    where = f"{namespace}/{name}" if namespace and name else (name or "(unnamed)")
    return f"{kind} {where}"


@dataclass(frozen=True)
class Container:
    field: str  # containers, initContainers or ephemeralContainers
    spec: Mapping[str, Any]

    @property
    def label(self) -> str:
        name = self.spec.get("name") or "(unnamed)"
        return (
            f"{self.field[:-1]} {name!r}" if self.field != "containers" else f"container {name!r}"
        )


def pod_spec(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    """The pod spec of a workload object (Pod, Deployment, CronJob, ...), else None."""
    kind = kind_of(resource_type)
    if kind is None or kind not in _POD_SPEC_PATHS:
        return None
    spec = _at(props, _POD_SPEC_PATHS[kind])
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[Container]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for item in _sequence(spec.get(field)):
            if isinstance(item, Mapping):
                yield Container(field, item)


# --- 1. LoadBalancer Services get an explicit MetalLB IP ----------------------------------------


def _ip_list_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    for part in value.split(","):
        try:
            ipaddress.ip_address(part.strip())
        except ValueError:
            return f"has {part.strip()!r}, which is not an IP address"
    return None


def _load_balancer_problems(
    where: str, service_type: Any, annotations: Mapping[str, Any], load_balancer_ip: Any
) -> list[str]:
    if service_type != "LoadBalancer":
        return []
    if METALLB_IPS_ANNOTATION in annotations:
        problem = _ip_list_problem(annotations[METALLB_IPS_ANNOTATION])
        return [f"{where}: annotation {METALLB_IPS_ANNOTATION} {problem}"] if problem else []
    if DEPRECATED_METALLB_IPS_ANNOTATION in annotations:
        return [
            f"{where}: {DEPRECATED_METALLB_IPS_ANNOTATION} is deprecated; "
            f"request the IP with {METALLB_IPS_ANNOTATION}"
        ]
    if load_balancer_ip:
        return [
            f"{where}: spec.loadBalancerIP is deprecated in Kubernetes; "
            f"request the IP with the {METALLB_IPS_ANNOTATION} annotation"
        ]
    return [
        f"{where}: a LoadBalancer Service without an explicit IP gets a random one from the pool; "
        f"set the {METALLB_IPS_ANNOTATION} annotation (MetalLB.request_ip)"
    ]


def _chart_name(props: Props) -> str:
    chart = props.get("chart")
    if not isinstance(chart, str):
        return ""
    return chart.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]


def check_load_balancer_ip(resource_type: str, props: Props) -> list[str]:
    """Every LoadBalancer Service requests its IP with the MetalLB annotation.

    Also Helm values: any `service` map with `type: LoadBalancer`, and the Traefik chart, whose
    Service is a LoadBalancer unless `service.type` says otherwise (components.md section 6).
    """
    if kind_of(resource_type) == "Service":
        spec = _mapping(props.get("spec"))
        return _load_balancer_problems(
            _describe("Service", props),
            spec.get("type"),
            _annotations(props),
            spec.get("loadBalancerIP"),
        )
    if resource_type not in _HELM_TYPES:
        return []
    values = _mapping(props.get("values"))
    problems: list[str] = []
    for path, service in _walk_mappings(values, "service"):
        service_type = service.get("type")
        if service_type is None and _chart_name(props) == "traefik" and path == "service":
            if service.get("enabled", True) is False:
                continue
            service_type = "LoadBalancer"
        problems += _load_balancer_problems(
            f"Helm values {path} of chart {_chart_name(props) or '(unknown)'}",
            service_type,
            _mapping(service.get("annotations")),
            _at(service, ("spec", "loadBalancerIP")) or service.get("loadBalancerIP"),
        )
    if _chart_name(props) == "traefik" and "service" not in values:
        problems += _load_balancer_problems(
            "Helm values service of chart traefik", "LoadBalancer", {}, None
        )
    return problems


def _walk_mappings(value: Any, key: str, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping stored under `key` anywhere in `value`, with its dotted path."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            child = f"{path}.{k}" if path else str(k)
            if k == key and isinstance(v, Mapping):
                yield child, v
            yield from _walk_mappings(v, key, child)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for i, v in enumerate(value):
            yield from _walk_mappings(v, key, f"{path}.{i}")


# --- 2. No plaintext secret in a ConfigMap or an env var -----------------------------------------

# A name is secret-shaped when one of its words is one of these (words split at _ - . and case).
_SECRET_WORDS: Final = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "authkey",
        "apikey",
        "privatekey",
        "credential",
        "credentials",
    }
)
# ... unless its last word says the value only points at the secret, or it is public material.
_REFERENCE_WORDS: Final = frozenset(
    {"path", "file", "dir", "ref", "name", "namespace", "id", "url", "ttl", "expiry", "length"}
)
_PUBLIC_WORDS: Final = frozenset({"public", "pub"})
# Names that are secret-shaped but name a Kubernetes Secret rather than hold one:
# TS_KUBE_SECRET is the Secret containerboot keeps its state in (components.md section 4).
_NAMES_OF_SECRETS: Final = frozenset({"TS_KUBE_SECRET"})
# Values that point at a secret instead of holding it: a file, env substitution, an empty value.
_REFERENCE_VALUE = re.compile(r"^(file:|/|\$\{|\$\(|<)")
# Secret material recognisable by its shape wherever it appears.
_SECRET_VALUE_PATTERNS: Final = (
    (re.compile(r"hskey-[A-Za-z0-9]"), "a Headscale key (hskey-...)"),
    (re.compile(r"tskey-[A-Za-z0-9]"), "a Tailscale key (tskey-...)"),
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a PEM private key"),
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# `name: value` / `NAME=value` lines of config formats that are not YAML mappings (env files, TOML).
_ASSIGNMENT_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*(.*?)\s*$")


def secret_shaped_name(name: str) -> bool:
    """Whether a key/variable name says it holds a secret (token, password, api key, ...)."""
    if name in _NAMES_OF_SECRETS:
        return False
    words = [w.lower() for w in _WORD_SPLIT.split(name) if w]
    if not words or words[-1] in _REFERENCE_WORDS or _PUBLIC_WORDS & set(words):
        return False
    # A bare lowercase `key` is a Kubernetes field name (tolerations, label selectors,
    # secretKeyRef, configMapKeyRef), never the secret itself; an env var `KEY`, `apiKey`,
    # `private_key` and `authKey` still count.
    if name == "key":
        return False
    return bool(_SECRET_WORDS & set(words))


def _literal(value: Any) -> bool:
    """A non-empty string that is the value itself, not a pointer to it."""
    text = value.strip().strip("\"'") if isinstance(value, str) else ""
    return bool(text) and not _REFERENCE_VALUE.match(text)


def secret_material(text: str) -> str | None:
    """What kind of secret material `text` contains, if any."""
    for pattern, what in _SECRET_VALUE_PATTERNS:
        if pattern.search(text):
            return what
    return None


def _secrets_in_text(text: str, where: str) -> list[str]:
    """Secret-shaped keys with literal values inside a config file, and key material anywhere."""
    problems: list[str] = []
    material = secret_material(text)
    if material:
        problems.append(f"{where} contains {material}")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    if isinstance(document, Mapping | list):
        for path, value in _named_leaves(document):
            if secret_shaped_name(path.rsplit(".", 1)[-1]) and _literal(value):
                problems.append(f"{where}: {path} holds a literal secret")
        return problems
    for line in text.splitlines():
        match = _ASSIGNMENT_LINE.match(line)
        if match and secret_shaped_name(match.group(1)) and _literal(match.group(2)):
            problems.append(f"{where}: {match.group(1)} holds a literal secret")
    return problems


def _named_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _named_leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for i, v in enumerate(value):
            # A list item takes its parent's name: `keys: [abc]` is as secret as `key: abc`.
            yield from _named_leaves(v, f"{path}" if path else str(i))
    else:
        yield path, value


def _config_map_problems(props: Props) -> list[str]:
    where = _describe("ConfigMap", props)
    problems: list[str] = []
    for key, value in _mapping(props.get("data")).items():
        if not isinstance(value, str):
            continue
        if secret_shaped_name(str(key)) and _literal(value):
            problems.append(f"{where}: key {key!r} holds a literal secret; use a Secret")
        problems += [f"{p}; use a Secret" for p in _secrets_in_text(value, f"{where} key {key!r}")]
    for key, value in _mapping(props.get("binaryData")).items():
        try:
            text = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        material = secret_material(text)
        if material:
            problems.append(f"{where}: binaryData {key!r} contains {material}; use a Secret")
    return problems


def _env_problems(kind: str, props: Props, container: Container) -> list[str]:
    where = f"{_describe(kind, props)} {container.label}"
    problems: list[str] = []
    for variable in _sequence(container.spec.get("env")):
        variable = _mapping(variable)
        name = str(variable.get("name", ""))
        value = variable.get("value")
        if secret_shaped_name(name) and _literal(value):
            problems.append(
                f"{where}: env {name} holds a literal secret; use valueFrom.secretKeyRef "
                "or a mounted Secret file"
            )
        elif isinstance(value, str) and (material := secret_material(value)):
            problems.append(f"{where}: env {name} contains {material}; use a Secret")
    for field in ("command", "args"):
        for argument in _sequence(container.spec.get(field)):
            if isinstance(argument, str) and (material := secret_material(argument)):
                problems.append(f"{where}: {field} contains {material}; use a Secret")
    return problems


def check_no_plaintext_secrets(resource_type: str, props: Props) -> list[str]:
    """No secret in a ConfigMap or in a container's env/command/args: those are readable by
    anyone who may read the object, and land in plaintext in Pulumi state."""
    kind = kind_of(resource_type)
    if kind == "ConfigMap":
        return _config_map_problems(props)
    spec = pod_spec(resource_type, props)
    if spec is None or kind is None:
        return []
    return [p for c in containers(spec) for p in _env_problems(kind, props, c)]


# --- 3. Private routes carry the allowlist -------------------------------------------------------


def _is_public(props: Props) -> bool:
    return _annotations(props).get(VISIBILITY_ANNOTATION) == "public"


def _uses_private_middleware(reference: Any, route_namespace: Any) -> bool:
    """A middleware reference without a namespace means the route's own namespace."""
    fields = _mapping(reference)
    namespace = fields.get("namespace") or route_namespace
    return bool(
        fields.get("name") == PRIVATE_MIDDLEWARE_NAME and namespace == PRIVATE_MIDDLEWARE_NAMESPACE
    )


def check_private_routes_allowlisted(resource_type: str, props: Props) -> list[str]:
    """Every route of a host that is not marked public goes through the allowlist middleware.

    The public marker is the annotation `homelab-as-code/visibility: public`; anything else is
    private, so a forgotten marker fails closed (the route is refused, not opened to the internet).
    """
    parsed = kubernetes_type(resource_type)
    if parsed is None or _is_public(props):
        return []
    where = _describe(parsed.kind, props)
    fix = (
        f"add middleware {PRIVATE_MIDDLEWARE_NAMESPACE}/{PRIVATE_MIDDLEWARE_NAME}, or annotate "
        f"{VISIBILITY_ANNOTATION}: public if the host is meant for the internet"
    )
    if parsed.kind == "IngressRoute" and parsed.group in ("traefik.io", "traefik.containo.us"):
        namespace = _mapping(props.get("metadata")).get("namespace")
        routes = _sequence(_mapping(props.get("spec")).get("routes"))
        return [
            f"{where}: route {i} ({_mapping(route).get('match', '?')}) is private but has no "
            f"allowlist; {fix}"
            for i, route in enumerate(routes)
            if not any(
                _uses_private_middleware(m, namespace)
                for m in _sequence(_mapping(route).get("middlewares"))
            )
        ]
    if parsed.kind == "Ingress" and parsed.group == "networking.k8s.io":
        chain = str(_annotations(props).get("traefik.ingress.kubernetes.io/router.middlewares", ""))
        if PRIVATE_MIDDLEWARE_INGRESS_REF not in [m.strip() for m in chain.split(",")]:
            return [
                f"{where}: private Ingress without the allowlist; add "
                f"{PRIVATE_MIDDLEWARE_INGRESS_REF} to traefik.ingress.kubernetes.io/"
                f"router.middlewares, or annotate {VISIBILITY_ANNOTATION}: public"
            ]
    return []


# --- 3b. Routes name their entrypoints ---------------------------------------------------------

# Traefik's Ingress provider reads a plain Ingress's entrypoints from this annotation
# (traefik pkg/provider/kubernetes/ingress annotations, v3.7).
INGRESS_ENTRYPOINTS_ANNOTATION: Final = "traefik.ingress.kubernetes.io/router.entrypoints"
_TRAEFIK_GROUPS: Final = ("traefik.io", "traefik.containo.us")


def check_routes_name_entrypoints(resource_type: str, props: Props) -> list[str]:
    """Every IngressRoute (HTTP or TCP) and Ingress names the entrypoints it is served on.

    A router without entrypoints gets Traefik's default ones (pkg/server/aggregator.go
    mergeConfiguration, v3.7); which those are is the chart's business, so a route must not lean
    on them, or one change of defaults would put it on the entrypoint the internet reaches.
    """
    parsed = kubernetes_type(resource_type)
    if parsed is None:
        return []
    where = _describe(parsed.kind, props)
    if parsed.kind in ("IngressRoute", "IngressRouteTCP") and parsed.group in _TRAEFIK_GROUPS:
        named = [e for e in _sequence(_mapping(props.get("spec")).get("entryPoints")) if e]
        if not named:
            return [f"{where}: spec.entryPoints is empty; name the entrypoints it is served on"]
    if parsed.kind == "Ingress" and parsed.group == "networking.k8s.io":
        value = str(_annotations(props).get(INGRESS_ENTRYPOINTS_ANNOTATION, ""))
        if not [e for e in (part.strip() for part in value.split(",")) if e]:
            return [
                f"{where}: no {INGRESS_ENTRYPOINTS_ANNOTATION} annotation; name the "
                "entrypoints it is served on"
            ]
    return []


# --- 4. Images and charts are pinned -------------------------------------------------------------

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned, or None when it names a fixed tag or digest."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    name, at, digest = image.partition("@")
    if at:
        return None if _DIGEST.fullmatch(digest) else f"has a malformed digest {digest!r}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"uses {image!r} without a tag (Kubernetes pulls :latest)"
    tag = last.rsplit(":", 1)[1]
    if not tag or tag in MOVING_TAGS:
        return f"uses {image!r}, a moving tag"
    return None


def check_images_pinned(resource_type: str, props: Props) -> list[str]:
    """Every container image names a fixed tag or a digest; every chart names its version."""
    kind = kind_of(resource_type)
    spec = pod_spec(resource_type, props)
    if spec is not None and kind is not None:
        problems = []
        for container in containers(spec):
            problem = image_problem(container.spec.get("image"))
            if problem:
                problems.append(f"{_describe(kind, props)} {container.label} {problem}")
        return problems
    if resource_type not in _HELM_TYPES:
        return []
    chart = _chart_name(props) or "(unknown)"
    problems = []
    if not isinstance(props.get("version"), str) or not props.get("version"):
        problems.append(f"Helm chart {chart} has no version; pin it in config/pins.py")
    for path, image in _walk_mappings(_mapping(props.get("values")), "image"):
        tag = image.get("tag")
        if isinstance(tag, str) and tag in MOVING_TAGS:
            problems.append(f"Helm values {path}.tag of chart {chart} is the moving tag {tag!r}")
    return problems


# --- 5. Every container has resource limits ------------------------------------------------------

REQUIRED_LIMITS: Final = ("cpu", "memory")


def check_resource_limits(resource_type: str, props: Props) -> list[str]:
    """Every (init) container sets CPU and memory limits, so one runaway pod cannot starve the
    node that also runs the control plane."""
    kind = kind_of(resource_type)
    spec = pod_spec(resource_type, props)
    if spec is None or kind is None:
        return []
    problems = []
    for container in containers(spec):
        if container.field == "ephemeralContainers":
            continue  # Kubernetes does not allow resources on ephemeral containers.
        limits = _mapping(_mapping(container.spec.get("resources")).get("limits"))
        missing = [r for r in REQUIRED_LIMITS if not limits.get(r)]
        if missing:
            problems.append(
                f"{_describe(kind, props)} {container.label} has no resources.limits."
                + " / ".join(missing)
            )
    return problems


# --- 6. Kubernetes objects use the stack's explicit provider -------------------------------------


def provider_name(provider_reference: str) -> str:
    """The name part of a provider reference `urn:...::<name>` or `urn:...::<name>::<id>`."""
    parts = provider_reference.split("::")
    return parts[3] if len(parts) > 3 else parts[-1]


def check_explicit_provider(resource_type: str, provider_reference: str | None) -> list[str]:
    """A Kubernetes object must not fall back to the default provider: that one reads
    ~/.kube/config and would apply the object to whatever cluster the workstation points at."""
    if (
        not resource_type.startswith("kubernetes:")
        or resource_type in _KUBERNETES_COMPONENT_TYPES
        or resource_type.startswith("pulumi:providers:")
    ):
        return []
    if not provider_reference or provider_name(provider_reference).startswith("default"):
        return [
            f"{resource_type} uses the default Kubernetes provider (~/.kube/config); "
            "create it with ClusterAccess.opts(...)"
        ]
    return []
