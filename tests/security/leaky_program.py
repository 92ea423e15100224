"""A Pulumi program that leaks on purpose, in every way the sweep must notice, next to one secret
handled right. Run by tests/security/test_secrets_sweep.py under the recording engine."""

import logging

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from programs import headscale_key
from programs.build import environment

config = pulumi.Config("homelab")
token = config.require("dnsApiToken")  # read as plain text: the mistake under test
cookie = config.require_secret("headplaneCookieSecret")  # the right way

provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret(""))
opts = pulumi.ResourceOptions(provider=provider)
k8s.core.v1.ConfigMap("leaky", data={"token": token}, opts=opts)
k8s.core.v1.Secret("fine", string_data={"cookie": cookie}, opts=opts)

# A minted key (the mocks print a FAKE- key for the key program), passed on without Output.secret ...
minted = command.local.Command(
    "mint", create="headscale preauthkeys create", environment=environment(headscale_key)
)
k8s.core.v1.ConfigMap("leaky-key", data={"key": minted.stdout}, opts=opts)
# ... and once correctly.
secret_stdout: pulumi.Output[str] = pulumi.Output.secret(minted.stdout)
k8s.core.v1.Secret("fine-key", string_data={"key": secret_stdout}, opts=opts)

# The output form, as components call data sources: a synchronous pulumi.runtime.invoke makes the
# SDK pump the event loop re-entrantly, and under the mocks the stack outputs then go missing
# in about one render in five.
pulumi.runtime.invoke_output("test:index:echo", {"value": token})
print(f"the token is {token}")
logging.getLogger("homelab").warning("cookie %s", "unrelated")
pulumi.log.info(f"token={token}")
pulumi.export("token", token)
pulumi.export("cookie", cookie)
