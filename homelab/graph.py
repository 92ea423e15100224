"""The creation order the engine must follow, read from a render's records.

Edges are data and ordering edges only: resource B waits for A when A is in B's `dependencies`
(depends_on and inputs built from A's outputs), in any of B's `property_dependencies`, or is B's
provider. Parent links are not edges (a parent does not delay its children), nor is `deleted_with`
(it only matters on delete). Components are created instantly, so a dependency on a component
stands for its custom descendants, and only custom resources are nodes. Invokes have no URN and are
not in the graph.

The longest chain is the minimum number of sequential create steps of an `up`: each step must wait
for the previous one's provider call, so a chain longer than the essential one is false
serialisation.
"""

from __future__ import annotations

from collections.abc import Mapping

from homelab.engine import Render, ResourceRecord


def provider_urn(reference: str) -> str:
    """A provider reference is `<urn>::<id>`; the URN is everything before the last `::`."""
    return reference.rsplit("::", 1)[0]


def _custom_descendants(render: Render, urn: str) -> set[str]:
    found: set[str] = set()
    pending = [urn]
    while pending:
        for child in render.children_of(pending.pop()):
            if child.custom:
                found.add(child.urn)
            pending.append(child.urn)
    return found


def waits_for(render: Render) -> dict[str, set[str]]:
    """For every custom resource, the custom resources that must exist before it is created."""
    customs = {r.urn for r in render.resources if r.custom}
    components = {r.urn for r in render.resources if not r.custom}
    expansions: dict[str, set[str]] = {}
    edges: dict[str, set[str]] = {}
    for record in render.resources:
        if not record.custom:
            continue
        direct = set(record.dependencies)
        for urns in record.property_dependencies.values():
            direct.update(urns)
        if record.provider:
            direct.add(provider_urn(record.provider))
        before: set[str] = set()
        for urn in direct:
            if urn in customs:
                before.add(urn)
            elif urn in components:
                if urn not in expansions:
                    expansions[urn] = _custom_descendants(render, urn)
                before |= expansions[urn]
        before.discard(record.urn)
        edges[record.urn] = before
    return edges


def longest_chain(render: Render) -> list[ResourceRecord]:
    """The longest sequence of custom resources each of which waits for the one before it.

    Ties go to the lexicographically smallest URNs, so the answer is deterministic. Raises
    ValueError on a cycle (the engine would refuse the program).
    """
    edges = waits_for(render)
    by_urn = {r.urn: r for r in render.resources}
    best: dict[str, tuple[int, str | None]] = {}  # urn -> (chain length ending here, predecessor)
    for start in sorted(edges):
        _longest_ending_at(start, edges, best)
    if not best:
        return []
    end = min(best, key=lambda u: (-best[u][0], u))
    chain: list[ResourceRecord] = []
    current: str | None = end
    while current is not None:
        chain.append(by_urn[current])
        current = best[current][1]
    return list(reversed(chain))


def _longest_ending_at(
    start: str, edges: Mapping[str, set[str]], best: dict[str, tuple[int, str | None]]
) -> None:
    """Fill `best` for `start` and everything it waits for, iteratively (no recursion limit)."""
    on_path: set[str] = set()
    stack: list[tuple[str, bool]] = [(start, False)]
    while stack:
        urn, expanded = stack.pop()
        if urn in best:
            continue
        if expanded:
            on_path.discard(urn)
            before = sorted(edges.get(urn, set()))
            length, predecessor = 1, None
            for candidate in before:
                if best[candidate][0] + 1 > length:
                    length, predecessor = best[candidate][0] + 1, candidate
            best[urn] = (length, predecessor)
            continue
        if urn in on_path:
            raise ValueError(f"dependency cycle through {urn}")
        on_path.add(urn)
        stack.append((urn, True))
        for before_urn in sorted(edges.get(urn, set()), reverse=True):
            if before_urn not in best:
                if before_urn in on_path:
                    raise ValueError(f"dependency cycle through {before_urn}")
                stack.append((before_urn, False))


def top_component(render: Render, record: ResourceRecord) -> ResourceRecord:
    """The outermost registered ancestor of `record` (itself when it sits under the stack)."""
    outermost = record
    for ancestor in render.ancestors(record):
        outermost = ancestor
    return outermost
