"""Fixtures for the notifier: template.yaml with the reports queue (template_change.yaml) until it has one itself,
the sandbox on it, and Slack receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver
from eksops_dev.template import Template, _CfnLoader

ROOT = Path(__file__).resolve().parents[3]
CHANGE = Path(__file__).with_name("template_change.yaml")


def with_reports_queue(root: Path, workdir: Path) -> Path:
    """template.yaml if it has the reports queue already; otherwise a copy with template_change.yaml applied (its
    code folders linked, so the functions are the project's own)."""
    doc: dict[str, Any] = yaml.load((root / "template.yaml").read_text(), Loader=_CfnLoader)
    if "ReportsQueue" in doc["Resources"]:
        return root / "template.yaml"
    change: dict[str, Any] = yaml.load(CHANGE.read_text(), Loader=_CfnLoader)
    doc["Parameters"].update(change["Parameters"])
    doc["Resources"].update(change["Resources"])
    notifier = doc["Resources"]["NotifierFunction"]["Properties"]
    notifier["Environment"]["Variables"].update(change["NotifierEnvironment"])
    notifier["Events"].update(change["NotifierEvents"])
    [policy] = doc["Resources"]["NotifierFunctionRole"]["Properties"]["Policies"]
    policy["PolicyDocument"]["Statement"].extend(change["NotifierStatements"])
    for group in doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]:
        if "SlackRoutes" in group["Parameters"]:
            group["Parameters"] += list(change["Parameters"])
    workdir.mkdir(parents=True, exist_ok=True)
    for folder in ("functions", "layers"):
        (workdir / folder).symlink_to(root / folder, target_is_directory=True)
    (workdir / "template.yaml").write_text(yaml.safe_dump(_long_form(doc), sort_keys=False, width=120))
    return workdir / "template.yaml"


def _long_form(value: Any) -> Any:
    """The loader reads ``!Condition X`` as ``Fn::Condition``; its long form in a template is ``Condition``."""
    if isinstance(value, dict):
        return {("Condition" if k == "Fn::Condition" else k): _long_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_long_form(v) for v in value]
    return value


@pytest.fixture(scope="session")
def notifier_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return Template(with_reports_queue(ROOT, tmp_path_factory.mktemp("template")))


@pytest.fixture
def make_notifier_sandbox(
    aws: str, notifier_template: Template, tmp_path: Path
) -> Iterator[Callable[..., tuple[Sandbox, Dispatcher]]]:
    """The sandbox on template.yaml with the reports queue; returns (sandbox, dispatcher)."""
    opened: list[tuple[Sandbox, Dispatcher]] = []

    def make(parameters: dict[str, str] | None = None) -> tuple[Sandbox, Dispatcher]:
        sandbox = Sandbox(notifier_template, parameters=parameters, endpoint=aws, workdir=tmp_path / f"sb{len(opened)}")
        sandbox.start()
        dispatcher = Dispatcher(sandbox)
        opened.append((sandbox, dispatcher))
        return sandbox, dispatcher

    yield make
    for sandbox, dispatcher in reversed(opened):
        dispatcher.close()
        sandbox.stop()


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


def webhook(sandbox: Sandbox, receiver: SlackReceiver, name: str = "team") -> str:
    """A secret eksops/slack/<name> holding the receiver's URL; returns its ARN."""
    arn: str = sandbox.client("secretsmanager").create_secret(Name=f"eksops/slack/{name}", SecretString=receiver.url)[
        "ARN"
    ]
    return arn
