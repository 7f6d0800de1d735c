"""Reads template.yaml: functions, their event sources, environment, and CloudFormation intrinsics.

The sandbox and the tests take names, patterns and environment from here, so template.yaml stays the only
place they are declared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns short-form tags (!Ref, !Sub, ...) into their long form dicts."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class EventSource:
    """One entry of a function's Events."""

    logical_id: str
    kind: str  # "eventbridge", "schedule", "sns" or "sqs"
    pattern: dict[str, Any] | None = None
    schedule: Any = None
    topic: Any = None  # unresolved reference to the topic
    queue: Any = None  # unresolved reference to the queue's ARN (an SQS event source mapping)
    batch_size: int = 10
    report_failures: bool = False  # FunctionResponseTypes has ReportBatchItemFailures


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # the folder under functions/, which is the function's contract name
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]  # unresolved values
    events: tuple[EventSource, ...]
    properties: dict[str, Any] = field(repr=False, default_factory=dict)


class Template:
    """A parsed template.yaml with SAM Globals merged into each function."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent
        self.doc: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
        self.resources: dict[str, dict[str, Any]] = self.doc.get("Resources", {})
        self.parameters: dict[str, dict[str, Any]] = self.doc.get("Parameters", {})
        self.functions = {f.name: f for f in self._functions()}

    @classmethod
    def find(cls, start: Path | None = None) -> Template:
        """The template.yaml of the project containing ``start`` (default: the working directory)."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "template.yaml").is_file():
                return cls(folder / "template.yaml")
        raise FileNotFoundError(f"no template.yaml in {here} or its parents")

    def parameter_defaults(self) -> dict[str, str]:
        return {name: str(spec.get("Default", "")) for name, spec in self.parameters.items()}

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") in types}

    def _functions(self) -> list[FunctionSpec]:
        globals_ = self.doc.get("Globals", {}).get("Function", {})
        specs = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = {**globals_, **resource.get("Properties", {})}
            env = {
                **globals_.get("Environment", {}).get("Variables", {}),
                **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
            }
            code_dir = (self.root / props["CodeUri"]).resolve()
            specs.append(
                FunctionSpec(
                    logical_id=logical_id,
                    name=code_dir.name,
                    code_dir=code_dir,
                    handler=props["Handler"],
                    timeout=int(props.get("Timeout", 3)),
                    memory=int(props.get("MemorySize", 128)),
                    environment=env,
                    events=tuple(_event_sources(props.get("Events", {}))),
                    properties=props,
                )
            )
        return specs


def _event_sources(events: Mapping[str, Any]) -> list[EventSource]:
    sources = []
    for logical_id, spec in events.items():
        kind, props = spec["Type"], spec.get("Properties", {})
        if kind == "EventBridgeRule":
            sources.append(EventSource(logical_id, "eventbridge", pattern=props["Pattern"]))
        elif kind in {"Schedule", "ScheduleV2"}:
            sources.append(
                EventSource(logical_id, "schedule", schedule=props.get("Schedule") or props.get("ScheduleExpression"))
            )
        elif kind == "SNS":
            sources.append(EventSource(logical_id, "sns", topic=props["Topic"]))
        elif kind == "SQS":
            sources.append(
                EventSource(
                    logical_id,
                    "sqs",
                    queue=props["Queue"],
                    batch_size=int(props.get("BatchSize", 10)),
                    report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
        else:
            raise ValueError(f"event source type {kind} ({logical_id}) is not supported by the sandbox")
    return sources


class Resolver:
    """Evaluates the intrinsics the template uses: Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not and
    Fn::Join. ``ref`` and ``getatt`` supply values for resources; an unknown name raises KeyError."""

    def __init__(
        self,
        template: Template,
        parameters: Mapping[str, str],
        *,
        ref: Callable[[str], Any],
        getatt: Callable[[str, str], Any],
        stack_name: str,
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self._resource_ref = ref
        self._resource_getatt = getatt
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        self._intrinsics: dict[str, Callable[[Any], Any]] = {
            "Ref": self.name,
            "Condition": self.condition,
            "Fn::GetAtt": lambda arg: self._resource_getatt(arg[0], arg[1]),
            "Fn::Sub": self._sub,
            "Fn::Join": lambda arg: str(arg[0]).join(str(x) for x in self.resolve(arg[1])),
            "Fn::Equals": lambda arg: str(self.resolve(arg[0])) == str(self.resolve(arg[1])),
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Fn::And": lambda arg: all(self.resolve(x) for x in arg),
            "Fn::Or": lambda arg: any(self.resolve(x) for x in arg),
            "Fn::Condition": self.condition,
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(str(arg[0])),
            "Fn::If": lambda arg: self.resolve(arg[1] if self.condition(arg[0]) else arg[2]),
            "Fn::FindInMap": lambda arg: self.template.doc["Mappings"][self.resolve(arg[0])][self.resolve(arg[1])][
                self.resolve(arg[2])
            ],
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(x) for x in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            # {"Condition": name} (!Condition inside Fn::And/Or/Not) too; a property named Condition holds a mapping
            if key == "Ref" or key.startswith("Fn::") or (key == "Condition" and isinstance(arg, str)):
                if key not in self._intrinsics:
                    raise ValueError(f"intrinsic {key} is not supported by the sandbox")
                return self._intrinsics[key](arg)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def name(self, name: str) -> Any:
        """What !Ref gives for a pseudo parameter, a parameter or a resource."""
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource_ref(name)

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.doc.get("Conditions", {})[name]))

    def condition_holds(self, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return True if condition is None else self.condition(condition)

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in variables:
                return str(variables[key])
            if "." in key and key not in self.pseudo:
                return str(self._resource_getatt(*key.split(".", 1)))
            return str(self.name(key))

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)
