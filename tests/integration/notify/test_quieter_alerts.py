"""Alerts through the sandbox's alerts topic: minimum severities (SLACK_MIN_SEVERITY, a route's min_severity) and
burst dedup of identical alerts (SLACK_DEDUP_SECONDS), against DynamoDB on moto and the local Slack receiver."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eksops_dev.dispatch import Dispatcher, Invocation
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver, render
from tests.integration.notify.conftest import webhook

ROOT = Path(__file__).resolve().parents[3]
MakeSandbox = Callable[..., tuple[Sandbox, Dispatcher]]


def sample_body(name: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events/notifier" / f"{name}.json").read_text())
    return json.loads(event["Records"][0]["Sns"]["Message"])  # type: ignore[no-any-return]


def alarm(state: str = "ALARM", at: str = "2026-11-25T10:15:02.846+0000") -> dict[str, Any]:
    body = sample_body("cloudwatch_alarm")
    body.update(NewStateValue=state, OldStateValue="OK" if state == "ALARM" else "ALARM", StateChangeTime=at)
    body["NewStateReason"] = "Threshold Crossed: no datapoints were received for 1 period (treated as breaching)."
    return body


def publish(sandbox: Sandbox, body: dict[str, Any], topic: str = "AlertsTopic") -> str:
    """Publish to a topic of the sandbox as CloudWatch or an EventBridge rule would; returns the MessageId."""
    answer = sandbox.client("sns").publish(TopicArn=sandbox.refs[topic], Message=json.dumps(body))
    return str(answer["MessageId"])


def notified(invocations: list[Invocation]) -> list[dict[str, Any]]:
    results = [inv.result for inv in invocations if inv.function == "notifier"]
    assert all(inv.ok for inv in invocations if inv.function == "notifier"), invocations
    return results


def emitted_metrics(sandbox: Sandbox, dispatcher: Dispatcher) -> Counter[str]:
    """The notifier's EMF metrics in functions.log, summed by name."""
    dispatcher.close()
    totals: Counter[str] = Counter()
    for line in (sandbox.workdir / "functions.log").read_text().splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                totals[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return totals


def age_dedup_records(sandbox: Sandbox) -> int:
    """The dedup window passes: the alert records' expiry moves into the past (what Powertools compares)."""
    ddb, table = sandbox.client("dynamodb"), sandbox.refs["IdempotencyTable"]
    aged = 0
    for item in ddb.scan(TableName=table)["Items"]:
        if ".alert-dedup#" in item["id"]["S"]:
            ddb.update_item(
                TableName=table,
                Key={"id": item["id"]},
                UpdateExpression="SET expiration = :past",
                ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
            )
            aged += 1
    return aged


# -- minimum severity ----------------------------------------------------------------------------------------------


def test_below_slack_min_severity_is_not_posted_and_is_counted(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox({"SlackMinSeverity": "warning"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publish(sandbox, alarm("ALARM"))  # critical
    publish(sandbox, alarm("OK", at="2026-11-25T10:20:02.846+0000"))  # ok: a recovery, below warning
    publish(sandbox, sample_body("guardduty_eks_finding"))  # warning
    results = notified(dispatcher.drain())
    assert [(r["kind"], r["severity"], r["posted"]) for r in results] == [
        ("cloudwatch-alarm", "critical", True),
        ("cloudwatch-alarm", "ok", False),
        ("guardduty-finding", "warning", True),
    ]
    assert results[1]["filtered"] is True and results[1]["reason"] == "SLACK_MIN_SEVERITY is warning"
    assert "errors" not in results[1] and len(slack.received) == 2
    assert [render(p)[0] for p in slack.received] == [
        "== 🔴 eksops-prod-eu-application-errors is ALARM ==",
        "== 🟠 GuardDuty: Command executed inside a pod in the kube-system namespace. ==",
    ]
    metrics = emitted_metrics(sandbox, dispatcher)
    assert (metrics["SlackPosted"], metrics["SlackFiltered"], metrics["SlackNotPosted"]) == (2, 1, 0)
    log = (sandbox.workdir / "functions.log").read_text()
    assert "is ok, below SLACK_MIN_SEVERITY: not posted" in log


def test_ok_keeps_recoveries_and_leaves_out_info(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    sandbox, dispatcher = make_notifier_sandbox({"SlackMinSeverity": "ok"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publish(sandbox, alarm("OK"))
    info = sample_body("eksops_retention_changes")  # an info envelope on the alerts topic
    publish(sandbox, info)
    results = notified(dispatcher.drain())
    assert [(r["severity"], r["posted"]) for r in results] == [("ok", True), ("info", False)]
    assert len(slack.received) == 1


def test_a_route_threshold_keeps_what_the_route_takes_from_other_webhooks(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """prod-* messages go to on-call, critical only: a prod warning is posted nowhere (it does not fall through to the
    default webhook); other clusters' warnings reach the default webhook."""
    with SlackReceiver() as oncall:
        sandbox, dispatcher = make_notifier_sandbox()
        routes = [{"cluster": "prod-*", "min_severity": "critical", "secret_arn": webhook(sandbox, oncall, "oncall")}]
        sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack), SlackRoutes=json.dumps(routes))
        publish(sandbox, alarm("ALARM"))  # critical, prod-eu
        publish(sandbox, sample_body("guardduty_eks_finding"))  # warning, prod-eu
        publish(sandbox, sample_body("health_eks_event"))  # warning, legacy-apps
        results = notified(dispatcher.drain())
        assert [(r["cluster"], r["posted"], r.get("webhook")) for r in results] == [
            ("prod-eu", True, "eksops/slack/oncall-" + routes[0]["secret_arn"].rsplit("-", 1)[1]),
            ("prod-eu", False, None),
            ("legacy-apps", True, "eksops/slack/team-" + sandbox.parameters["SlackWebhookSecretArn"].rsplit("-", 1)[1]),
        ]
        assert results[1]["reason"] == "SLACK_ROUTES[0].min_severity is critical"
        assert len(oncall.received) == 1 and len(slack.received) == 1


def test_invalid_thresholds_fail_at_start_up_naming_the_variable(make_notifier_sandbox: MakeSandbox) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:eksops/slack/x-AbCdEf"
    cases = [
        ({"SlackMinSeverity": "loud"}, "SLACK_MIN_SEVERITY: 'loud' is not allowed"),
        ({"SlackDedupSeconds": "-1"}, "SLACK_DEDUP_SECONDS: -1 is outside 0..86400"),
        ({"SlackRoutes": json.dumps([{"min_severity": "high", "secret_arn": arn}])}, "SLACK_ROUTES[0].min_severity: "),
        (
            {"SlackRoutes": json.dumps([{"severity": ["info"], "min_severity": "warning", "secret_arn": arn}])},
            "SLACK_ROUTES[0].min_severity: warning is above every severity the route takes (info)",
        ),
    ]
    sandbox, _ = make_notifier_sandbox()
    event = json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text())
    for parameters, error in cases:
        sandbox.set_parameters(**{**sandbox.template.parameter_defaults(), **parameters})
        inv = Dispatcher(sandbox).invoke("notifier", event, "test", retries=0)  # a new execution environment
        assert inv.error_type == "ConfigError" and str(inv.error).startswith(error), (parameters, inv.error)


# -- burst dedup ---------------------------------------------------------------------------------------------------


def test_identical_alerts_are_posted_once_per_window_and_the_next_post_counts_the_copies(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    denied = sample_body("eksops_bootstrap_access_denied")  # the same alert from three sweeps in a row
    first = publish(sandbox, denied)
    publish(sandbox, denied)
    publish(sandbox, denied)
    results = notified(dispatcher.drain())
    assert [r["posted"] for r in results] == [True, False, False]
    assert [(r.get("deduplicated"), r.get("duplicate_of"), r.get("repeats")) for r in results[1:]] == [
        (True, first, 1),
        (True, first, 2),
    ]
    assert results[1]["reason"] == "identical to an alert posted within the last 600 s"
    assert len(slack.received) == 1

    assert age_dedup_records(sandbox) == 1  # ten minutes later, the same alert again
    publish(sandbox, denied)
    [later] = notified(dispatcher.drain())
    assert later["posted"] is True and later["repeats_reported"] == 2
    lines = render(slack.received[-1])
    assert lines[1].startswith("  (:repeat: The same alert came 2 times more after it was last posted (last at 20")
    assert lines[1].endswith("copies within 600 s of a post are not posted.)")
    publish(sandbox, denied)  # a copy of that post: counted from zero again
    [copy] = notified(dispatcher.drain())
    assert copy["posted"] is False and copy["repeats"] == 1
    metrics = emitted_metrics(sandbox, dispatcher)
    assert (metrics["SlackPosted"], metrics["SlackDeduplicated"]) == (2, 3)


def test_alerts_that_differ_are_all_posted(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    """Another cluster, severity or summary is another alert; an alarm's changes of state are never folded, even
    ALARM, OK, ALARM with the same reason (CloudWatch notifies once per change)."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    denied = sample_body("eksops_bootstrap_access_denied")
    publish(sandbox, denied)
    publish(sandbox, {**denied, "cluster": "prod-us", "title": denied["title"].replace("prod-eu", "prod-us")})
    publish(sandbox, {**denied, "severity": "warning"})
    publish(sandbox, alarm("ALARM", at="2026-11-25T10:15:02.846+0000"))
    publish(sandbox, alarm("OK", at="2026-11-25T10:16:02.846+0000"))
    publish(sandbox, alarm("ALARM", at="2026-11-25T10:17:02.846+0000"))
    results = notified(dispatcher.drain())
    assert [r["posted"] for r in results] == [True] * 6 and len(slack.received) == 6


def test_reports_are_never_deduplicated(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    """Two reports with the same title and summary may list different log groups: only alerts are folded."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    event = json.loads((ROOT / "events/notifier/eksops_retention_changes.json").read_text())
    event["Records"][0]["Sns"]["TopicArn"] = sandbox.refs["ReportsTopic"]  # an SNS delivery of the reports topic
    for index in range(2):
        event["Records"][0]["Sns"]["MessageId"] = f"report-{index}"
        assert dispatcher.invoke("notifier", event, "test").result["posted"] is True
    assert len(slack.received) == 2


def test_dedup_off_posts_every_copy(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    sandbox, dispatcher = make_notifier_sandbox({"SlackDedupSeconds": "0"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    for _ in range(3):
        publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    assert [r["posted"] for r in notified(dispatcher.drain())] == [True, True, True]
    items = sandbox.client("dynamodb").scan(TableName=sandbox.refs["IdempotencyTable"])["Items"]
    assert not [i for i in items if ".alert-" in i["id"]["S"]]


def test_a_failed_post_does_not_hold_back_the_next_copy(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """Slack answers 500: the invocation fails and its dedup record goes with it, so Lambda's retry posts, and a
    copy after that is the one held back."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    slack.answer(500, text="internal_error")
    publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    invocations = dispatcher.drain()
    assert [(inv.attempts, inv.result["posted"]) for inv in invocations] == [(2, True), (1, False)]
    assert slack.attempts == 2 and len(slack.received) == 1


def test_dry_run_previews_every_copy_and_keeps_no_dedup_record(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    sandbox, dispatcher = make_notifier_sandbox({"SlackDryRun": "true"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    results = notified(dispatcher.drain())
    assert [r["reason"] for r in results] == ["dry run", "dry run"] and all("payload" in r for r in results)
    items = sandbox.client("dynamodb").scan(TableName=sandbox.refs["IdempotencyTable"])["Items"]
    assert slack.attempts == 0 and not [i for i in items if ".alert-" in i["id"]["S"]]


def test_a_dry_run_deployment_still_posts_to_slack(make_notifier_sandbox: MakeSandbox, slack: SlackReceiver) -> None:
    """DryRun=true (the safe first deploy) makes the functions report what they would change; the notifier has its
    own switch (SlackDryRun), so those reports and every alert still reach Slack."""
    sandbox, dispatcher = make_notifier_sandbox({"DryRun": "true"})
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    publish(sandbox, sample_body("eksops_bootstrap_access_denied"))
    results = notified(dispatcher.drain())
    assert [r["posted"] for r in results] == [True]
    assert len(slack.received) == 1


def test_a_repeated_delivery_is_counted_as_a_duplicate_not_as_another_post(
    make_notifier_sandbox: MakeSandbox, slack: SlackReceiver
) -> None:
    """Issue 9 review: the replayed result of a repeated delivery said "posted", and was counted in SlackPosted."""
    sandbox, dispatcher = make_notifier_sandbox()
    sandbox.set_parameters(SlackWebhookSecretArn=webhook(sandbox, slack))
    event = json.loads((ROOT / "events/notifier/cloudwatch_alarm.json").read_text())
    first = dispatcher.invoke("notifier", event, "test")
    again = dispatcher.invoke("notifier", event, "test")  # SNS delivered it twice
    assert first.ok and again.ok and again.result == first.result and len(slack.received) == 1
    metrics = emitted_metrics(sandbox, dispatcher)
    assert (metrics["SlackPosted"], metrics["SlackDeduplicated"]) == (1, 1)
