"""The networks the cluster reserves are defined once (config/networks.py): a second literal
elsewhere in the program would drift from it when Talos' defaults are followed."""

from __future__ import annotations

import pytest

from config import networks
from tests.harness import PROJECT_ROOT

PROGRAM_DIRS = ("config", "components", "homelab", "programs")


@pytest.mark.parametrize(
    "network", [networks.TALOS_POD_SUBNET, networks.TALOS_SERVICE_SUBNET], ids=str
)
def test_the_cluster_networks_are_written_in_one_place(network: object) -> None:
    definition = PROJECT_ROOT / "config" / "networks.py"
    elsewhere = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in PROGRAM_DIRS
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path != definition and str(network) in path.read_text(encoding="utf-8")
    ]
    assert elsewhere == [], f"import {network} from config/networks.py instead"
