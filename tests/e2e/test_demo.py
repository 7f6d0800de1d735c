"""`make demo` end to end: the demo's own checks pass and the timeline says what happened."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from eksops_dev import demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_exits_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    out = io.StringIO()
    code = demo.run(out=out, root=ROOT)
    text = out.getvalue()
    assert code == 0, text
    assert "changed /aws/containerinsights/demo/application: never expire -> 30 days" in text
    assert "changed /aws/containerinsights/demo/performance: never expire -> 7 days" in text
    assert "ok   duplicates changed nothing" in text
    assert "ok   second sweep changed nothing" in text
    assert "ok   the dead-letter queue holds the event with errorType InvalidEvent" in text
    assert "FAIL" not in text.replace("failed, as it should,", "")
    assert "0 failure(s)" in text
    assert "create alarm eksops-demo-application-errors" in text
    assert "ok   the application error alarm fired" in text
    assert "ok   metric filter eksops-application-errors on /aws/containerinsights/demo/application" in text
    assert "ok   alarm eksops-demo-application-errors notifies the alerts topic and is tagged" in text
    assert "ok   dashboard eksops-demo exists" in text
    assert "ok   saved queries eksops/demo/errors-by-namespace-and-pod, eksops/demo/recent-errors" in text
    assert "ok   the application error alarm reached Slack" in text
    assert "ok   the dead-letter alarm reached Slack" in text
    # Reports reach the notifier in batches from the reports queue, and Slack as one digest per batch.
    assert "ok   every retention change report reached Slack" in text
    assert re.search(r"ok   reports that came together reached Slack as [1-9]\d* digest\(s\)", text)
    assert re.search(r"batch: 4 record\(s\), 0 failed\n +digest of 4 report\(s\): posted to Slack", text)
    assert "cluster demo: not-active" in text and "cluster demo: bootstrapped" in text
    assert "ok   the CloudWatch agent, Fluent Bit and metrics-server are in the cluster" in text
    assert "ok   the reconcile changed nothing" in text
    # Predictive node scaling: the group grew while demand still fit, and no pod ever waited for a node.
    assert "create alarm eksops-local-scaling-demo-cpu-reserved" in text
    assert re.search(r"ok   it grew at minute \d+, while [\d.]+ cores still fit on its \d+ ready nodes", text)
    assert "ok   no pod waited for a node at any minute" in text
    assert re.search(r"ok   demo-general grew from 3 to \d+ nodes ahead of demand", text)
    assert "Node scaling: changed demo-general nodes 3 -> 4" in text  # the report, as email and Slack show it
