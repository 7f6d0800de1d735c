"""The notifier's X-Ray traces never carry a Slack webhook URL (a secret: whoever has it posts to the channel).

X-Ray's http.client patch records each request's URL, query string aside, and patching is for the whole process:
each case runs in its own interpreter, as Lambda would, with tracing on (LAMBDA_TASK_ROOT set, as deployed with
``Tracing: Active``) and a capturing emitter instead of the X-Ray daemon.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SECRET_PATH = "T000/B000/XXXXSECRETXXXX"  # the SlackReceiver's webhook path

PROBE = """
import importlib.util, json, sys
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

class Capture(UDPEmitter):
    sent = []
    def send_entity(self, entity):
        self.sent.append(entity.serialize())

from eksops_dev.slack import SlackReceiver
if sys.argv[1] == "notifier":  # the notifier as deployed: its Tracer patches what it patches
    spec = importlib.util.spec_from_file_location("app", sys.argv[2])
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
else:  # the control: http.client patched, as the other functions have it
    from aws_xray_sdk.core import patch
    patch(("httplib",))
from eksops.notify.webhook import SlackWebhook
from aws_xray_sdk.core.context import Context
# a plain context, so the probe may open its own segment (Lambda's context only takes subsegments of its own)
xray_recorder.configure(emitter=Capture(), sampling=False, context=Context(), context_missing="LOG_ERROR")
from aws_xray_sdk.core.patcher import _PATCHED_MODULES
with SlackReceiver() as slack:
    xray_recorder.begin_segment("notifier")
    xray_recorder.begin_subsegment("## handler")
    SlackWebhook().post(slack.url, {"text": "hi"}, lambda: 30_000, label="eksops/slack/team")
    xray_recorder.end_subsegment()
    xray_recorder.end_segment()
    posted = len(slack.received)
print(json.dumps({"patched": sorted(_PATCHED_MODULES), "posted": posted, "trace": "\\n".join(Capture.sent)}))
"""


def probe(case: str) -> dict[str, object]:
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "notifier"),
        "AWS_LAMBDA_FUNCTION_NAME": "eksops-notifier",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "POWERTOOLS_SERVICE_NAME": "notifier",
        "IDEMPOTENCY_TABLE": "eksops-idempotency",
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    app = str(ROOT / "functions" / "notifier" / "app.py")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, case, app], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_the_notifier_traces_its_aws_calls_but_not_its_slack_posts() -> None:
    traced = probe("notifier")
    assert traced["posted"] == 1 and traced["patched"] == ["botocore"]
    assert "## handler" in str(traced["trace"]) and SECRET_PATH not in str(traced["trace"])


def test_the_probe_sees_a_webhook_url_when_http_client_is_traced() -> None:
    """The control: with http.client patched, as the other functions have it, the URL is in the trace."""
    control = probe("control")
    assert control["posted"] == 1 and SECRET_PATH in str(control["trace"])
