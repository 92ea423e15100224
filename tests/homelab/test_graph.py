"""The dependency graph: which edges count, and the longest chain on graphs of known shape."""

from __future__ import annotations

import itertools

import pytest

from homelab import graph
from homelab.engine import ResourceRecord
from tests.harness import homelab_render
from tests.synthetic import record, render_of

CUSTOM = "test:index:Thing"
COMPONENT = "test:index:Group"
PROVIDER = "pulumi:providers:test"


def names(chain: list[ResourceRecord]) -> list[str]:
    return [r.name for r in chain]


def test_longest_chain_follows_the_longest_of_two_paths() -> None:
    # a -> b -> c -> d and a shortcut a -> d: the chain is the long way round.
    a = record(CUSTOM, "a")
    b = record(CUSTOM, "b", dependencies=[a])
    c = record(CUSTOM, "c", property_dependencies={"input": [b]})
    d = record(CUSTOM, "d", dependencies=[a, c])
    unrelated = record(CUSTOM, "unrelated")
    assert names(graph.longest_chain(render_of([d, c, unrelated, b, a]))) == ["a", "b", "c", "d"]


def test_a_provider_is_an_edge() -> None:
    provider = record(PROVIDER, "cluster")
    child = record(CUSTOM, "object", provider=provider)
    assert names(graph.longest_chain(render_of([provider, child]))) == ["cluster", "object"]


def test_parent_links_are_not_edges_and_components_are_not_nodes() -> None:
    group = record(COMPONENT, "group", custom=False)
    first = record(CUSTOM, "first", parent=group)
    second = record(CUSTOM, "second", parent=group)
    chain = graph.longest_chain(render_of([group, first, second]))
    assert len(chain) == 1
    assert chain[0].custom


def test_a_dependency_on_a_component_waits_for_all_its_custom_descendants() -> None:
    group = record(COMPONENT, "group", custom=False)
    inner = record(COMPONENT, "inner", custom=False, parent=group)
    deep = record(CUSTOM, "deep", parent=inner)
    shallow = record(CUSTOM, "shallow", parent=group)
    after = record(CUSTOM, "after", dependencies=[group])
    render = render_of([group, inner, deep, shallow, after])
    assert graph.waits_for(render)[after.urn] == {deep.urn, shallow.urn}
    assert len(graph.longest_chain(render)) == 2


def test_a_cycle_is_an_error() -> None:
    a = record(CUSTOM, "a")
    b = record(CUSTOM, "b", dependencies=[a])
    looped = record(CUSTOM, "a", dependencies=[b])  # same URN as `a`, now waiting for b
    with pytest.raises(ValueError, match="cycle"):
        graph.longest_chain(render_of([looped, b]))


def test_a_long_chain_needs_no_recursion() -> None:
    chain = [record(CUSTOM, "n0000")]
    for index in range(1, 3000):
        chain.append(record(CUSTOM, f"n{index:04d}", dependencies=[chain[-1]]))
    assert len(graph.longest_chain(render_of(chain))) == 3000


def test_provider_reference_drops_only_the_id() -> None:
    provider = record(PROVIDER, "cluster")
    assert graph.provider_urn(f"{provider.urn}::some-id") == provider.urn


def test_every_step_of_the_homelab_chain_waits_for_the_step_before() -> None:
    render = homelab_render()
    chain = graph.longest_chain(render)
    edges = graph.waits_for(render)
    assert chain, "the homelab registers at least its Kubernetes provider"
    for before, after in itertools.pairwise(chain):
        assert before.urn in edges[after.urn]
    assert not edges[chain[0].urn]


def test_top_component_is_the_outermost_registered_ancestor() -> None:
    outer = record(COMPONENT, "outer", custom=False)
    inner = record(COMPONENT, "inner", custom=False, parent=outer)
    leaf = record(CUSTOM, "leaf", parent=inner)
    render = render_of([outer, inner, leaf])
    assert graph.top_component(render, leaf) == outer
    assert graph.top_component(render, outer) == outer
