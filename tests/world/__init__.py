"""One shared fake world of the CLIs the programs drive: talosctl, kubectl, and the Headscale
CLI in its pod. It keeps the state that decides outcomes, and every rule names its upstream
source next to the code (siderolabs/talos@v1.13.9, kubernetes/kubectl@kubernetes-1.36.3,
etcd-io/etcd@v3.6.12, juanfont/headscale@v0.28.0, tailscale/tailscale@v1.102.3,
rancher/local-path-provisioner@v0.0.37, terraform-provider-talos@v0.11.0,
pulumi-command@v1.2.1). When upstream fails, the fake fails with upstream's message.

Using it (world.py):

    world = World.create(tmp_path, machines=["192.168.0.11", ...])   # maintenance mode
    world.install_cluster(control_planes={"192.168.0.11": "cp-1"}, workers={...}, vip=...)
    world.trust_talosconfig(text) / world.trust_kubeconfig(text)     # a render's credentials
    text = world.talosconfig(endpoints, nodes) / world.kubeconfig()  # or the world's own
    result = world.run(program_text, {"HOMELAB_KUBECONFIG": ...})   # as pulumi-command runs it
    world.cli("kubectl", "get", "nodes", env=...)                    # one call from the test
    world.node_dies(address) / node_returns / replace_hardware / a_year_passes / advance(s)
    world.headscale_loses_database() / router_restarts() / reschedule(ns, pod)
    world.deploy(...) / deploy_headscale() / deploy_router() / device_waits(...) / webhook(...)
    world.state (the JSON), world.calls("talosctl") (argv, config path/mode/content, env names,
    stdin, result), world.machine(address), world.now

`pulumi up` (flow.py): `flow.up(world, stack, lambda: harness.render_stack(...))` runs the real
program with the world as the providers and returns the steps, the next stack state and the
first failure; `replace=[name]` is `--replace`, `flow.refresh(world, stack)` is `pulumi refresh`.
tests/components/cluster/scenarios.py deploys the fixture stack once and copies it per test.

The pieces: store.py (state file, lock, call log), clock.py (virtual time, also for the
programs), flags.py (cobra/pflag parsing), talos_model.py (machines, apid's TLS and
forwarding), etcd.py (members, quorum, `mayRemoveMember`), talos_client.py, talos_ops.py and
talos_etcd.py (talosctl), kube/ (kubectl: cluster.py the API server, kubelets and
controllers; objects.py, nodes.py, exec.py per area; kubectl.py the dispatcher), headscale.py,
router.py (containerboot), configs.py (configs parsed once), cli.py (the executables' entry
point), flow.py and flow_effects.py (the driver).
"""
