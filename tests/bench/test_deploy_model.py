"""The deploy-time model's arithmetic (bench/deploy_model.py); durations themselves are estimates."""

from __future__ import annotations

import itertools

import pytest

from bench.deploy_model import ESSENTIAL_STEPS, estimate, first_up, makespan
from bench.render_bench import ESSENTIAL_CHAIN
from homelab import graph
from tests.harness import homelab_render


def test_makespan_is_the_longest_weighted_path_not_the_longest_chain() -> None:
    # a -> b -> c -> d is the longest chain (4 steps, 4 s); a -> e is shorter but slower (11 s).
    edges = {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"c"}, "e": {"a"}}
    seconds = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 10}
    assert makespan(edges, seconds) == (11, ["a", "e"])


def test_a_node_starts_when_its_last_dependency_finishes() -> None:
    edges = {"slow": set(), "fast": set(), "join": {"slow", "fast"}}
    assert makespan(edges, {"slow": 5, "fast": 2, "join": 1}) == (6, ["slow", "join"])


def test_independent_work_runs_in_parallel() -> None:
    edges: dict[str, set[str]] = {"x": set(), "y": set(), "z": set()}
    total, path = makespan(edges, {"x": 3, "y": 3, "z": 2})
    assert total == 3
    assert path == ["x"]  # ties go to the smallest name


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        makespan({"a": {"b"}, "b": {"a"}}, {"a": 1, "b": 1})


def test_every_essential_step_has_work_in_the_homelab_and_every_estimate_a_source() -> None:
    render = homelab_render()
    assert tuple(label for label, _ in ESSENTIAL_STEPS) == ESSENTIAL_CHAIN
    customs = [r for r in render.resources if r.custom]
    for label, carries in ESSENTIAL_STEPS:
        assert any(carries(r) for r in customs), label
    assert all(estimate(r).source for r in customs)


def test_the_critical_path_is_a_chain_of_the_recorded_graph() -> None:
    render = homelab_render()
    schedule = first_up(render)
    edges = graph.waits_for(render)
    urns = [record.urn for record, _, _ in schedule.critical_path]
    assert all(before in edges[after] for before, after in itertools.pairwise(urns))
    assert edges[urns[0]] == set()
    finishes = [finish for _, _, finish in schedule.critical_path]
    assert finishes == sorted(finishes)
    assert finishes[-1] == schedule.seconds
