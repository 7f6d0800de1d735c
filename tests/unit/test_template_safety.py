"""template.yaml is safe to deploy as it comes and says what each question means: a dry run by default, a switch per
capability that leaves out the function's whole set of resources, retention's default kept to EKS groups, a
description on every parameter and a constraint description on every pattern; and the docs agree with the code."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from eksops_dev.template import Resolver, Template

ROOT = Path(__file__).resolve().parents[2]
STACK = "eksops-test"

# Enable<Capability> parameter -> (its condition, the function it deploys)
SWITCHES = {
    "EnableLogRetention": ("SetsLogRetention", "log_retention"),
    "EnableErrorAlarms": ("KeepsErrorAlarms", "error_alarms"),
    "EnableClusterBootstrap": ("BootstrapsClusters", "cluster_bootstrap"),
    "EnableNodeScaler": ("ScalesNodes", "node_scaler"),
    "EnableComplianceSweep": ("SweepsCompliance", "compliance_sweep"),
}
# Resources only one capability uses, besides its function, role, log group and errors alarm.
ALSO_LEFT_OUT = {
    "EnableClusterBootstrap": {"ClusterBootstrapAccessEntry"},
    "EnableNodeScaler": {"ScalingTopic", "ScalingTopicPolicy"},
    "EnableComplianceSweep": {"ComplianceStateTable"},
}
ALL_OFF = {name: "false" for name in SWITCHES}
# Parameters that switch on the other conditional parts (image_updater, the access entry, email, add-on mode and
# every remediation's permissions, Security Hub), so those parts are checked as well.
EVERYTHING_ELSE_ON = {
    "ImageConfigRepoUrl": "codecommit://config",
    "ImageConfigRepoSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:git-AbCdEf",
    "BootstrapAccessEntryCluster": "prod-eu",
    "BootstrapObservability": "addon",
    "NotificationEmail": "ops@example.com",
    "ComplianceRemediate": '["logs-retention", "logs-error-alarm", "node-role-cloudwatch-policy"]',
    "ComplianceSecurityHub": "true",
}
PARAMETER_SETS = [
    pytest.param({}, id="defaults"),
    *(pytest.param({name: "false"}, id=f"{name}=false") for name in SWITCHES),
    pytest.param(ALL_OFF, id="all-off"),
    pytest.param(EVERYTHING_ELSE_ON, id="everything-on"),
    pytest.param({**ALL_OFF, **EVERYTHING_ELSE_ON}, id="all-off-with-extras"),
]


# -- parameters: what the guided deploy shows -------------------------------------------------------------------


def test_every_parameter_has_a_description_and_every_pattern_a_constraint_description(template: Template) -> None:
    assert template.parameters
    missing = []
    for name, spec in template.parameters.items():
        if len(str(spec.get("Description", "")).strip()) < 20:
            missing.append(f"{name}: Description (the guided deploy's only explanation of the question)")
        if "AllowedPattern" in spec and not str(spec.get("ConstraintDescription", "")).strip():
            missing.append(f"{name}: ConstraintDescription (else CloudFormation shows the bare regex)")
    assert missing == []


def test_every_parameter_sits_in_one_console_group(template: Template) -> None:
    groups = template.doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert set(grouped) == set(template.parameters)


def test_the_first_deploy_is_a_dry_run(template: Template) -> None:
    dry_run = template.parameters["DryRun"]
    assert dry_run["Default"] == "true" and dry_run["AllowedValues"] == ["true", "false"]
    assert dry_run["Description"].startswith("true: report only (safe first deploy); set false to act")
    assert next(iter(template.parameters)) == "DryRun"  # the guided deploy asks it first
    assert template.doc["Globals"]["Function"]["Environment"]["Variables"]["DRY_RUN"] == {"Ref": "DryRun"}


@pytest.mark.parametrize("switch", SWITCHES)
def test_every_capability_has_a_switch_on_by_default(template: Template, switch: str) -> None:
    condition, _ = SWITCHES[switch]
    spec = template.parameters[switch]
    assert spec["Default"] == "true" and spec["AllowedValues"] == ["true", "false"]
    assert template.doc["Conditions"][condition] == {"Fn::Equals": [{"Ref": switch}, "true"]}


def test_retention_scope_is_the_code_s_and_eks_by_default(template: Template) -> None:
    from eksops.logs.retention_config import RETENTION_SCOPE, Scope

    spec = template.parameters["RetentionScope"]
    assert spec["AllowedValues"] == [scope.value for scope in Scope]
    assert spec["Default"] == Scope.EKS.value
    readers = {
        name
        for name, fn in template.functions.items()
        if fn.environment.get(RETENTION_SCOPE) == {"Ref": "RetentionScope"}
    }
    # Both functions that decide retention read it, so compliance judges (and remediates) as log_retention acts.
    assert readers == {"log_retention", "compliance_sweep"}


# -- the switches leave out the function's whole set of resources -----------------------------------------------


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """template.yaml as CloudFormation receives it: SAM's transform applied (functions become their function,
    rules, permissions, event source mappings and subscriptions), read back with the sandbox's template reader."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class NoManagedPolicies:  # the functions name their own roles: SAM looks up no managed policy
        def load(self) -> dict[str, str]:
            return {}

    doc = yaml_parse((ROOT / "template.yaml").read_text())
    for resource in doc["Resources"].values():  # `sam build` puts S3 locations here
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        output = transform(doc, {}, NoManagedPolicies())
    path = tmp_path_factory.mktemp("translated") / "template.json"
    path.write_text(json.dumps(output))
    return Template(path)


def deployed(template: Template, parameters: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], Resolver]:
    """The resources ``parameters`` deploy, and a resolver on which naming any other resource fails."""
    values = {**template.parameter_defaults(), **parameters}
    probe = Resolver(template, values, ref=_unknown, getatt=_unknown, stack_name=STACK)
    present = {k: v for k, v in template.resources.items() if probe.condition_holds(v)}

    def ref(name: str) -> str:
        if name not in present:
            raise KeyError(f"!Ref {name}: not deployed with {dict(parameters)}")
        return f"<{name}>"

    def getatt(name: str, attribute: str) -> str:
        if name not in present:
            raise KeyError(f"!GetAtt {name}.{attribute}: not deployed with {dict(parameters)}")
        return f"<{name}.{attribute}>"

    return present, Resolver(template, values, ref=ref, getatt=getatt, stack_name=STACK)


def _unknown(*names: str) -> str:
    raise AssertionError(f"conditions name no resource: {names}")


@pytest.mark.parametrize("parameters", PARAMETER_SETS)
def test_nothing_deployed_names_a_resource_that_is_left_out(translated: Template, parameters: dict[str, str]) -> None:
    # CloudFormation refuses a stack whose resources or outputs refer to a resource its conditions leave out (outside
    # an Fn::If on that condition); cfn-lint does not follow references to the resources SAM generates.
    present, resolver = deployed(translated, parameters)
    for logical_id, resource in present.items():
        resolver.resolve(resource.get("Properties", {}))
        for dependency in (
            [resource["DependsOn"]] if isinstance(resource.get("DependsOn"), str) else resource.get("DependsOn", [])
        ):
            assert dependency in present, f"{logical_id} depends on {dependency}, not deployed with {parameters}"
    for output in translated.doc.get("Outputs", {}).values():
        if "Condition" not in output or resolver.condition(output["Condition"]):
            resolver.resolve(output["Value"])


def test_switches_leave_out_exactly_their_capability(translated: Template) -> None:
    everything, _ = deployed(translated, EVERYTHING_ELSE_ON)
    for switch, (condition, function) in SWITCHES.items():
        present, _ = deployed(translated, {**EVERYTHING_ELSE_ON, switch: "false"})
        gone = set(everything) - set(present)
        logical = _function_logical_id(function)
        own = {name for name in everything if name.startswith(logical)}
        expected = own | {f"{logical}Role", f"{logical.removesuffix('Function')}LogGroup"}
        expected |= {f"{logical.removesuffix('Function')}ErrorsAlarm"} | ALSO_LEFT_OUT.get(switch, set())
        assert gone == expected, f"{switch}=false left out {sorted(gone ^ expected)} unexpectedly"
        kinds = {everything[name]["Type"] for name in gone}
        # the function and what invokes it: rules and schedules, permissions, invoke config, its role and log group
        assert {"AWS::Lambda::Function", "AWS::Events::Rule", "AWS::Lambda::Permission", "AWS::IAM::Role"} <= kinds
        assert {"AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::Lambda::EventInvokeConfig"} <= kinds
        assert all(everything[name].get("Condition") in {condition, "HasAccessEntryCluster"} for name in gone)


def test_with_every_switch_off_only_the_notifier_and_shared_parts_remain(translated: Template) -> None:
    present, _ = deployed(translated, ALL_OFF)
    functions = {k for k, v in present.items() if v["Type"] == "AWS::Lambda::Function"}
    assert functions == {"NotifierFunction"}
    rules = {k for k, v in present.items() if v["Type"] == "AWS::Events::Rule"}
    assert rules == {"EcrScanFindingsRule", "GuardDutyEksFindingsRule", "HealthEksEventsRule"}  # alerts, no function
    mappings = {k for k, v in present.items() if v["Type"] == "AWS::Lambda::EventSourceMapping"}
    assert mappings == {"NotifierFunctionReports"}
    # the dead-letter queue's policy then names only the three alert rules
    _, resolver = deployed(translated, ALL_OFF)
    policy = resolver.resolve(present["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"])
    (statement,) = policy["Statement"]
    assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(f"<{r}.Arn>" for r in rules)


def _function_logical_id(function: str) -> str:
    return "".join(part.title() for part in function.split("_")) + "Function"


def test_a_capability_s_resources_share_its_condition(template: Template) -> None:
    """In template.yaml itself (before SAM): the function, its role, log group and errors alarm carry the switch's
    condition, so a reader of the template sees the set."""
    for condition, function in SWITCHES.values():
        logical = _function_logical_id(function)
        stem = logical.removesuffix("Function")
        for name in (logical, f"{logical}Role", f"{stem}LogGroup", f"{stem}ErrorsAlarm"):
            assert template.resources[name].get("Condition") == condition, name
        outputs = {k: v for k, v in template.doc["Outputs"].items() if k.startswith(stem)}
        assert outputs and all(v.get("Condition") == condition for v in outputs.values()), stem


# -- the docs agree with the code -------------------------------------------------------------------------------


def readme_row(parameter: str) -> str:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| `{parameter}`")]
    assert len(rows) == 1, f"README.md's configuration table has {len(rows)} rows for {parameter}"
    return rows[0]


def test_readme_configuration_table_has_every_parameter_and_its_default(template: Template) -> None:
    table = "\n".join(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `"))
    for name in template.parameters:
        assert f"`{name}`" in table, f"README.md's configuration table lacks {name}"
    for name in ("DryRun", "RetentionScope", "RetentionDefaultDays", "ErrorAlarmPeriod", *SWITCHES):
        # the five switches share one row
        row = next(line for line in table.splitlines() if f"`{name}`" in line.split("|")[1])
        default = str(template.parameters[name]["Default"])
        assert f"| `{default}` |" in row, f"README.md gives {name} another default than {default}: {row}"


def test_error_alarm_period_docs_template_and_code_agree(template: Template) -> None:
    from eksops.errors import ConfigError
    from eksops.logs.error_alarms_config import DEFAULT_PERIOD, MAX_PERIOD, ErrorAlarmsConfig

    spec = template.parameters["ErrorAlarmPeriod"]
    allowed = [int(v) for v in spec["AllowedValues"]]
    assert int(spec["Default"]) == DEFAULT_PERIOD and max(allowed) == MAX_PERIOD
    for period in allowed:  # every value CloudFormation lets through, the function accepts at start-up
        assert ErrorAlarmsConfig.from_env({"ERROR_ALARM_PERIOD": str(period)}).period == period
    with pytest.raises(ConfigError):
        ErrorAlarmsConfig.from_env({"ERROR_ALARM_PERIOD": "90"})
    # README lists exactly the template's values (it said "multiple of 60", which CloudFormation refuses for 240)
    listed = [int(n) for n in re.findall(r"\b\d+\b", readme_row("ErrorAlarmPeriod").split("|")[4].split("(")[0])]
    assert listed == allowed
    assert "multiple of 60" not in spec["Description"]


def test_slack_secret_name_prefix_is_one_rule_in_code_template_and_docs(template: Template) -> None:
    from eksops.errors import ConfigError
    from eksops.notify.notifier import SECRET_PREFIX, NotifierConfig

    assert re.search(
        re.escape(f":secret:{SECRET_PREFIX}"), template.parameters["SlackWebhookSecretArn"]["AllowedPattern"]
    )
    role = template.resources["NotifierFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (read,) = [st for st in role if st["Action"] == "secretsmanager:GetSecretValue"]
    assert read["Resource"]["Fn::Sub"].endswith(f":secret:{SECRET_PREFIX}*")
    for doc in ("README.md", "docs/runbooks/notifications.md", "docs/architecture.md"):
        assert f"`{SECRET_PREFIX}" in (ROOT / doc).read_text(), doc
    # The docs say another name fails at start-up, for the default webhook as for the routes: it does.
    other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-password-AbCdEf"
    for env, variable in (
        ({"SLACK_WEBHOOK_SECRET_ARN": other}, "SLACK_WEBHOOK_SECRET_ARN"),
        ({"SLACK_ROUTES": json.dumps([{"secret_arn": other}])}, "SLACK_ROUTES[0].secret_arn"),
    ):
        with pytest.raises(ConfigError) as info:
            NotifierConfig.from_env({"AWS_REGION": "us-east-1", **env})
        assert info.value.variable == variable and SECRET_PREFIX in str(info.value)
    named = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET_PREFIX}team-AbCdEf"
    assert NotifierConfig.from_env({"AWS_REGION": "us-east-1", "SLACK_WEBHOOK_SECRET_ARN": named}).default_secret_arn
