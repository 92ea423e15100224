"""The benchmark's floor: a Pulumi program with no logic that registers as many resources as the
program it is compared with (config `homelab:floorCustom` custom resources and
`homelab:floorComponents` components, flat under the stack). Run by bench/render_bench.py under the
same recording engine, so the difference is the cost of the homelab's own code."""

import pulumi

config = pulumi.Config("homelab")
for index in range(config.require_int("floorComponents")):
    pulumi.ComponentResource("floor:index:Component", f"component-{index}")
for index in range(config.require_int("floorCustom")):
    pulumi.CustomResource("floor:index:Custom", f"custom-{index}", {"index": index})
