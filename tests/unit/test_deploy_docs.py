"""docs/deploy.md's IAM policies for deploying: valid JSON, and the CloudFormation service role may create every named
resource template.yaml declares (a layer or table added to the template and not to the policy fails a real deploy)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.template import Resolver, Template

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION, STACK = "111122223333", "eu-west-1", "eksops"  # the docs' stack name; ACCOUNT stands for yours

# resource type -> (its name property, the action that creates it, its ARN from the name)
NAMED = {
    "AWS::Serverless::LayerVersion": ("LayerName", "lambda:PublishLayerVersion", "arn:aws:lambda:{r}:{a}:layer:{n}:1"),
    "AWS::SNS::Topic": ("TopicName", "sns:CreateTopic", "arn:aws:sns:{r}:{a}:{n}"),
    "AWS::SQS::Queue": ("QueueName", "sqs:CreateQueue", "arn:aws:sqs:{r}:{a}:{n}"),
    "AWS::DynamoDB::Table": ("TableName", "dynamodb:CreateTable", "arn:aws:dynamodb:{r}:{a}:table/{n}"),
    "AWS::Logs::LogGroup": ("LogGroupName", "logs:CreateLogGroup", "arn:aws:logs:{r}:{a}:log-group:{n}"),
}


def policies() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)]


def allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    for statement in statements:
        if statement["Effect"] != "Allow" or "Condition" in statement:
            continue
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(arn, r.replace("ACCOUNT", ACCOUNT)) for r in resources
        ):
            return True
    return False


def test_the_policies_are_json_with_the_deployer_s_and_the_service_role_s() -> None:
    deployer, service_role = policies()
    assert {s["Sid"] for s in deployer["Statement"]} >= {"DeployerStacks", "DeployerPassesTheServiceRole"}
    assert len(service_role["Statement"]) > 5


@pytest.mark.parametrize("kind", sorted(NAMED))
def test_the_service_role_may_create_every_named_resource_of_the_template(kind: str) -> None:
    template = Template(ROOT / "template.yaml")
    resolver = Resolver(
        template,
        template.parameter_defaults(),
        ref=lambda name: name,
        getatt=lambda name, attribute: f"{name}.{attribute}",
        stack_name=STACK,
    )
    resolver.pseudo.update({"AWS::AccountId": ACCOUNT, "AWS::Region": REGION})
    _, service_role = policies()
    prop, action, arn = NAMED[kind]
    names = [
        resolver.resolve(r["Properties"][prop]) for r in template.of_type(kind).values() if prop in r["Properties"]
    ]
    assert names, f"no {kind} with a {prop} in template.yaml"
    denied = [n for n in names if not allowed(service_role["Statement"], action, arn.format(r=REGION, a=ACCOUNT, n=n))]
    assert denied == [], f"docs/deploy.md's service role may not {action} these"


def test_the_check_fails_for_a_name_outside_the_policy() -> None:
    _, service_role = policies()
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:eksops-other:1"
    assert not allowed(service_role["Statement"], "lambda:PublishLayerVersion", arn)
    assert allowed(service_role["Statement"], "lambda:PublishLayerVersion", arn.replace("other", "eksops"))
