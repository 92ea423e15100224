"""Asking and proposing for `python -m homelab init`: the workstation's LAN, free addresses in a
layout, and the questions with their remembered answers (homelab/init.py puts them together)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from config.model import parse_address_range
from config.rules import NS

# Values init derives from an answer: a problem with one asks that answer again.
DERIVED_FROM: Final = {
    "remoteAccess.magicDnsBaseDomain": "domain",
    "tls.dns01.zone": "domain",
}


class InitError(Exception):
    """A refusal the user can fix (an existing file, a malformed flag): one line, exit code 2."""


@dataclass(frozen=True)
class Lan:
    """What the workstation knows about its LAN: the network, the router, its own address."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    address: ipaddress.IPv4Address | None = None


def _proc_default_route(text: str) -> tuple[str, ipaddress.IPv4Address] | None:
    """(interface, gateway) of the default route in /proc/net/route (little-endian hex)."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000":
            gateway = ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1])
            return fields[0], gateway
    return None


def detect_lan() -> Lan | None:
    """The LAN of the default route (Linux: /proc/net/route and `ip -o -4 addr`), or None."""
    try:
        route = _proc_default_route(Path("/proc/net/route").read_text())
        if route is None:
            return None
        interface, gateway = route
        shown = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", interface],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    match = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", shown)
    if match is None:
        return None
    interface_address = ipaddress.IPv4Interface(match.group(1))
    return Lan(interface_address.network, gateway, interface_address.ip)


# --- proposals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where a stack's addresses go in a /24 (offsets from the network address)."""

    vip: int
    first_node: int
    pool_start: int
    pool_size: int


# The author's layouts: the homelab at .10/.11.../.220-.239, a lab at .50/.51.../.240-.249.
HOMELAB_LAYOUT: Final = Layout(vip=10, first_node=11, pool_start=220, pool_size=20)
LAB_LAYOUT: Final = Layout(vip=50, first_node=51, pool_start=240, pool_size=10)

AddressRange = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]


@dataclass
class Proposals:
    """Free addresses inside a LAN, in a layout, skipping what is taken (other stacks' addresses
    and this stack's answers so far, which `take` adds)."""

    lan: Lan
    layout: Layout = HOMELAB_LAYOUT
    taken: list[AddressRange] = field(default_factory=list)

    def take(self, *addresses: str) -> None:
        for text in addresses:
            try:
                first, last = parse_address_range(text)
            except ValueError:
                continue  # the model names a malformed answer; it takes nothing here
            self.taken.append((first, last))

    def _is_free(self, first: ipaddress.IPv4Address, last: ipaddress.IPv4Address) -> bool:
        network = self.lan.network
        if first <= network.network_address or last >= network.broadcast_address:
            return False
        if self.lan.gateway is not None and first <= self.lan.gateway <= last:
            return False
        return all(last < low or high < first for low, high in self.taken)

    def _offset(self, offset: int) -> int:
        # The /24 layout; on a smaller network, the same distance from its end.
        size = self.lan.network.num_addresses
        return offset if size >= 256 or offset < 128 else size - (256 - offset)

    def _free_from(self, offset: int) -> str:
        network = self.lan.network
        for candidate in range(max(self._offset(offset), 1), network.num_addresses - 1):
            address = network.network_address + candidate
            if self._is_free(address, address):
                return str(address)
        raise InitError(f"no free address left in {network} to propose; give it as a flag")

    def vip(self) -> str:
        return self._free_from(self.layout.vip)

    def node_ip(self) -> str:
        return self._free_from(self.layout.first_node)

    def pool(self) -> str:
        network, size = self.lan.network, self.layout.pool_size
        start = self._offset(self.layout.pool_start)
        # The layout's range, else the nearest free one below it.
        for offset in range(start, 0, -1):
            first = network.network_address + offset
            last = first + (size - 1)
            if self._is_free(first, last):
                return f"{first}-{last}"
        raise InitError(f"no free range of {size} addresses in {network}; give --pool")

    def in_pool(self, pool: str) -> str:
        """The first free address of the MetalLB pool typed (Traefik's, then STUN's)."""
        try:
            first, last = parse_address_range(pool)
        except ValueError:
            return self._free_from(self.layout.pool_start)  # the model reports the pool itself
        address = first
        while address <= last:
            if self._is_free(address, address):
                return str(address)
            address += 1
        raise InitError(f"the pool {pool} has no free address left; give a larger --pool")


# --- asking ----------------------------------------------------------------------------------

Proposal = str | Callable[[], str] | None


def _proposal(propose: Proposal) -> str | None:
    return propose() if callable(propose) else propose


class Asker:
    """Asks for what the flags did not give and remembers every answer by its question id (the
    config path it fills), so a validation problem asks again only the answers it names.

    `--non-interactive` takes every proposal."""

    def __init__(self, interactive: bool, stdin: TextIO, out: TextIO) -> None:
        self.interactive = interactive
        self.stdin = stdin
        self.out = out
        self.answers: dict[str, str] = {}
        self.rejected: dict[str, str] = {}

    def _read(self, prompt: str, proposal: str | None) -> str | None:
        """One line from the terminal: the answer, the proposal on Enter, None at end of input."""
        suffix = f" [{proposal}]" if proposal is not None else ""
        print(f"{prompt}{suffix}: ", end="", file=self.out, flush=True)
        line = self.stdin.readline()
        if not line:
            print(file=self.out)
            return proposal
        return line.strip() or proposal

    def ask(
        self,
        key: str,
        question: str,
        given: str | None,
        propose: Proposal,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        """The answer for `key`: remembered, given as a flag, asked, or the proposal. `check`
        returns why an answer cannot be used (asked again at once), or None. A proposal that is
        a function is made only when needed: a given value never depends on it."""
        if key in self.answers:
            return self.answers[key]
        answer = given if key not in self.rejected else None
        if answer is None and not self.interactive:
            answer = _proposal(propose)
            if answer is None:
                raise InitError(f"{question}: no proposal; give it as a flag")
        problem = check(answer) if check and answer is not None else None
        if problem is not None and not self.interactive:
            raise InitError(f"{question} {answer!r}: {problem}")
        if problem is not None:
            print(f"  {answer!r}: {problem}", file=self.out)
        if answer is None or problem is not None:
            try:
                proposal = _proposal(propose)
            except InitError:
                proposal = None  # asked without one
            answer = self._ask_until_valid(key, question, proposal, check)
        self.answers[key] = answer
        return answer

    def _ask_until_valid(
        self,
        key: str,
        question: str,
        proposal: str | None,
        check: Callable[[str], str | None] | None,
    ) -> str:
        prompt = question + (f" (not {self.rejected[key]!r})" if key in self.rejected else "")
        while True:
            read = self._read(prompt, proposal)
            if read is None:
                raise InitError(f"{question}: no answer (end of input)")
            problem = check(read) if check else None
            if problem is None:
                return read
            print(f"  {read!r}: {problem}", file=self.out)

    def confirm(self, question: str, default: bool) -> bool:
        if not self.interactive:
            return default
        read = self._read(f"{question} ({'Y/n' if default else 'y/N'})", None)
        return default if not read else read.lower() in ("y", "yes")

    def forget(self, problem_keys: Iterable[str]) -> list[str]:
        """Drop the answers the problems name (asked again next time); the keys it found none for."""
        unanswered = []
        for full_key in problem_keys:
            path = full_key.removeprefix(f"{NS}:")
            path = DERIVED_FROM.get(path, path)
            named = [
                key
                for key in self.answers
                if key == path or key.startswith((f"{path}.", f"{path}["))
            ]
            for key in named:
                self.rejected[key] = self.answers.pop(key)
            if not named:
                unanswered.append(full_key)
        return unanswered
