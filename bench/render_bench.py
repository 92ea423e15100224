"""How long the program takes to render, against a floor with no logic, and how deep its graph is.

Usage: uv run python bench/render_bench.py [--runs N]

Measured in one run, each figure the median of N renders after one warm-up render (program and
floor timed alternately):
- the committed stack (Pulumi.homelab.yaml) and the floor program (bench/floor_program.py) that
  registers the same number of components and custom resources with no logic; their ratio is the
  cost of the homelab's own code per render;
- the same at 30 nodes and 100 exposed apps, with resources per second for both sizes: equal rates
  mean render time grows linearly with the stack;
- the longest dependency chain of the recorded graph (homelab/graph.py: data and ordering edges
  only), listed with the component each step belongs to, next to the essential chain, so a step that
  waits for something it does not need shows up as extra length;
- the modelled first `up` (bench/deploy_model.py): every resource type an expected duration with
  its source, the makespan of the recorded graph with its critical path, next to the essential
  chain's modelled time.

A benchmark, not a test: it asserts nothing and is not run by scripts/test.
"""

from __future__ import annotations

import argparse
import copy
import gc
import ipaddress
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script (`python bench/render_bench.py`), so the project root is not on sys.path yet.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import deploy_model  # noqa: E402
from homelab import engine, graph  # noqa: E402
from homelab.engine import Render  # noqa: E402
from tests.harness import render_stack, stack_raw_config  # noqa: E402

FLOOR_PROGRAM = Path(__file__).resolve().parent / "floor_program.py"
# What must happen in order on a fresh `up`, whatever the implementation (issue 7).
ESSENTIAL_CHAIN = (
    "cluster",
    "Kubernetes API",
    "charts",
    "issuer",
    "certificate",
    "Headscale",
    "pre-auth key",
    "subnet router",
)


def scaled_overrides(nodes: int, apps: int) -> dict[str, Any]:
    """The committed stack with `nodes` Talos nodes (3 control planes) and `apps` more apps."""
    raw = stack_raw_config()
    cluster = copy.deepcopy(raw["cluster"])
    first = ipaddress.IPv4Address("192.168.0.100")
    cluster["nodes"] = [
        {
            "hostname": f"talos-{index + 1:02d}",
            "ip": str(first + index),
            "role": "controlplane" if index < 3 else "worker",
        }
        for index in range(nodes)
    ]
    if nodes > 3:
        # With workers the config must say where workloads run (config/rules.py).
        cluster["allowSchedulingOnControlPlanes"] = False
    extra_apps = [
        {"name": f"app-{index:03d}", "namespace": "apps", "service": f"app-{index:03d}"}
        for index in range(apps)
    ]
    return {"cluster": cluster, "apps": [*raw.get("apps", []), *extra_apps]}


def median_seconds(
    program: Callable[[], Render], floor: Callable[[], Render], runs: int
) -> tuple[float, float]:
    """Median seconds of `program` and `floor`, timed alternately so that a change in machine load
    during the benchmark affects both alike."""
    program_samples: list[float] = []
    floor_samples: list[float] = []
    for _ in range(runs):
        for render, samples in ((program, program_samples), (floor, floor_samples)):
            gc.collect()
            start = time.perf_counter()
            render()
            samples.append(time.perf_counter() - start)
    return statistics.median(program_samples), statistics.median(floor_samples)


def floor_render(like: Render) -> Callable[[], Render]:
    components = sum(1 for r in like.resources if not r.custom)
    custom = len(like.resources) - components
    config = {"homelab:floorComponents": components, "homelab:floorCustom": custom}
    return lambda: engine.render("floor", config=config, secret_keys=[], program=FLOOR_PROGRAM)


def stages(render: Render, chain: list[engine.ResourceRecord]) -> list[str]:
    """The top-level components a chain passes through, in order."""
    names: list[str] = []
    for record in chain:
        name = graph.top_component(render, record).name
        if not names or names[-1] != name:
            names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="renders per figure (median)")
    runs = parser.parse_args().runs

    cases: dict[str, Callable[[], Render]] = {
        "homelab stack": lambda: render_stack("homelab"),
        "30 nodes, 100 more apps": lambda: render_stack(
            "homelab", overrides=scaled_overrides(nodes=30, apps=100)
        ),
    }
    print(f"Render benchmark: median of {runs} renders under the recording engine\n")
    header = f"{'case':<26}{'resources':>10}{'program s':>11}{'floor s':>9}{'ratio':>7}"
    print(header + f"{'program res/s':>15}{'floor res/s':>13}")
    rows: list[tuple[str, int, float]] = []
    renders: dict[str, Render] = {}
    for label, render in cases.items():
        result = render()  # warm-up: imports and first-use caches are not what is measured
        floor = floor_render(result)
        floor()
        seconds, floor_seconds = median_seconds(render, floor, runs)
        count = len(result.resources)
        rows.append((label, count, seconds))
        renders[label] = result
        print(
            f"{label:<26}{count:>10}{seconds:>11.3f}{floor_seconds:>9.3f}"
            f"{seconds / floor_seconds:>6.1f}x{count / seconds:>15.0f}{count / floor_seconds:>13.0f}"
        )
    (_, small_count, small_s), (_, large_count, large_s) = rows
    print(
        f"\ngrowth: {large_count / small_count:.1f}x the resources took {large_s / small_s:.1f}x "
        "the time (linear when the two are close)"
    )

    for label, result in renders.items():
        chain = graph.longest_chain(result)
        print(
            f"\nlongest dependency chain, {label}: {len(chain)} custom resources "
            "(edges: dependencies, property dependencies, provider; not parent)"
        )
        for step, record in enumerate(chain, start=1):
            owner = graph.top_component(result, record).name
            print(f"  {step:>2}. {record.type} {record.name}  [{owner}]")
        print(f"  components on it: {' -> '.join(stages(result, chain)) or '(none)'}")
    print(f"\nessential chain ({len(ESSENTIAL_CHAIN)} steps): {' -> '.join(ESSENTIAL_CHAIN)}")
    print_deploy_model(renders["homelab stack"])


def print_deploy_model(render: Render) -> None:
    schedule = deploy_model.first_up(render)
    steps = deploy_model.essential_seconds(render)
    assert tuple(label for label, _ in steps) == ESSENTIAL_CHAIN
    essential = sum(seconds for _, seconds in steps)
    print(
        "\nmodelled first `up` (expected durations, unlimited parallelism; bench/deploy_model.py)"
    )
    print(f"  critical path of the recorded graph: {schedule.seconds:.0f} s")
    for record, estimate, finish in schedule.critical_path:
        print(
            f"    {finish:>6.0f} s  +{estimate.seconds:<4.0f} {record.type} {record.name}"
            f"  ({estimate.source})"
        )
    print(f"  essential chain: {essential:.0f} s")
    for label, seconds in steps:
        print(f"    {label:<16}{seconds:>6.0f} s")
    # Above 1: the graph waits for something the chain does not need. Below 1: steps the chain
    # orders overlap in the graph (the router's Deployment is created early and retries until
    # Headscale and the certificate serve), which is allowed.
    print(
        f"  makespan / essential chain: {schedule.seconds / essential:.2f} "
        f"({schedule.seconds - essential:+.0f} s)"
    )


if __name__ == "__main__":
    main()
