"""The publisher against SNS on the moto server: what subscribers receive, and the reports email filter policy
exactly as template.yaml builds it (moto applies subscription filter policies)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eksops.aws import client
from eksops.notify import Message, Publisher, Severity
from eksops.notify.publish import MESSAGE_LIMIT
from eksops_dev.template import Resolver, Template


def message(severity: Severity, **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "kind": "retention.changes",
        "severity": severity,
        "title": f"Log retention ({severity})",
        "summary": "changed 1",
        "details": {"changed": [{"group": "/aws/lambda/x", "from": None, "to": 30}]},
        "region": "us-east-1",
        "lines": ("/aws/lambda/x: never expire -> 30 days",),
    }
    return Message(**{**fields, **overrides})


def subscribed_queue(topic_arn: str, name: str, attributes: dict[str, str] | None = None) -> str:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", **(attributes or {})},
    )
    return str(url)


def received(url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        batch = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        bodies += [json.loads(m["Body"]) for m in batch]


def reports_email_filter(template: Template, min_severity: str, topic_arn: str) -> dict[str, str]:
    """The ReportsEmailSubscription's filter attributes, resolved from template.yaml for a parameter value."""
    resource = template.resources["ReportsEmailSubscription"]
    parameters = {**template.parameter_defaults(), "ReportsEmailMinSeverity": min_severity}
    resolver = Resolver(
        template,
        parameters,
        ref=lambda name: topic_arn,
        getatt=lambda name, attribute: topic_arn,
        stack_name="eksops",
    )
    properties = resolver.resolve(resource["Properties"])
    assert properties["Protocol"] == "email"  # the subscription this test stands in for
    return {
        "FilterPolicy": json.dumps(properties["FilterPolicy"]),
        "FilterPolicyScope": properties["FilterPolicyScope"],
    }


def test_subscribers_get_the_envelope_and_the_attributes(aws: str) -> None:
    topic = client("sns").create_topic(Name="eksops-reports")["TopicArn"]
    queue = subscribed_queue(topic, "everything")
    publisher = Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=topic)
    message_id = publisher.report(message(Severity.WARNING))
    assert message_id
    [envelope] = received(queue)  # an SQS subscriber gets the "default" body: the JSON envelope
    assert envelope["source"] == "eksops" and envelope["kind"] == "retention.changes"
    assert envelope["severity"] == "warning" and envelope["lines"] == ["/aws/lambda/x: never expire -> 30 days"]
    assert envelope["details"]["changed"][0]["to"] == 30


@pytest.mark.parametrize(
    ("min_severity", "delivered"),
    [
        ("info", {"info", "warning", "critical"}),
        ("warning", {"warning", "critical"}),
        ("critical", {"critical"}),
    ],
)
def test_reports_email_filter_policy_passes_only_the_chosen_severities(
    aws: str, template: Template, min_severity: str, delivered: set[str]
) -> None:
    topic = client("sns").create_topic(Name="eksops-reports")["TopicArn"]
    filtered = subscribed_queue(topic, "email-stand-in", reports_email_filter(template, min_severity, topic))
    publisher = Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=topic)
    for severity in Severity:
        publisher.report(message(severity))
    assert {body["severity"] for body in received(filtered)} == delivered


def test_an_oversized_report_is_trimmed_to_fit_and_says_so(aws: str) -> None:
    topic = client("sns").create_topic(Name="eksops-reports")["TopicArn"]
    queue = subscribed_queue(topic, "everything")
    changed = [{"group": f"/aws/lambda/function-{i:06}", "from": None, "to": 30} for i in range(8000)]
    huge = message(Severity.INFO, details={"changed": changed}, lines=tuple(f"line {i}" for i in range(8000)))
    assert len(json.dumps(huge.envelope())) > MESSAGE_LIMIT  # SNS would refuse it as it is
    assert Publisher(client("sns"), alerts_topic_arn=None, reports_topic_arn=topic).report(huge)
    [envelope] = received(queue)
    assert "256 KB" in envelope["details"]["truncated"]
    assert envelope["details"]["changed_count"] == 8000 and len(envelope["details"]["changed"]) == 20
    assert envelope["summary"] == "changed 1"
