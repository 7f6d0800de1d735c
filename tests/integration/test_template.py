"""Walks template.yaml: every function is deployable, observable and fails somewhere visible."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from eksops import config
from eksops.logs.retention_config import VALID_DAYS
from eksops_dev.template import FunctionSpec, Template

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|BatchGet)[A-Za-z]*$")
DESIGN_FUNCTIONS = {
    "cluster_bootstrap",
    "log_retention",
    "error_alarms",
    "node_scaler",
    "image_updater",
    "compliance_sweep",
    "notifier",
}


def functions(template: Template) -> list[FunctionSpec]:
    return list(template.functions.values())


def test_function_names_are_the_design_contract(template: Template) -> None:
    assert template.functions, "no functions in template.yaml"
    assert set(template.functions) <= DESIGN_FUNCTIONS
    assert {p.name for p in (ROOT / "functions").iterdir() if p.is_dir()} == set(template.functions)


def test_every_function_has_a_handler_module(template: Template) -> None:
    for fn in functions(template):
        module, attr = fn.handler.rsplit(".", 1)
        path = fn.code_dir / f"{module}.py"
        assert path.is_file(), f"{fn.name}: {path} missing"
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert attr in defined, f"{fn.name}: {path} defines no {attr}()"


def test_every_function_has_its_own_log_group_with_retention(template: Template) -> None:
    log_groups = template.of_type("AWS::Logs::LogGroup")
    used = set()
    for fn in functions(template):
        ref = fn.properties.get("LoggingConfig", {}).get("LogGroup", {})
        assert isinstance(ref, dict) and ref.get("Ref") in log_groups, f"{fn.name}: LoggingConfig.LogGroup"
        assert ref["Ref"] not in used, f"{fn.name} shares a log group"
        used.add(ref["Ref"])
        assert log_groups[ref["Ref"]]["Properties"].get("RetentionInDays"), f"{fn.name}: no retention"
        assert fn.properties["LoggingConfig"].get("LogFormat") == "JSON"


def test_every_function_has_a_failure_destination(template: Template) -> None:
    queues = template.of_type("AWS::SQS::Queue")
    for fn in functions(template):
        destination = fn.properties["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination["Type"] == "SQS"
        assert destination["Destination"]["Fn::GetAtt"][0] in queues
        for source in fn.properties.get("Events", {}).values():
            if source["Type"] in {"EventBridgeRule", "Schedule"}:
                dead_letter = source["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
                assert dead_letter in queues, f"{fn.name}: rule target without a dead-letter queue"


def test_every_function_has_an_error_alarm(template: Template) -> None:
    alarms = [a["Properties"] for a in template.of_type("AWS::CloudWatch::Alarm").values()]
    for fn in functions(template):
        mine = [
            a
            for a in alarms
            if a["Namespace"] == "AWS/Lambda"
            and a["MetricName"] == "Errors"
            and {"Name": "FunctionName", "Value": {"Ref": fn.logical_id}} in a["Dimensions"]
        ]
        assert mine, f"{fn.name}: no alarm on its Errors metric"
        assert all(a["AlarmActions"] == [{"Ref": "AlertsTopic"}] for a in mine)


# Mutating actions for which IAM has no resource type: any narrower Resource would deny them.
NO_RESOURCE_SCOPE = {"logs:PutQueryDefinition", "logs:DeleteQueryDefinition"}


def test_mutating_actions_are_scoped(template: Template) -> None:
    for fn in functions(template):
        for policy in fn.properties.get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if statement["Resource"] == "*":
                    mutating = [a for a in actions if not READ_ONLY.match(a) and a not in NO_RESOURCE_SCOPE]
                    assert not mutating, f"{fn.name}: {mutating} on Resource '*'"


def test_retention_parameters_allow_exactly_what_cloudwatch_accepts(template: Template) -> None:
    allowed = template.parameters["RetentionDefaultDays"]["AllowedValues"]
    assert allowed == ["", *map(str, VALID_DAYS)]
    assert template.parameters["FunctionLogRetentionDays"]["AllowedValues"] == list(VALID_DAYS)


def test_parameter_defaults_pass_the_functions_own_validation(template: Template) -> None:
    from eksops.logs import RetentionConfig

    defaults = template.parameter_defaults()
    RetentionConfig.from_env(
        {
            "RETENTION_RULES": defaults["RetentionRules"],
            "RETENTION_DEFAULT_DAYS": defaults["RetentionDefaultDays"],
            "RETENTION_MODE": defaults["RetentionMode"],
            "RETENTION_EXCLUDE": defaults["RetentionExclude"],
            "RETENTION_PUT_RATE": defaults["RetentionPutRate"],
        }
    )


def test_every_variable_the_code_reads_is_defined(make_sandbox: Any) -> None:
    sandbox, dispatcher = make_sandbox()
    for fn in functions(sandbox.template):
        config.READ_VARIABLES.clear()
        dispatcher.handler(fn)  # the cold start: configuration is read here
        defined = set(sandbox.template.functions[fn.name].environment) | config.LAMBDA_RUNTIME_VARIABLES
        assert config.READ_VARIABLES, f"{fn.name} read no configuration at start-up"
        missing = config.READ_VARIABLES - defined
        assert not missing, f"{fn.name} reads {sorted(missing)}, which template.yaml does not define"


def test_only_the_config_module_reads_the_environment() -> None:
    allowed = {ROOT / "layers/eksops/eksops/config.py"}
    dev_only = ROOT / "layers/eksops/eksops/local"
    offenders = []
    for path in [*(ROOT / "layers/eksops/eksops").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        if path in allowed or dev_only in path.parents:
            continue
        text = path.read_text()
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("name", ["AlertsTopic", "ReportsTopic", "DeadLetterQueue", "IdempotencyTable"])
def test_shared_resources_exist(template: Template, name: str) -> None:
    assert name in template.resources
