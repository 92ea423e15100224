"""Worlds the world's own tests start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.world.world import World

CONTROL_PLANES = {"10.0.0.11": "cp-1", "10.0.0.12": "cp-2", "10.0.0.13": "cp-3"}
WORKER = {"10.0.0.21": "w-1"}
VIP = "10.0.0.10"


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Three control planes and a worker, installed and healthy, Kubernetes up."""
    created = World.create(tmp_path / "installed")
    created.install_cluster(control_planes=CONTROL_PLANES, workers=WORKER, vip=VIP)
    return created


@pytest.fixture
def fresh(tmp_path: Path) -> World:
    """Three machines booted from install media: maintenance mode."""
    return World.create(tmp_path / "maintenance", machines=list(CONTROL_PLANES))


def write(world: World, name: str, text: str) -> str:
    path = world.tmp / name
    path.write_text(text)
    return str(path)
