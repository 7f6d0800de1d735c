"""The reports queue in template.yaml: who may send, how the notifier reads it, and what happens to a report that
keeps failing."""

from __future__ import annotations

from typing import Any

from eksops.notify.severity import SEVERITIES
from eksops_dev.template import Template


def props(template: Template, logical_id: str) -> dict[str, Any]:
    return template.resources[logical_id]["Properties"]  # type: ignore[no-any-return]


def test_only_the_reports_topic_may_send_and_the_notifier_reads_sns_notifications(template: Template) -> None:
    [statement] = props(template, "ReportsQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["ReportsQueue", "Arn"]}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnEquals": {"aws:SourceArn": {"Ref": "ReportsTopic"}},
    }
    assert props(template, "ReportsQueuePolicy")["Queues"] == [{"Ref": "ReportsQueue"}]
    subscription = props(template, "ReportsQueueSubscription")
    assert subscription["TopicArn"] == {"Ref": "ReportsTopic"} and subscription["Protocol"] == "sqs"
    assert subscription["RawMessageDelivery"] is False  # the notifier reads MessageId, TopicArn, Subject from the body
    assert "FilterPolicy" not in subscription  # thresholds are the notifier's: email keeps its own filter


def test_the_notifier_reads_reports_in_batches_and_alerts_one_by_one(template: Template) -> None:
    notifier = template.functions["notifier"]
    events = notifier.properties["Events"]
    assert {name: e["Type"] for name, e in events.items()} == {"Alerts": "SNS", "Reports": "SQS"}
    reports = events["Reports"]["Properties"]
    assert reports["Queue"] == {"Fn::GetAtt": ["ReportsQueue", "Arn"]}
    assert reports["FunctionResponseTypes"] == ["ReportBatchItemFailures"]  # else a failed digest deletes its reports
    assert reports["BatchSize"] >= 10 and 0 < reports["MaximumBatchingWindowInSeconds"] <= 300
    queue = props(template, "ReportsQueue")
    # Lambda's guidance: a visibility timeout of at least six times the function's timeout (plus the window)
    assert queue["VisibilityTimeout"] >= 6 * notifier.timeout + reports["MaximumBatchingWindowInSeconds"]
    assert queue["SqsManagedSseEnabled"] is True


def test_a_report_that_keeps_failing_ends_in_the_dead_letter_queue(template: Template) -> None:
    redrive = props(template, "ReportsQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 10


def test_the_notifier_role_may_read_only_the_reports_queue(template: Template) -> None:
    [policy] = props(template, "NotifierFunctionRole")["Policies"]
    reads = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if any(a.startswith("sqs:") and a != "sqs:SendMessage" for a in _actions(s))
    ]
    assert reads == [
        {
            "Sid": "ReadReportsQueue",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": {"Fn::GetAtt": ["ReportsQueue", "Arn"]},
        }
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_thresholds_and_dedup_are_parameters_of_the_notifier(template: Template) -> None:
    env = template.functions["notifier"].environment
    assert env["SLACK_MIN_SEVERITY"] == {"Ref": "SlackMinSeverity"}
    assert env["SLACK_DEDUP_SECONDS"] == {"Ref": "SlackDedupSeconds"}
    parameters = template.parameters
    assert tuple(parameters["SlackMinSeverity"]["AllowedValues"]) == SEVERITIES
    assert parameters["SlackMinSeverity"]["Default"] == "info"  # everything, as before
    assert (parameters["SlackDedupSeconds"]["MinValue"], parameters["SlackDedupSeconds"]["MaxValue"]) == (0, 86400)
