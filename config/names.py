"""Names that a service outside the stack refuses late: Let's Encrypt, S3, an NFS mount, Helm.

Each check mirrors the rule of the service that would refuse the name, so the config refuses it
before anything registers, in one line that says what is wanted (never the rule's regex).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

# An LDH label (RFC 5890 section 2.3.1): letters, digits, '-', not at either end, at most 63.
_LDH_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

# Let's Encrypt refuses contact e-mails at these domains: "frequently used when copy-pasting
# example configurations" (letsencrypt/boulder@v0.20260804.0:policy/pa.go `forbiddenMailDomains`,
# RFC 2606 section 3).
FORBIDDEN_MAIL_DOMAINS: Final = frozenset({"example.com", "example.net", "example.org"})
# As certificate names pa.go refuses none of them: `validNonWildcardDomain` checks the form and the
# ICANN suffix only, and `WillingToIssue` leaves names to the deployment's blocklist file, whose
# sample in the repository (test/ident-policy.yaml, "not reflective of Let's Encrypt's policies")
# does list example.net and example.org. So `domain: example.org` is not refused here; examples a
# person copies (README's `init` line) use an obvious placeholder outside the reserved names.
# Boulder allows at most 10 labels and 253 bytes (policy/pa.go `maxLabels`,
# `maxDNSIdentifierLength`).
MAX_LABELS: Final = 10
MAX_NAME_LENGTH: Final = 253
# Top-level names that exist only on a local network or by convention, never in the public DNS,
# so no public ACME CA can validate them. The Public Suffix List's ICANN section (what Boulder
# checks, below) still lists some of them (`onion`, `home.arpa`), hence this list:
# RFC 6761 section 6 (test, localhost, invalid, example), RFC 6762 (local), RFC 7686 (onion),
# RFC 8375 (home.arpa, under the infrastructure-only arpa), RFC 9476 (alt), and ICANN's
# 2024 reservation of `internal` for private use.
SPECIAL_USE_TLDS: Final = frozenset(
    {"alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion", "test"}
)
# Helm refuses a release name longer than 53 characters (helm/helm@v3.19.0:
# pkg/chartutil/validate_name.go `maxReleaseNameLen`, `ValidateReleaseName`).
HELM_RELEASE_NAME_MAX: Final = 53


@functools.cache
def _icann_suffixes() -> PublicSuffixList:
    # Only the ICANN section, and no default rule for unknown TLDs, as Boulder reads it
    # (letsencrypt/boulder@v0.20260804.0:iana/iana.go `ExtractSuffix`: IgnorePrivate, DefaultRule nil).
    return PublicSuffixList(only_icann=True, accept_unknown=False)


def ldh_name_problem(name: str) -> str | None:
    """Why `name` is not a dotted host name of LDH labels, or None."""
    if not name or len(name) > MAX_NAME_LENGTH:
        return "must be a host name of at most 253 characters"
    labels = name.split(".")
    if any(label == "" for label in labels):
        return "has an empty label (two dots in a row, or a dot at either end)"
    if not all(_LDH_LABEL.fullmatch(label) for label in labels):
        return (
            "must be made of labels of letters, digits and '-' (not at either end of a label), "
            "each at most 63 characters"
        )
    return None


def public_domain_problem(domain: str) -> str | None:
    """Why Let's Encrypt could not issue for (or mail) `domain`, or None.

    Boulder's `validNonWildcardDomain` (letsencrypt/boulder@v0.20260804.0:policy/pa.go): LDH
    labels, at most 10 of them and 253 bytes, not an IP address, no reserved-format label
    (`ab--` other than `xn--`), ending in an ICANN public suffix but not being one.
    """
    domain = domain.lower()
    if (why := ldh_name_problem(domain)) is not None:
        return why
    labels = domain.split(".")
    if len(labels) < 2:
        return "must have at least two labels; a single label is no public domain"
    if _is_ipv4(domain):
        return "must be a domain name, not an IP address"
    if len(labels) > MAX_LABELS:
        return f"has {len(labels)} labels; Let's Encrypt takes at most {MAX_LABELS}"
    if any(len(label) >= 4 and label[2:4] == "--" and label[:2] != "xn" for label in labels):
        return "has a label in a reserved format ('ab--…'); only 'xn--' labels may use it"
    tld = labels[-1]
    if tld in SPECIAL_USE_TLDS:
        return (
            f"ends in '.{tld}', a name only a local network knows (RFC 6761/6762/7686/8375/9476, "
            "ICANN's '.internal'); a public CA cannot validate it, use a domain you registered"
        )
    suffix = _icann_suffixes().publicsuffix(domain)
    if suffix is None:
        return (
            f"'.{tld}' is not a public top-level domain (not in the Public Suffix List's ICANN "
            "section), so no public CA can issue for it; use a domain you registered"
        )
    if suffix == domain:
        return f"is a public suffix itself ({suffix!r}); use a domain registered under it"
    return None


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return text.rpartition(".")[2].isdigit()
    return True


# Local part: what Go's net/mail accepts unquoted (RFC 5322 dot-atom), which Boulder parses with
# (`ValidEmail`: mail.ParseAddress); quoted local parts are left out, no homelab needs one.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def acme_email_problem(value: str) -> str | None:
    """Why Let's Encrypt would refuse `value` as the account's contact, or None
    (letsencrypt/boulder@v0.20260804.0:policy/pa.go `ValidEmail`)."""
    if value.lower().startswith("mailto:"):
        return "must be the address alone, without 'mailto:' (cert-manager adds it)"
    local, at, domain = value.rpartition("@")
    if not at or not local or not _LOCAL_PART.fullmatch(local):
        return "must be an e-mail address 'name@domain'"
    domain = domain.lower()
    if _is_ipv4(domain) or domain.startswith("["):
        return f"must be an e-mail address at a domain name, not at an IP address ({domain!r})"
    if domain in FORBIDDEN_MAIL_DOMAINS:
        return (
            f"is at {domain!r}, a domain reserved for examples that Let's Encrypt refuses for "
            "contact e-mails; use a mailbox you read"
        )
    if (why := public_domain_problem(domain)) is not None:
        return f"has a domain Let's Encrypt refuses for contact e-mails: {why}"
    return None


def bucket_name_problem(value: str) -> str | None:
    """Why S3 refuses `value` as a general purpose bucket name, or None (Amazon S3 User Guide,
    "General purpose bucket naming rules"; MinIO and B2 follow the same rules)."""
    if not 3 <= len(value) <= 63:
        return "must be 3 to 63 characters long"
    if not re.fullmatch(r"[a-z0-9.-]+", value):
        return "may hold only lowercase letters, digits, '.' and '-'"
    if not (value[0].isalnum() and value[-1].isalnum()):
        return "must begin and end with a letter or digit"
    if ".." in value:
        return "must not contain two dots in a row"
    if _is_ipv4(value) and re.fullmatch(r"[0-9.]+", value):
        return "must not be formatted as an IP address"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if value.startswith(prefix):
            return f"must not start with {prefix!r} (reserved by S3)"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if value.endswith(suffix):
            return f"must not end with {suffix!r} (reserved by S3)"
    return None


def server_address_problem(value: str) -> str | None:
    """Why `value` is neither an IPv4 address nor a host name a node can resolve, or None."""
    if re.fullmatch(r"[0-9.]+", value):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return "looks like an IPv4 address but is not one (four numbers 0-255)"
        return None
    return ldh_name_problem(value)


def endpoint_problem(value: str) -> str | None:
    """Why `value` is not an S3 API URL 'http(s)://host[:port][/]', or None (never echoes it:
    a URL may carry credentials)."""
    if not re.fullmatch(r"[\x21-\x7e]+", value):
        return "must be a URL without spaces, e.g. 'https://minio.lan:9000'"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must start with 'https://' or 'http://', e.g. 'https://minio.lan:9000'"
    if "@" in parts.netloc:
        return (
            "must not carry credentials in the URL; the key id is `accessKeyId`, the secret "
            "`homelab:backupSecretAccessKey`"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return (
            "must be the endpoint alone, without a path: the bucket is `bucket`, the path "
            "inside it `prefix`"
        )
    host, _, port = parts.netloc.partition(":")
    if (why := server_address_problem(host)) is not None:
        return f"has a host that {why}"
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"has port {port!r}; a port is a number from 1 to 65535"
    return None
