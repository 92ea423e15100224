"""The homelab policy pack: `pulumi preview --policy-pack policies` (see PulumiPolicy.yaml)."""

import sys
from pathlib import Path

# The CLI runs this directory as a script, so only the directory itself is on sys.path; adding the
# project root lets the pack import its modules as the `policies` package, exactly as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack import POLICIES

PolicyPack("homelab", POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
