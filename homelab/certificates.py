"""When the admin kubeconfig's client certificate expires, read from the certificate itself.

Talos issues the admin kubeconfig for a year (siderolabs/talos@v1.13.9:
pkg/machinery/constants/constants.go `KubernetesAdminCertDefaultLifetime`), and the stack renews
it only during an `up` in its last 720 hours (terraform-provider-talos@v0.11.0:
talos_cluster_kubeconfig_resource.go `ModifyPlan`, `certificate_renewal_duration`). After a year
without `up` the API server answers 401 (Unauthorized) to it, which says nothing about the nodes.

The notAfter is read from the DER of the X.509 certificate (RFC 5280 4.1: Certificate ::=
SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
validity SEQUENCE { notBefore, notAfter }, ... } ... }) with the standard library only.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import yaml

_PEM: re.Pattern[str] = re.compile(
    r"-----BEGIN CERTIFICATE-----(?P<body>[A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----"
)


def _element(data: bytes, index: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `index`."""
    tag = data[index]
    length = data[index + 1]
    start = index + 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    index = start
    while index < end:
        tag, content, after = _element(data, index)
        found.append((tag, content, after))
        index = after
    return found


def _time(tag: int, text: str) -> datetime:
    """UTCTime (tag 0x17, YYMMDDHHMMSSZ; 50-99 is 19xx) or GeneralizedTime (0x18)."""
    if tag == 0x17:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def not_after(der: bytes) -> datetime | None:
    """The certificate's notAfter; None for anything that is not an X.509 certificate."""
    try:
        _, start, end = _element(der, 0)
        _, tbs_start, tbs_end = _children(der, start, end)[0]
        fields = _children(der, tbs_start, tbs_end)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _, validity_start, validity_end = fields[3]
        tag, time_start, time_end = _children(der, validity_start, validity_end)[1]
        return _time(tag, der[time_start:time_end].decode("ascii"))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def certificate_not_after(pem: str) -> datetime | None:
    found = _PEM.search(pem)
    if found is None:
        return None
    try:
        return not_after(base64.b64decode("".join(found.group("body").split())))
    except (binascii.Error, ValueError):
        return None


def kubeconfig_not_after(kubeconfig: str) -> datetime | None:
    """When the client certificate of the kubeconfig's current user expires; None when it has
    none that can be read."""
    try:
        document: Any = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    user_name = contexts.get(document.get("current-context"), {}).get("user")
    users = {u.get("name"): u.get("user") or {} for u in document.get("users") or []}
    data = str(users.get(user_name, {}).get("client-certificate-data", ""))
    try:
        pem = base64.b64decode(data).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return certificate_not_after(pem)
