"""`eksops validate`: checks parameter values before a deploy, as CloudFormation and the functions' start-up would.

Two checks, both from template.yaml: each parameter's own constraints (AllowedValues, AllowedPattern, MinLength,
MaxLength, MinValue, MaxValue, the Number type), which CloudFormation enforces when the stack is created or
updated; then, for every function the values deploy, its environment resolved from the parameters and its handler
module imported in that environment, so the configuration classes the function reads at start-up (``from_env``)
judge the values with the code Lambda will run. The import is offline: handler modules only build clients at
start-up, and any AWS request made during it is refused here and reported.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

from eksops.errors import ConfigError
from eksops_dev.cli import UsageError, did_you_mean
from eksops_dev.template import ACCOUNT, PARTITION, FunctionSpec, Resolver, Template

DEFAULT_REGION = "us-east-1"
DEFAULT_STACK = "eksops"
SAMCONFIG = "samconfig.toml"
# Process variables kept while a handler module is imported; everything else comes from the function's environment.
_KEPT = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "SYSTEMROOT")
_SUB_NAME = re.compile(r"\$\{([^}!]+)\}")


@dataclass(frozen=True)
class Problem:
    """One value that would fail: which parameter(s), what is wrong, who reads it, and how to fix it."""

    parameters: tuple[str, ...]
    message: str
    fix: str
    functions: tuple[str, ...] = ()

    def line(self) -> str:
        who = ", ".join(self.parameters) or "template.yaml"
        readers = f" (read by {', '.join(self.functions)})" if self.functions else ""
        return f"{who}: {self.message}{readers}. Fix: {self.fix}"


@dataclass(frozen=True)
class Values:
    """Parameter values to check and where they came from."""

    values: dict[str, str]
    where: str  # e.g. "samconfig.toml [prod.deploy.parameters] parameter_overrides"
    region: str | None = None
    stack_name: str | None = None


# -- where values come from ------------------------------------------------------------------------------------


def parse_overrides(raw: Any, where: str) -> dict[str, str]:
    """Parameter overrides as ``sam deploy`` reads them (its own parser: ``K=V K2="v w"``, a list of such strings,
    a table, ``ParameterKey=K,ParameterValue=V``, ``file://``), so validate sees the strings CloudFormation gets."""
    import click
    from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]

    try:
        parsed = CfnParameterOverridesType().convert(raw, None, None)
    except click.ClickException as exc:
        raise UsageError(f"{where}: {exc.format_message()}") from None
    return {str(k): str(v) for k, v in parsed.items()}


def load_params_file(path: str) -> Values:
    """``--params FILE``: a JSON object ``{"Name": "value"}`` (or CloudFormation's list of ``ParameterKey`` /
    ``ParameterValue``), a TOML file with ``parameter_overrides``, or the overrides themselves as text."""
    text = _read(path, "parameters file")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and not _is_toml(text):  # a TOML file may open with a [table]
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if isinstance(doc, list) and all(isinstance(i, dict) and "ParameterKey" in i for i in doc):
            doc = {i["ParameterKey"]: i.get("ParameterValue", "") for i in doc}
        if not isinstance(doc, dict):
            raise UsageError(f'{path}: write the parameters as a JSON object, e.g. {{"DryRun": "true"}}')
        return Values(parse_overrides(doc, path) if doc else {}, path)
    try:
        toml = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return Values(parse_overrides(text.strip(), path) if text.strip() else {}, path)
    if "parameter_overrides" in toml:
        return Values(parse_overrides(toml["parameter_overrides"], path), f"{path} parameter_overrides")
    if any(isinstance(v, dict) for v in toml.values()):
        raise UsageError(f"{path} looks like a samconfig file: use --config-file {path} --config-env ENV")
    raise UsageError(f'{path} has no parameter_overrides; write parameter_overrides = "Name=value ..."')


def _is_toml(text: str) -> bool:
    try:
        return bool(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return False


def load_samconfig(path: Path, env: str) -> Values:
    """``[ENV.deploy.parameters]`` of a samconfig file (``global`` filling in, as ``sam deploy`` merges them)."""
    text = _read(str(path), "samconfig file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    envs = sorted(k for k, v in doc.items() if isinstance(v, dict))
    if env not in envs:
        raise UsageError(f"no environment {env!r} in {path}{did_you_mean(env, envs)}; environments: {', '.join(envs)}")
    section = doc[env]
    settings = {**section.get("global", {}).get("parameters", {}), **section.get("deploy", {}).get("parameters", {})}
    where = f"{path.name} [{env}.deploy.parameters] parameter_overrides"
    raw = settings.get("parameter_overrides")
    values = parse_overrides(raw, where) if raw not in (None, "", []) else {}
    return Values(values, where, region=settings.get("region"), stack_name=settings.get("stack_name"))


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


# -- what the template says --------------------------------------------------------------------------------------


def references(template: Template, value: Any) -> tuple[set[str], set[str]]:
    """The parameters and the other names (resources, pseudo parameters) an unresolved value refers to."""
    names: set[str] = set()
    _walk(value, names)
    params = {n for n in names if n in template.parameters}
    return params, names - params


def _walk(value: Any, names: set[str]) -> None:
    items = value.items() if isinstance(value, dict) else (("", v) for v in value) if isinstance(value, list) else ()
    for key, arg in items:
        if key == "Ref":
            names.add(str(arg))
        elif key == "Fn::GetAtt":
            names.add(str(arg[0]))
        elif key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            names.update(n.split(".", 1)[0] for n in _SUB_NAME.findall(text) if n not in variables)
            _walk(variables, names)
        else:
            _walk(arg, names)


def readers(template: Template, parameter: str) -> tuple[str, ...]:
    """The functions whose environment refers to ``parameter``."""
    return tuple(
        fn.name
        for fn in template.functions.values()
        if any(parameter in references(template, v)[0] for v in fn.environment.values())
    )


def unknown_parameters(template: Template, names: Iterable[str], where: str) -> list[Problem]:
    known = sorted(template.parameters)
    return [
        Problem((n,), f"no such parameter in template.yaml{did_you_mean(n, known)}", f"rename or remove it in {where}")
        for n in names
        if n not in template.parameters
    ]


def check_constraints(template: Template, values: Mapping[str, str]) -> list[Problem]:
    """What CloudFormation would refuse: each given value against its parameter's type and constraints, and
    parameters that have no default and no value."""
    problems = []
    for name, spec in template.parameters.items():
        if name not in values:
            if "Default" not in spec:
                problems.append(
                    Problem((name,), "has no default and no value", "give it a value", readers(template, name))
                )
            continue
        problem = constraint_problem(spec, values[name])
        if problem:
            problems.append(Problem((name,), problem, _allowed(spec), readers(template, name)))
    return problems


def constraint_problem(spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse ``value`` for a parameter declared as ``spec``, or None."""
    kind = str(spec.get("Type", "String"))
    if kind == "Number":
        return _number_problem(spec, value)
    if kind != "String":  # lists and AWS-specific types: CloudFormation checks them against the account
        return None
    shown = _shown(value)
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{shown} is shorter than {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{shown} is longer than {spec['MaxLength']} characters ({len(value)})"
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {str(a) for a in allowed}:
        return f"{shown} is not one of the allowed values"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value, flags=re.DOTALL):
        return f"{shown} does not match the pattern {pattern}"
    return None


def _number_problem(spec: Mapping[str, Any], value: str) -> str | None:
    shown = _shown(value)
    try:
        number = float(value)
    except ValueError:
        return f"{shown} is not a number"
    if "MinValue" in spec and number < float(spec["MinValue"]):
        return f"{shown} is below the minimum {spec['MinValue']}"
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        return f"{shown} is above the maximum {spec['MaxValue']}"
    allowed = spec.get("AllowedValues")
    if allowed is not None and number not in {float(a) for a in allowed}:
        return f"{shown} is not one of the allowed values"
    return None


def _allowed(spec: Mapping[str, Any]) -> str:
    if spec.get("AllowedValues") is not None:
        return "use one of: " + ", ".join(repr(str(a)) if str(a) == "" else str(a) for a in spec["AllowedValues"])
    parts = []
    if spec.get("ConstraintDescription"):
        parts.append(str(spec["ConstraintDescription"]))
    bounds = [f"{k} {spec[k]}" for k in ("MinValue", "MaxValue", "MinLength", "MaxLength") if k in spec]
    if bounds:
        parts.append(", ".join(bounds))
    if not parts and spec.get("AllowedPattern"):
        parts.append(f"match {spec['AllowedPattern']}")
    return "use " + "; ".join(parts) if parts else "see the parameter's description in template.yaml"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


# -- the functions' own start-up --------------------------------------------------------------------------------


class StartupCallsAws(Exception):
    """A handler module sent an AWS request while it was imported: validate cannot run its start-up offline."""


def resolver(template: Template, values: Mapping[str, str], *, region: str, stack_name: str) -> Resolver:
    """A resolver for the deployed stack: parameters as given, resources as placeholders shaped like theirs."""
    resolved = Resolver(
        template,
        {**template.parameter_defaults(), **values},
        ref=lambda name: _placeholder_ref(template, name, region, stack_name),
        getatt=lambda name, attr: _placeholder_getatt(template, name, attr, region, stack_name),
        stack_name=stack_name,
    )
    resolved.pseudo["AWS::Region"] = region
    return resolved


def _placeholder_ref(template: Template, name: str, region: str, stack: str) -> str:
    kind = template.resources.get(name, {}).get("Type", "")
    physical = f"{stack}-{name}"
    if kind == "AWS::SNS::Topic":
        return f"arn:{PARTITION}:sns:{region}:{ACCOUNT}:{physical}"
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}"
    if kind == "AWS::IAM::ManagedPolicy":
        return f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{physical}"
    if kind == "AWS::Logs::LogGroup":
        log_group = template.resources[name].get("Properties", {}).get("LogGroupName")
        if isinstance(log_group, str):
            return log_group
        return f"/aws/lambda/{physical}"
    return physical


def _placeholder_getatt(template: Template, name: str, attribute: str, region: str, stack: str) -> str:
    if attribute != "Arn":
        return f"{stack}-{name}-{attribute}"
    kind = template.resources.get(name, {}).get("Type", "")
    ref = _placeholder_ref(template, name, region, stack)
    if kind == "AWS::SNS::Topic":
        return ref
    if kind == "AWS::SQS::Queue":
        return f"arn:{PARTITION}:sqs:{region}:{ACCOUNT}:{stack}-{name}"
    if kind == "AWS::DynamoDB::Table":
        return f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT}:table/{ref}"
    service = kind.split("::")[1].lower() if kind.count("::") == 2 else "cloudformation"
    return f"arn:{PARTITION}:{service}:{region}:{ACCOUNT}:{ref}"


def env_str(value: Any) -> str:
    """A resolved template value as Lambda sets it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def runtime_environment(fn: FunctionSpec, resolved: Resolver, *, region: str, stack_name: str) -> dict[str, str]:
    """The environment Lambda gives ``fn``: its template variables plus the runtime's own."""
    env = {k: env_str(v) for k, v in resolved.resolve(fn.environment).items()}
    env.update(
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_LAMBDA_FUNCTION_NAME=f"{stack_name}-{fn.name.replace('_', '-')}",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory),
        POWERTOOLS_TRACE_DISABLED="true",  # the X-Ray SDK would patch botocore for nothing
    )
    return env


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No AWS request leaves the process: a start-up that sends one fails with StartupCallsAws."""
    import botocore.endpoint

    def refuse(_self: Any, operation_model: Any, _request: Any) -> Any:
        raise StartupCallsAws(f"{operation_model.service_model.service_name}:{operation_model.name}")

    with mock.patch.object(botocore.endpoint.Endpoint, "make_request", refuse):
        yield


@functools.cache
def _offline_session() -> Any:
    """One botocore session for every start-up validate runs: service models load once per process, and the
    caller's config and credential files are never read (it is first used with both set to os.devnull)."""
    import botocore.session

    return botocore.session.get_session()


_STARTS: dict[tuple[Path, str, frozenset[tuple[str, str]]], Exception | None] = {}


def start_up(fn: FunctionSpec, env: Mapping[str, str]) -> Exception | None:
    """Import ``fn``'s handler module in ``env`` alone (offline, output discarded); the error it raised, or None.

    The answer depends only on the code and the environment, so it is kept for the life of the process."""
    key = (fn.code_dir, fn.handler, frozenset(env.items()))
    if key not in _STARTS:
        _STARTS[key] = _start_up(fn, env)
    return _STARTS[key]


def _start_up(fn: FunctionSpec, env: Mapping[str, str]) -> Exception | None:
    from eksops.aws import clients
    from eksops_dev.dispatch import load_module

    environ = {k: os.environ[k] for k in _KEPT if k in os.environ}
    # No profile, credentials or config file of the caller's: the functions' start-up must not need any.
    environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, **env)
    with (
        mock.patch.dict(os.environ, environ, clear=True),
        mock.patch.object(clients, "_session", _offline_session),
        _offline(),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        clients.client.cache_clear()  # clients made for the sandbox or the tests would not be offline
        try:
            load_module(fn, env.get("POWERTOOLS_SERVICE_NAME"))
        except Exception as exc:  # judged by the caller: a ConfigError is the expected kind
            return exc
        finally:
            clients.client.cache_clear()  # nor would these serve anyone else
    return None


def check_functions(
    template: Template, values: Mapping[str, str], *, region: str, stack_name: str, where: str = "your parameters"
) -> tuple[list[Problem], list[str], list[str]]:
    """Each function's start-up with ``values``: (problems, functions checked, functions these values leave out).

    After a ConfigError the parameters it came from are set back to their defaults and the start-up runs again,
    so every bad value of a function is found, not only the first it reads."""
    defaults = template.parameter_defaults()
    found: dict[tuple[tuple[str, ...], str, str], list[str]] = {}
    key: tuple[tuple[str, ...], str, str]
    checked, skipped = [], []
    for fn in template.functions.values():
        current = {**defaults, **values}
        if not resolver(template, current, region=region, stack_name=stack_name).condition_holds(
            template.resources[fn.logical_id]
        ):
            skipped.append(fn.name)
            continue
        checked.append(fn.name)
        for _ in range(len(fn.environment) + 1):
            if not (fn.code_dir / f"{fn.handler.rsplit('.', 1)[0]}.py").is_file():
                key = ((), f"{fn.name}: no handler module in {fn.code_dir}", "check CodeUri and Handler")
                found.setdefault(key, []).append(fn.name)
                break
            resolved = resolver(template, current, region=region, stack_name=stack_name)
            env = runtime_environment(fn, resolved, region=region, stack_name=stack_name)
            error = start_up(fn, env)
            if error is None:
                break
            key, blamed = _diagnose(template, fn, error, current=current, defaults=defaults, where=where)
            found.setdefault(key, []).append(fn.name)
            if not blamed:
                break  # the template's own values fail: nothing to set back
            current.update({p: defaults[p] for p in blamed})
    problems = [Problem(params, message, fix, tuple(fns)) for (params, message, fix), fns in found.items()]
    return problems, checked, skipped


def _diagnose(
    template: Template,
    fn: FunctionSpec,
    error: Exception,
    *,
    current: Mapping[str, str],
    defaults: Mapping[str, str],
    where: str,
) -> tuple[tuple[tuple[str, ...], str, str], tuple[str, ...]]:
    """(problem key, parameters to set back) for an error raised by ``fn``'s start-up."""
    if isinstance(error, StartupCallsAws):
        return ((), f"{fn.name}'s start-up calls AWS ({error}): validate cannot check it offline", "report it"), ()
    if not isinstance(error, ConfigError):
        message = f"{fn.name} fails at start-up with {type(error).__name__}: {error}"
        return ((), " ".join(message.split()), "report it: start-up should raise ConfigError naming the variable"), ()
    variable = re.split(r"[.\[]", error.variable, maxsplit=1)[0]
    params, others = references(template, fn.environment.get(variable))
    blamed = tuple(sorted(p for p in params if current[p] != defaults[p]))
    if blamed:
        spec = template.parameters[blamed[0]]
        hint = f" (expected: {spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else ""
        return (blamed, str(error), f"change {' and '.join(blamed)} in {where}{hint}"), blamed
    if "AWS::StackName" in others:
        return ((), f"{error} (it is made from the stack name)", "choose another stack name"), ()
    where = f"the default of {', '.join(sorted(params))}" if params else f"{fn.name}'s environment"
    return ((), f"{error} ({where})", "fix template.yaml"), ()


# -- the command -------------------------------------------------------------------------------------------------


def load(template: Template, params_file: str | None, config_env: str | None, config_file: str | None) -> Values:
    if params_file:
        return load_params_file(params_file)
    if config_env or config_file:
        path = Path(config_file) if config_file else template.root / SAMCONFIG
        return load_samconfig(path, config_env or "default")
    return Values({}, "the template defaults")


def run(
    template: Template,
    *,
    params_file: str | None = None,
    config_env: str | None = None,
    config_file: str | None = None,
    region: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Check the values; print each problem (stdout) and return 2 if any, else print the summary and return 0."""
    out = out or sys.stdout
    given = load(template, params_file, config_env, config_file)
    region = region or given.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or DEFAULT_REGION
    stack_name = given.stack_name or DEFAULT_STACK
    problems = unknown_parameters(template, given.values, given.where)
    values = {k: v for k, v in given.values.items() if k in template.parameters}
    refused = check_constraints(template, values)
    problems += refused
    # CloudFormation stops at a refused value, so the functions never see it: their check uses the default there.
    usable = {k: v for k, v in values.items() if not any(k in p.parameters for p in refused)}
    found, checked, skipped = check_functions(template, usable, region=region, stack_name=stack_name, where=given.where)
    problems += found
    where = f"{given.where}, region {region}"
    for problem in problems:
        out.write(problem.line() + "\n")
    if problems:
        raise UsageError(f"{len(problems)} problem(s) in the parameter values of {where} (listed above)")
    left_out = f"; not deployed with these values: {', '.join(skipped)}" if skipped else ""
    out.write(f"{len(template.parameters)} parameters valid for {len(checked)} functions ({where}){left_out}\n")
    return 0
