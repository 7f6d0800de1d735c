"""`eksops validate`: parameter values checked as CloudFormation and each function's start-up would, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eksops_dev.cli import main
from eksops_dev.template import Template
from eksops_dev.validate import constraint_problem, load_params_file, load_samconfig, references

ROOT = Path(__file__).resolve().parents[3]
# One value per configuration class that the template's own constraints let through (CloudFormation would
# deploy it) and only the function's start-up refuses: parameter, value, the function and the variable named.
STARTUP_REFUSALS = [
    ("RetentionRules", '[{"pattern": "/aws/eks/*"}]', "log_retention", "RETENTION_RULES"),  # RetentionConfig
    ("ErrorFilterPattern", '{ $.level = "error }', "error_alarms", "ERROR_FILTER_PATTERN"),  # ErrorAlarmsConfig
    ("BootstrapClusters", '["prod-*", ""]', "cluster_bootstrap", "BOOTSTRAP_CLUSTERS"),  # BootstrapConfig
    ("ScalerActuator", '{"prod-*": "karpenter"}', "node_scaler", "SCALER_ACTUATOR"),  # ScalerConfig
    ("ImageMap", '[{"repository": "shop/cart"}]', "image_updater", "IMAGE_MAP"),  # UpdaterConfig
    ("SlackRoutes", '[{"severity": ["urgent"]}]', "notifier", "SLACK_ROUTES"),  # NotifierConfig
    ("ComplianceRemediate", '["no-such-rule"]', "compliance_sweep", "REMEDIATE"),  # ComplianceConfig
]
SECRETS = "arn:aws:secretsmanager:us-east-1:123456789012:secret"
REPO = {"ImageConfigRepoUrl": "codecommit://gitops"}  # image_updater is deployed only with a repository


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


def validate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["validate", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out.splitlines(), captured.err


def params_file(tmp_path: Path, values: dict[str, str]) -> str:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(values))
    return str(path)


def test_the_template_defaults_are_valid(capsys: pytest.CaptureFixture[str], template: Template) -> None:
    code, out, err = validate(capsys)
    assert code == 0, (out, err)
    deployed = len(template.functions) - 1  # image_updater needs a repository
    assert out == [
        f"{len(template.parameters)} parameters valid for {deployed} functions (the template defaults, region "
        "us-east-1); not deployed with these values: image_updater"
    ]


def test_good_values_for_every_function(capsys: pytest.CaptureFixture[str], tmp_path: Path, template: Template) -> None:
    good = {
        **REPO,
        "DryRun": "true",
        "RetentionRules": '[{"pattern": "/aws/eks/*", "days": 30}]',
        "RetentionDefaultDays": "",
        "ErrorFilterPattern": '{ $.level = "error" }',
        "BootstrapClusters": '["prod-*"]',
        "ScalerActuator": '{"prod-*": "headroom", "*": "asg"}',
        "ImageMap": '[{"repository": "shop/cart", "image": "1234.dkr.ecr.us-east-1.amazonaws.com/shop/cart", '
        '"files": ["apps/cart/values.yaml"], "policy": "semver"}]',
        "SlackRoutes": json.dumps([{"severity": ["critical"], "secret_arn": f"{SECRETS}:eksops/slack/oncall-AbCdEf"}]),
        "ComplianceRemediate": '["logs-retention"]',
    }
    code, out, err = validate(capsys, "--params", params_file(tmp_path, good))
    assert code == 0, (out, err)
    assert out[-1].startswith(f"{len(template.parameters)} parameters valid for {len(template.functions)} functions")


@pytest.mark.parametrize(("parameter", "value", "function", "variable"), STARTUP_REFUSALS)
def test_a_value_only_the_function_s_start_up_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, parameter: str, value: str, function: str, variable: str
) -> None:
    code, out, err = validate(capsys, "--params", params_file(tmp_path, {**REPO, parameter: value}))
    assert code == 2
    assert len(out) == 1, out
    assert out[0].startswith(f"{parameter}: {variable}")
    assert function in out[0].split(" (read by ", 1)[1].split(")", 1)[0].split(", ")
    assert f"Fix: change {parameter} in {tmp_path / 'params.json'}" in out[0]
    assert err.startswith("eksops: error: 1 problem(s)") and err.count("\n") == 1


def test_every_bad_value_of_a_function_is_found_not_only_the_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = {"RetentionRules": "[1]", "RetentionExclude": "[2]", "RetentionMode": "cap", "ErrorAlarmThreshold": "5"}
    code, out, _ = validate(capsys, "--params", params_file(tmp_path, bad))
    assert code == 2
    assert sorted(line.split(":")[0] for line in out) == ["RetentionExclude", "RetentionRules"]


def test_a_value_every_function_reads_is_one_problem_listing_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, template: Template
) -> None:
    code, out, _ = validate(capsys, "--params", params_file(tmp_path, {"DryRun": "yes"}))
    assert code == 2
    (line,) = out
    assert line.startswith("DryRun: 'yes' is not one of the allowed values (read by log_retention, ")
    # every function but the notifier, whose DRY_RUN is SlackDryRun's (a dry-run deployment still posts to Slack)
    assert all(name in line for name in template.functions if name != "notifier") and "notifier" not in line
    assert line.endswith("Fix: use one of: true, false")


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("RetentionPutRate", "500", "'500' is above the maximum 100"),
        ("ScalerTargetPercent", "ninety", "'ninety' is not a number"),
        ("ErrorAlarmPeriod", "61", "'61' is not one of the allowed values"),
        ("NotificationEmail", "ops-at-example", "does not match the pattern"),
        ("ImageCommitMessage", "x" * 301, "is longer than 300 characters (301)"),
        ("RetentionSweepSchedule", "daily", "Fix: use"),
    ],
)
def test_template_constraints_are_checked_locally(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, parameter: str, value: str, expected: str
) -> None:
    code, out, _ = validate(capsys, "--params", params_file(tmp_path, {parameter: value}))
    assert code == 2
    (line,) = out
    assert line.startswith(f"{parameter}: ") and expected in line


def test_unknown_parameter_names_are_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = validate(capsys, "--params", params_file(tmp_path, {"RetentionDays": "30", "DryRun": "true"}))
    assert code == 2
    (line,) = out
    assert line.startswith("RetentionDays: no such parameter in template.yaml (did you mean RetentionDefaultDays")


def test_notifier_secrets_must_be_in_the_deploy_region(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:eksops/slack/ops-AbCdEf"
    path = params_file(tmp_path, {"SlackWebhookSecretArn": secret})
    assert validate(capsys, "--params", path, "--region", "eu-west-1")[0] == 0
    code, out, _ = validate(capsys, "--params", path, "--region", "us-east-1")
    assert code == 2
    assert out[0].startswith(
        "SlackWebhookSecretArn: SLACK_WEBHOOK_SECRET_ARN: must be a secret in this function's region"
    )


SAMCONFIG = r"""
version = 0.1
[default.deploy.parameters]
capabilities = "CAPABILITY_IAM"

[prod.global.parameters]
region = "eu-west-1"

[prod.deploy.parameters]
stack_name = "eksops-prod"
parameter_overrides = 'DryRun=true RetentionRules="[{\"pattern\": \"/x/*\", \"days\": 30}]" ReserveConcurrency=false'

[staging.deploy.parameters]
parameter_overrides = ["DryRun=false", "ScalerActuator=bogus", 'ErrorFilterPattern="{ $.x = 1 \""']

[long.deploy.parameters]
stack_name = "{long}"
"""


@pytest.fixture
def samconfig(tmp_path: Path) -> str:
    path = tmp_path / "samconfig.toml"
    path.write_text(SAMCONFIG.replace("{long}", "e" * 115))
    return str(path)


def test_a_samconfig_environment(capsys: pytest.CaptureFixture[str], samconfig: str) -> None:
    given = load_samconfig(Path(samconfig), "prod")
    assert given.values == {
        "DryRun": "true",
        "RetentionRules": '[{"pattern": "/x/*", "days": 30}]',
        "ReserveConcurrency": "false",
    }
    assert (given.region, given.stack_name) == ("eu-west-1", "eksops-prod")  # global fills in what deploy lacks
    code, out, err = validate(capsys, "--config-file", samconfig, "--config-env", "prod")
    assert code == 0, (out, err)
    assert "(samconfig.toml [prod.deploy.parameters] parameter_overrides, region eu-west-1)" in out[-1]


def test_a_samconfig_environment_with_problems(capsys: pytest.CaptureFixture[str], samconfig: str) -> None:
    code, out, err = validate(capsys, "--config-file", samconfig, "--config-env", "staging")
    assert code == 2
    assert [line.split(":")[0] for line in out] == ["ScalerActuator", "ErrorFilterPattern"]
    assert "samconfig.toml [staging.deploy.parameters] parameter_overrides" in err


def test_a_stack_name_too_long_for_the_names_made_from_it(capsys: pytest.CaptureFixture[str], samconfig: str) -> None:
    code, out, _ = validate(capsys, "--config-file", samconfig, "--config-env", "long")
    assert code == 2
    (line,) = out
    assert line.startswith("template.yaml: SCALER_ALARM_PREFIX:") and "made from the stack name" in line
    assert line.endswith("Fix: choose another stack name")


def test_an_unknown_samconfig_environment(capsys: pytest.CaptureFixture[str], samconfig: str) -> None:
    code, out, err = validate(capsys, "--config-file", samconfig, "--config-env", "prd")
    assert code == 2 and out == []
    assert err == (
        "eksops: error: no environment 'prd' in "
        f"{samconfig} (did you mean prod?); environments: default, long, prod, staging\n"
    )


def test_the_project_s_own_samconfig(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = validate(capsys, "--config-env", "default")
    assert code == 0
    assert "(samconfig.toml [default.deploy.parameters] parameter_overrides, region us-east-1)" in out[-1]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("params.json", '[{"ParameterKey": "DryRun", "ParameterValue": "true"}]'),
        ("params.toml", 'parameter_overrides = "DryRun=true LogLevel=DEBUG"'),
        ("params.txt", 'DryRun=true RetentionExclude="[\\"/aws/lambda/*\\"]"'),
    ],
)
def test_other_params_file_forms(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    values = load_params_file(str(path)).values
    assert values["DryRun"] == "true"
    assert values.get("RetentionExclude", '["/aws/lambda/*"]') == '["/aws/lambda/*"]'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ('{"DryRun": ', "is not valid JSON"),
        ("[1, 2]", "write the parameters as a JSON object"),
        ("[default.deploy.parameters]\nregion = 'x'\n", "looks like a samconfig file"),
        ("nonsense", "is not a valid format"),
    ],
)
def test_a_bad_params_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "params"
    if content is not None:
        path.write_text(content)
    code, out, err = validate(capsys, "--params", str(path))
    assert code == 2 and out == []
    assert err.startswith("eksops: error: ") and err.count("\n") == 1 and expected in err


def test_references_find_parameters_through_sub_and_nesting(template: Template) -> None:
    value = {
        "Fn::Sub": ["${Prefix}-${LogLevel}-${AWS::StackName}-${AlertsTopic.TopicName}", {"Prefix": {"Ref": "DryRun"}}]
    }
    assert references(template, value) == ({"DryRun", "LogLevel"}, {"AWS::StackName", "AlertsTopic"})


def test_constraint_problem_reads_cloudformation_s_rules() -> None:
    assert constraint_problem({"Type": "Number", "MinValue": 1}, "0.5") == "'0.5' is below the minimum 1"
    assert constraint_problem({"Type": "Number", "AllowedValues": [60, 120]}, "120.0") is None
    assert constraint_problem({"Type": "String", "AllowedPattern": "^a+$"}, "aaa\nb") is not None
    assert constraint_problem({"Type": "CommaDelimitedList", "AllowedValues": ["a"]}, "b") is None


def test_a_start_up_that_calls_aws_is_caught_offline(tmp_path: Path, template: Template) -> None:
    """validate imports handler modules without AWS: a request sent during start-up is refused and reported."""
    from dataclasses import replace

    from eksops_dev.validate import StartupCallsAws, start_up

    (tmp_path / "app.py").write_text('from eksops.aws import client\nclient("sts").get_caller_identity()\n')
    fn = replace(template.functions["log_retention"], code_dir=tmp_path, handler="app.handler")
    error = start_up(fn, {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert isinstance(error, StartupCallsAws) and str(error) == "sts:GetCallerIdentity"
