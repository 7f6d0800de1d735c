"""`eksops invoke`: one handler, one event, like `sam local invoke`, on the sandbox or on your AWS account.

The JSON result alone goes to stdout; the function's log lines and notes go to stderr (and, in the sandbox, to
.sandbox/functions.log too). A variable of the function is set, first match wins, by ``--param`` (through the
template parameter its value comes from), by the process environment, then by the template default; the same rule
holds in the sandbox and with ``--aws``, except that in the sandbox the variables naming the stack's own resources
(topics, queue, table, kubeconfig) stay the sandbox's: a value from your shell would point at your real account.

The sandbox is seeded first (``--no-seed`` starts it empty) with what the event implies (eksops_dev.seed): the log
group, cluster, node group, image or alarm it names, and a Slack webhook, a local receiver whose messages are shown
on stderr as Slack would show them. Seeded parameters and the sandbox's DryRun=false (a sandbox acts; a deployed
stack starts as a dry run) are defaults: --param and your environment override them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast
from unittest import mock

from eksops.errors import ConfigError, PartialFailure, TemporaryError
from eksops.events import CONTINUATION_DETAIL_TYPE, CONTINUATION_SOURCE
from eksops.sweeps import MAX_PARTS, Continuer
from eksops_dev.cli import UsageError, did_you_mean, find_template
from eksops_dev.dispatch import Dispatcher, Invocation, LambdaContext, load_module
from eksops_dev.sandbox import Sandbox, patched_environ
from eksops_dev.template import FunctionSpec, Resolver, Template
from eksops_dev.validate import check_constraints, env_str, references

# Variables the sandbox sets to reach its own emulators, whatever the environment says.
SANDBOX_WIRING = frozenset({"EKSOPS_KUBECONFIG"})
# Parameters of the sandbox that differ from the template's defaults (which are for a first deploy): it acts.
SANDBOX_DEFAULTS = {"DryRun": "false"}


@dataclass(frozen=True)
class Layering:
    """Which variables of one function come from the environment or from --param (for notes and error hints)."""

    from_environment: dict[str, str]
    from_param: dict[str, tuple[str, ...]]  # variable -> the --param names it comes from


def run(function: str, event_file: str, *, aws: bool, dry_run: bool, params: list[str], seed: bool = True) -> int:
    template = find_template()
    fn = resolve_function(template, function)
    event = read_event(event_file, fn, template)
    overrides = parse_params(template, params)
    if dry_run:  # the notifier's own switch too when it is the one invoked (others' reports still reach Slack)
        overrides.update({"DryRun": "true", **({"SlackDryRun": "true"} if fn.name == "notifier" else {})})
    # On the seeded sandbox, image_updater gets a local config repository (eksops_dev.seed) when none is given.
    seeded = {"ImageConfigRepoUrl": "https://seeded.invalid/config.git"} if seed and not aws else {}
    _require_deployed(template, fn, {**seeded, **overrides})
    if aws:
        if not seed:
            raise UsageError("--no-seed is for the sandbox; --aws runs on your account as it is")
        return _on_aws(template, fn, event, overrides)
    return _on_sandbox(template, fn, event, overrides, seed=seed)


# -- the command line's inputs -----------------------------------------------------------------------------------


def _require_deployed(template: Template, fn: FunctionSpec, overrides: Mapping[str, str]) -> None:
    """A UsageError when the template's condition leaves ``fn`` out with these parameters (an Enable switch off)."""
    condition = template.resources[fn.logical_id].get("Condition")
    if condition is None:
        return
    resolver = _offline_resolver(template, overrides)
    if not resolver.condition(condition):
        text = json.dumps(template.doc.get("Conditions", {}).get(condition, {}))
        values = {**template.parameter_defaults(), **overrides}
        said = ", ".join(f"{p}={values.get(p, '')!r}" for p in sorted(template.parameters) if f'"{p}"' in text)
        raise UsageError(
            f"{fn.name} is not deployed with these parameters (condition {condition} is false:"
            f" {said or 'see template.yaml'}); set them with --param to invoke it"
        )


def resolve_function(template: Template, name: str) -> FunctionSpec:
    """A function by its folder name (log_retention) or logical ID (LogRetentionFunction), any case, - or _."""
    folded = name.lower().replace("-", "_")
    for fn in template.functions.values():
        if folded in (fn.name.lower(), fn.logical_id.lower()):
            return fn
    names = sorted(template.functions)
    ids = sorted(fn.logical_id for fn in template.functions.values())
    raise UsageError(
        f"no function {name!r} in template.yaml{did_you_mean(name, [*names, *ids])}; use one of: {', '.join(names)} "
        f"(or a logical ID: {', '.join(ids)})"
    )


def read_event(path: str, fn: FunctionSpec, template: Template) -> Any:
    """The event from a JSON file, or from stdin for ``-``."""
    samples = sorted(
        p.relative_to(template.root).as_posix() for p in (template.root / "events" / fn.name).glob("*.json")
    )
    example = f" (samples for {fn.name}: {', '.join(samples)})" if samples else ""
    where = "the event on stdin" if path == "-" else f"event file {path}"
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{where} not found{example}") from None
        except IsADirectoryError:
            raise UsageError(f"{where} is a directory; give a JSON file{example}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{where} is not UTF-8 text") from None
        except OSError as exc:
            raise UsageError(f"cannot read {where}: {exc.strerror}") from None
    if not text.strip():
        raise UsageError(f"{where} is empty; it must hold the event as JSON{example}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_params(template: Template, params: list[str]) -> dict[str, str]:
    """``--param NAME=VALUE`` values: names the template declares, values its constraints allow."""
    overrides: dict[str, str] = {}
    for item in params:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--param {item!r} needs NAME=VALUE, e.g. --param DryRun=true")
        if name not in template.parameters:
            raise UsageError(
                f"--param {name}: no such parameter in template.yaml{did_you_mean(name, template.parameters)}; "
                "the Parameters section of template.yaml lists them"
            )
        overrides[name] = value
    problems = check_constraints(template, overrides)
    if problems:
        more = f" ({len(problems) - 1} more; `eksops validate` lists them all)" if len(problems) > 1 else ""
        raise UsageError(f"--param {problems[0].line()}{more}")
    return overrides


# -- the environment ---------------------------------------------------------------------------------------------


def layering(
    template: Template, fn: FunctionSpec, overrides: Mapping[str, str], environ: Mapping[str, str], *, sandbox: bool
) -> Layering:
    """Which of ``fn``'s own variables --param sets and which the environment sets (the template sets the rest)."""
    from_env: dict[str, str] = {}
    from_param: dict[str, tuple[str, ...]] = {}
    for variable, value in fn.environment.items():
        params, others = references(template, value)
        if params & overrides.keys():
            from_param[variable] = tuple(sorted(params & overrides.keys()))
        elif variable in environ:
            resources = others - {"AWS::StackName", "AWS::Region", "AWS::AccountId", "AWS::Partition"}
            if sandbox and (resources or variable in SANDBOX_WIRING):
                continue
            from_env[variable] = environ[variable]
    return Layering(from_env, from_param)


class _InvokeSandbox(Sandbox):
    """The sandbox, with each function's variables taken from the environment where it sets them."""

    def __init__(self, template: Template, overrides: Mapping[str, str], environ: Mapping[str, str]) -> None:
        super().__init__(template, parameters=overrides)
        self.layers = {
            fn.name: layering(template, fn, overrides, environ, sandbox=True) for fn in template.functions.values()
        }
        self.seeded_env: Mapping[str, Mapping[str, str]] = {}  # function -> variables the seed sets (eksops_dev.seed)

    def function_env(self, fn: FunctionSpec) -> dict[str, str]:
        return {**super().function_env(fn), **self.seeded_env.get(fn.name, {}), **self.layers[fn.name].from_environment}


class _Tee:
    """Log lines to stderr and to a file."""

    def __init__(self, file: TextIO, stream: TextIO) -> None:
        self._file, self._stream = file, stream

    def write(self, text: str) -> int:
        self._stream.write(text)
        return self._file.write(text)

    def flush(self) -> None:
        self._stream.flush()
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _note(text: str) -> None:
    sys.stderr.write(f"eksops invoke: {text}\n")


def _note_environment(fn: FunctionSpec, layers: Layering) -> None:
    for variable in sorted(layers.from_environment):
        _note(f"{fn.name}: {variable} from your environment (over the template; a --param would win)")


def _note_notifier_environment(fn: FunctionSpec, layers: Layering | None) -> None:
    """The notifier posts what the invoked function reports: your environment reaches it too, and a DRY_RUN there
    silences the Slack preview (``--dry-run`` and ``--param DryRun=true`` leave the notifier posting)."""
    if fn.name == "notifier" or layers is None:
        return
    for variable, value in sorted(layers.from_environment.items()):
        silenced = variable == "DRY_RUN" and value.strip().lower() == "true"
        hint = ": it posts nothing to Slack (unset it; --dry-run keeps Slack)" if silenced else ""
        _note(f"notifier: {variable} from your environment{hint}")


def _startup_error(fn: FunctionSpec, exc: ConfigError, layers: Layering) -> UsageError:
    variable = exc.variable.split(".", 1)[0].split("[", 1)[0]
    if variable in layers.from_param:
        source = f"from --param {' '.join(layers.from_param[variable])}"
    elif variable in layers.from_environment:
        source = f"from your environment: fix or unset {variable}"
    else:
        source = "from template.yaml"
    return UsageError(f"{fn.name} cannot start: {exc} ({source}; `eksops validate` checks every parameter)")


# -- the sandbox -------------------------------------------------------------------------------------------------


def _on_sandbox(template: Template, fn: FunctionSpec, event: Any, overrides: dict[str, str], *, seed: bool) -> int:
    sandbox = _InvokeSandbox(template, overrides, dict(os.environ))
    defaults = {k: v for k, v in SANDBOX_DEFAULTS.items() if k not in overrides}
    with contextlib.ExitStack() as stack:
        seeding = _plan_seed(sandbox, fn, event, overrides, stack) if seed else None
        if seeding is not None:
            defaults.update({k: v for k, v in seeding.parameters.items() if k not in overrides})
            sandbox.seeded_env = seeding.environment
        sandbox.set_parameters(**defaults)
        stack.enter_context(sandbox)  # stops before the seed's servers (Git, Slack) do
        for note in sandbox.note_summary():
            _note(f"sandbox: {note}")
        layers = sandbox.layers[fn.name]
        _note_environment(fn, layers)
        _note_notifier_environment(fn, sandbox.layers.get("notifier"))
        started = time.perf_counter()
        seeded = seeding.prepare(sandbox) if seeding is not None else []
        seconds = time.perf_counter() - started
        log_path = sandbox.workdir / "functions.log"
        dispatcher = Dispatcher(sandbox, log=cast(TextIO, _Tee(open(log_path, "a", encoding="utf-8"), sys.stderr)))  # noqa: SIM115
        try:
            try:
                dispatcher.handler(fn)  # the cold start first: a ConfigError there is the user's to fix
            except ConfigError as exc:
                raise _startup_error(fn, exc, layers) from exc
            if seeding is not None:
                started = time.perf_counter()
                seeded += _apply_seed(seeding, sandbox)
                _note_seeded(seeded, seconds + time.perf_counter() - started)
            # An SQS batch comes from an event source mapping: a synchronous call, whose failure goes back to the
            # queue (its redrive policy), not to the function's on-failure destination.
            inv = dispatcher.invoke(fn.name, event, "invoke", retries=0, synchronous=_is_sqs_batch(event))
            follow_ups = dispatcher.drain()  # e.g. a sweep's continuation, the notifier with the reports
        finally:
            dispatcher.close()
        _note_runs([inv, *follow_ups], log_path)
        if seeding is not None:
            _show_slack(seeding.slack.received)
    ok = inv.ok and all(i.ok for i in follow_ups)
    result: dict[str, Any] = {
        "function": fn.name,
        "ok": inv.ok,
        "result": inv.result,
        "error": inv.error,
        "errorType": inv.error_type,
        "follow_ups": len(follow_ups),
        "logs": str(log_path),
    }
    failed = [i for i in follow_ups if not i.ok]
    if failed:
        result["failed_follow_ups"] = [
            {"function": i.function, "error": i.error, "errorType": i.error_type} for i in failed
        ]
    _print(result)
    if not ok:
        alerts = (
            "what reached Slack is shown above"
            if seed
            else "alerts and reports went to the sandbox's topics, which nothing reads here (no Slack: --no-seed)"
        )
        _note(f"{fn.name} failed: the log lines above (also in {log_path}) say why; {alerts}")
    return 0 if ok else 1


def _plan_seed(
    sandbox: _InvokeSandbox, fn: FunctionSpec, event: Any, overrides: Mapping[str, str], stack: contextlib.ExitStack
) -> Any:
    """The seed for ``fn`` and ``event`` (eksops_dev.seed), closed with ``stack``."""
    from eksops_dev import seed

    seeding = seed.plan(fn.name, event, workdir=sandbox.workdir, fixed=overrides)
    stack.callback(seeding.close)
    return seeding


def _apply_seed(seeding: Any, sandbox: _InvokeSandbox) -> list[str]:
    """The seed's state; a seed that fails (an event of your own naming what the emulators refuse) is said, and the
    function runs on the sandbox as it is."""
    try:
        return list(seeding.apply(sandbox))
    except Exception as exc:  # the seed is a convenience: the function's own run is what was asked for
        _note(f"sandbox: seeding stopped ({type(exc).__name__}: {exc}); the function runs on what was seeded")
        return []


def _note_seeded(lines: list[str], seconds: float) -> None:
    for line in lines:
        _note(f"sandbox: seeded {line}")
    _note(f"sandbox: seeded in {seconds:.1f} s (--no-seed starts empty)")


def _note_runs(runs: list[Invocation], log_path: Path) -> None:
    """What each run did, in words (the demo's own descriptions): the JSON result on stdout has it all."""
    from eksops_dev.demo import describe_result

    for number, inv in enumerate(runs):
        what = f"{inv.function}" if number == 0 else f"then {inv.function} ({inv.trigger})"
        if not inv.ok:
            _note(f"{what} failed: {inv.error_type}: {inv.error}")
            continue
        _note(f"{what}:")
        lines = describe_result(inv.result, inv.event, log_path)
        ignored = inv.result.get("ignored") if isinstance(inv.result, dict) else None
        for line in lines or ([f"ignored: {ignored}"] if ignored else []):
            sys.stderr.write(f"    {line}\n")


def _show_slack(received: list[dict[str, Any]]) -> None:
    """Each message the local Slack webhook received, as Slack shows it."""
    if not received:
        _note("Slack: no message posted")
        return
    from eksops_dev.slack import render

    _note(f"Slack: {len(received)} message(s) posted to the webhook, as Slack shows them:")
    for number, payload in enumerate(received, 1):
        sys.stderr.write(f"    --- message {number} ---\n")
        for line in render(payload):
            sys.stderr.write(f"    {line}\n")


def _is_sqs_batch(event: Any) -> bool:
    """Whether ``event`` is shaped as an SQS event source mapping's batch (its records come from aws:sqs)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


# -- your AWS account --------------------------------------------------------------------------------------------


def _offline_resolver(template: Template, overrides: Mapping[str, str]) -> Resolver:
    """The template's values with these parameters, where no stack exists (its resources resolve to "")."""
    return Resolver(
        template,
        {**template.parameter_defaults(), **overrides},
        ref=lambda _name: "",
        getatt=lambda _name, _attr: "",
        stack_name="eksops",
    )


def _on_aws(template: Template, fn: FunctionSpec, event: Any, overrides: dict[str, str]) -> int:
    """Run the handler here with your credentials; resources of the stack come from your environment
    (for example REPORTS_TOPIC_ARN from the stack outputs) and are empty otherwise.

    A sweep that outlives the invocation continues here, not on your event bus: a continuation put there
    would be picked up by a deployed stack (which runs live even when this run is dry).
    """
    identity, region = _caller()
    resolver = _offline_resolver(template, overrides)
    resolver.pseudo["AWS::Region"] = region
    resolver.pseudo["AWS::AccountId"] = identity["Account"]
    layers = layering(template, fn, overrides, os.environ, sandbox=False)
    _note_environment(fn, layers)
    env = {k: env_str(v) for k, v in resolver.resolve(fn.environment).items()}
    env.update(layers.from_environment)
    env["POWERTOOLS_TRACE_DISABLED"] = os.environ.get("POWERTOOLS_TRACE_DISABLED", "true")
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"eksops-local-{fn.name}"
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region  # as Lambda sets both
    continuations: list[dict[str, Any]] = []

    def keep_here(_self: Continuer, *, run_id: str, part: int, checkpoint: Any) -> None:
        if part > MAX_PARTS:  # as Continuer does on the bus
            raise TemporaryError(f"sweep {run_id} of {fn.name} reached {MAX_PARTS} parts; stopping the chain")
        detail = {"function": fn.name, "run_id": run_id, "part": part, "checkpoint": checkpoint}
        continuations.append(_continuation_event(identity["Account"], region, detail))

    results = []
    failure: dict[str, Any] | None = None
    # Powertools' Logger and Metrics write to stdout: here they go to stderr, so stdout holds the result alone.
    with (
        patched_environ(env),
        mock.patch.object(Continuer, "continue_sweep", keep_here),
        contextlib.redirect_stdout(sys.stderr),
    ):
        try:
            module = load_module(fn, env.get("POWERTOOLS_SERVICE_NAME"))
        except ConfigError as exc:
            raise _startup_error(fn, exc, layers) from exc
        handler = getattr(module, fn.handler.rsplit(".", 1)[1])
        pending = [event]
        while pending:
            context = LambdaContext(env["AWS_LAMBDA_FUNCTION_NAME"], fn.memory, fn.timeout)
            context.invoked_function_arn = (
                f"arn:{identity['Arn'].split(':')[1]}:lambda:{region}:{identity['Account']}:function:"
                f"{env['AWS_LAMBDA_FUNCTION_NAME']}"
            )
            try:
                results.append(handler(pending.pop(0), context))
            except Exception as exc:
                failure = failure or _aws_failure(fn, exc, env, parts=len(results) + 1)
                summary = getattr(exc, "summary", None)
                if summary is None:
                    break
                # A part that failed after doing its work (a fan-out's cluster whose rule failed): keep its
                # summary and go on with the other parts, as Lambda runs each part on its own.
                results.append(summary)
            pending.extend(continuations)
            continuations.clear()
    if failure is not None:
        if results:
            failure["results"] = results
        _print(failure)
        return 1
    payload: dict[str, Any] = {"function": fn.name, "ok": True, "result": results[-1], "parts": len(results)}
    if len(results) > 1:  # a sweep that continued, or a fan-out (compliance_sweep): every part's result
        payload["results"] = results
    _print(payload)
    return 0


def _caller() -> tuple[Mapping[str, Any], str]:
    """Your identity and region, or a UsageError saying what is missing."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    try:
        # AWS_REGION first (Lambda's variable, and what newer SDKs read), then botocore's own AWS_DEFAULT_REGION/profile
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        region = session.region_name
        credentials = session.get_credentials()
    except ProfileNotFound as exc:
        raise UsageError(f"--aws: {exc}; set AWS_PROFILE to a profile of ~/.aws/config") from None
    if credentials is None:
        raise UsageError(
            "--aws needs AWS credentials and found none: set AWS_PROFILE, run `aws sso login` or `aws configure`, "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if not region:
        raise UsageError("--aws needs a region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in your profile)")
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except NoCredentialsError:
        raise UsageError("--aws needs AWS credentials and found none: run `aws sso login` or `aws configure`") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UsageError(
            f"--aws: AWS refused your credentials ({error.get('Code')}: {error.get('Message')}); "
            "refresh them (`aws sso login`, or new access keys)"
        ) from None
    except BotoCoreError as exc:
        raise UsageError(f"--aws: cannot check your credentials with STS in {region}: {exc}") from None
    return identity, region


def _aws_failure(fn: FunctionSpec, exc: Exception, env: Mapping[str, str], *, parts: int) -> dict[str, Any]:
    """The failure report of an --aws run: where to look, since there is no deployed alerts topic here."""
    topics = [name for name in ("ALERTS_TOPIC_ARN", "REPORTS_TOPIC_ARN") if env.get(name)]
    published = (
        f"alerts and reports were published to the topics your environment sets ({', '.join(topics)})"
        if topics
        else "no alert or report was published: --aws has no topics unless you set ALERTS_TOPIC_ARN and "
        "REPORTS_TOPIC_ARN"
    )
    failure: dict[str, Any] = {
        "function": fn.name,
        "ok": False,
        "error": str(exc),
        "errorType": type(exc).__name__,
        "part": parts,
        "where_to_look": f"the log lines on stderr and the errors listed here; {published}",
    }
    if isinstance(exc, PartialFailure):
        failure["errors"] = exc.errors
        if getattr(exc, "summary", None) is not None:  # what the run did, reported before it failed (compliance_sweep)
            failure["result"] = exc.summary  # type: ignore[attr-defined]
    return failure


def _continuation_event(account: str, region: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The event EventBridge would deliver for a continuation put on the bus."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CONTINUATION_DETAIL_TYPE,
        "source": CONTINUATION_SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": json.loads(json.dumps(detail)),
    }


def _print(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()
