"""The `update` of a step that acts only when its triggers change (a new target, a new node set):
any other change of its inputs updates it in place (a renewed credential in its environment, a new
text of its program), and pulumi-command then runs `update` instead of `create`
(pulumi/pulumi-command@v1.2.1: provider/pkg/provider/local/commandController.go `Update`: "Use
Create command if Update is unspecified"). There is nothing to do then: it prints what the step
printed last (PULUMI_COMMAND_STDOUT, which the provider sets from the previous outputs), so its
output stays."""

from __future__ import annotations

import os
from typing import TypedDict

from programs.runtime import say


class Params(TypedDict):
    program: str


def main(params: Params) -> str:
    del params
    say("only its credentials or its program text changed, not what it acts on; nothing to do")
    return os.environ.get("PULUMI_COMMAND_STDOUT", "")
