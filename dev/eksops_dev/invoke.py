"""`eksops invoke`: one handler, one event, like `sam local invoke`, on the sandbox or on your AWS account."""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from eksops.errors import TemporaryError
from eksops.events import CONTINUATION_DETAIL_TYPE, CONTINUATION_SOURCE
from eksops.sweeps import MAX_PARTS, Continuer
from eksops_dev.dispatch import Dispatcher, LambdaContext, load_module
from eksops_dev.sandbox import Sandbox, patched_environ
from eksops_dev.template import Resolver, Template


def run(function: str, event_file: str, *, aws: bool, dry_run: bool, params: list[str]) -> int:
    template = Template.find()
    event = json.loads(Path(event_file).read_text())
    overrides = dict(p.split("=", 1) for p in params)
    if dry_run:
        overrides["DryRun"] = "true"
    if aws:
        return _on_aws(template, function, event, overrides)
    with Sandbox(template, parameters=overrides) as sandbox:
        dispatcher = Dispatcher(sandbox)
        try:
            inv = dispatcher.invoke(function, event, "invoke", retries=0)
            follow_ups = dispatcher.drain()  # e.g. a sweep's continuation
        finally:
            dispatcher.close()
    _print(
        {
            "function": function,
            "ok": inv.ok,
            "result": inv.result,
            "error": inv.error,
            "errorType": inv.error_type,
            "follow_ups": len(follow_ups),
            "logs": str(sandbox.workdir / "functions.log"),
        }
    )
    return 0 if inv.ok and all(i.ok for i in follow_ups) else 1


def _on_aws(template: Template, function: str, event: Any, overrides: dict[str, str]) -> int:
    """Run the handler here with your credentials; resources of the stack come from your environment
    (for example REPORTS_TOPIC_ARN from the stack outputs) and are empty otherwise.

    A sweep that outlives the invocation continues here, not on your event bus: a continuation put there
    would be picked up by a deployed stack (which runs live even when this run is dry).
    """
    import boto3

    fn = template.functions[function]
    resolver = Resolver(
        template,
        {**template.parameter_defaults(), **overrides},
        ref=lambda _name: "",
        getatt=lambda _name, _attr: "",
        stack_name="eksops",
    )
    env = {k: str(v) for k, v in resolver.resolve(fn.environment).items()}
    env = {k: os.environ.get(k, v) for k, v in env.items()}
    if "DryRun" in overrides:
        env["DRY_RUN"] = overrides["DryRun"]
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"eksops-local-{function}"
    identity = boto3.client("sts").get_caller_identity()
    continuations: list[dict[str, Any]] = []

    def keep_here(_self: Continuer, *, run_id: str, part: int, checkpoint: Any) -> None:
        if part > MAX_PARTS:  # as Continuer does on the bus
            raise TemporaryError(f"sweep {run_id} of {function} reached {MAX_PARTS} parts; stopping the chain")
        detail = {"function": function, "run_id": run_id, "part": part, "checkpoint": checkpoint}
        continuations.append(_continuation_event(identity["Account"], detail))

    results = []
    with patched_environ(env), mock.patch.object(Continuer, "continue_sweep", keep_here):
        module = load_module(fn, env.get("POWERTOOLS_SERVICE_NAME"))
        handler = getattr(module, fn.handler.rsplit(".", 1)[1])
        pending = [event]
        while pending:
            context = LambdaContext(env["AWS_LAMBDA_FUNCTION_NAME"], fn.memory, fn.timeout)
            context.invoked_function_arn = (
                f"arn:{identity['Arn'].split(':')[1]}:lambda:{boto3.session.Session().region_name}:"
                f"{identity['Account']}:function:{env['AWS_LAMBDA_FUNCTION_NAME']}"
            )
            try:
                results.append(handler(pending.pop(0), context))
            except Exception as exc:
                _print({"function": function, "ok": False, "error": str(exc), "errorType": type(exc).__name__})
                return 1
            pending.extend(continuations)
            continuations.clear()
    _print({"function": function, "ok": True, "result": results[-1], "parts": len(results)})
    return 0


def _continuation_event(account: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The event EventBridge would deliver for a continuation put on the bus."""
    import boto3

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CONTINUATION_DETAIL_TYPE,
        "source": CONTINUATION_SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": boto3.session.Session().region_name,
        "resources": [],
        "detail": json.loads(json.dumps(detail)),
    }


def _print(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
