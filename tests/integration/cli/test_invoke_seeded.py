"""`eksops invoke` on a seeded sandbox: every sample in events/<function>/ does something visible (the state it
names is seeded first, and what reaches Slack is shown), `--no-seed` starts empty, and what the user sets wins over
the seed.

The samples docs/getting-started.md invokes are run by tests/e2e/test_getting_started.py; the others run here.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.cli import main
from eksops_dev.template import Template

ROOT = Path(__file__).resolve().parents[3]
WALKED = set(re.findall(r"--event (events/\S+\.json)", (ROOT / "docs" / "getting-started.md").read_text()))
# Samples whose visible effect is the function saying why it does nothing (the template's rules deliver them).
SWEEP = "events/log_retention/scheduled_sweep.json"
SAYS_WHY = {"events/node_scaler/reserved_cpu_ok.json": "went to OK: nothing to scale"}
SAMPLES = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "events").glob("*/*.json")
)  # not unmatched/ (the rules never deliver those) nor compliance_sweep/direct/ (`eksops sweep`'s own events)


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Template) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))
    for fn in template.functions.values():  # none of the functions' variables from the environment
        for variable in fn.environment:
            monkeypatch.delenv(variable, raising=False)


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["invoke", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out), err  # stdout holds the JSON result alone


def acted(result: dict[str, Any]) -> bool:
    """Whether a function's summary records an action: a change, a commit, a fan-out, findings, a bootstrap."""
    clusters = result.get("clusters")
    bootstrapped = isinstance(clusters, dict) and any(c["aws"] or c["changed_objects"] for c in clusters.values())
    found = bool((result.get("counts") or {}).get("findings"))  # a compliance sweep's report
    return bool(result.get("changed") or result.get("dispatched") or found or bootstrapped)


def slack_messages(err: str) -> int:
    posted = re.search(r"^eksops invoke: Slack: (\d+) message\(s\) posted", err, flags=re.MULTILINE)
    return int(posted.group(1)) if posted else 0


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s not in WALKED])
def test_every_sample_does_something_visible(sample: str, capsys: pytest.CaptureFixture[str]) -> None:
    function = sample.split("/")[1]
    code, out, err = invoke(capsys, function, "--event", sample)
    assert code == 0, err[-3000:]
    assert out["ok"] is True and "failed_follow_ups" not in out
    result = out["result"]
    if sample in SAYS_WHY:
        assert SAYS_WHY[sample] in result["ignored"]
        assert f"eksops invoke: {function}:\n    ignored: " in err
        return
    assert slack_messages(err) >= 1, "nothing reached the local Slack webhook"
    if function == "notifier":  # its effect is the Slack message
        return
    assert acted(result), f"{sample} changed nothing: {json.dumps(result)[:1500]}"
    # what the function acted on was seeded: by the names the event gives, or the sandbox cluster's for a sweep
    seeded = re.findall(r"^eksops invoke: sandbox: seeded (?!Slack|in )(.*)$", err, flags=re.MULTILINE)
    assert seeded, err[-2000:]
    event = json.loads((ROOT / sample).read_text())
    if event.get("detail-type") not in ("Scheduled Event", "eksops sweep continuation"):
        assert any(name in line for line in seeded for name in ("prod-eu", "payments-api")), seeded


def test_no_seed_starts_empty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(
        capsys, "log_retention", "--event", "events/log_retention/create_log_group.json", "--no-seed"
    )
    assert code == 0, err[-2000:]
    assert out["result"]["gone"] == ["/aws/containerinsights/prod-eu/application"] and out["result"]["changed"] == []
    assert "seeded" not in err and "Slack:" not in err


def test_no_seed_is_for_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["invoke", "log_retention", "--event", "events/log_retention/scheduled_sweep.json", "--aws", "--no-seed"]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == "eksops: error: --no-seed is for the sandbox; --aws runs on your account as it is\n"


def test_params_and_the_environment_win_over_the_seed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRY_RUN", "true")  # over the sandbox's DryRun=false
    code, out, err = invoke(
        capsys, "image_updater", "--event", "events/image_updater/ecr_image_push.json", "--param", "ImageMap=[]"
    )
    assert code == 0, err[-2000:]
    result = out["result"]
    assert result["dry_run"] is True
    assert result["ignored"] == "no IMAGE_MAP entry for repository payments-api"  # --param ImageMap, not the seed's
    assert "seeded ECR image payments-api:1.43.0" in err  # the rest of the seed is there


def test_an_event_the_seed_cannot_replay_is_said_and_the_function_still_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    event = json.loads((ROOT / "events/cluster_bootstrap/create_nodegroup.json").read_text())
    event["detail"]["requestParameters"]["scalingConfig"] = {"minSize": "two"}  # EKS's model wants a number
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event)))
    code, out, err = invoke(capsys, "cluster_bootstrap", "--event", "-")
    assert code == 0, err[-2000:]
    assert "eksops invoke: sandbox: seeding stopped (ParamValidationError: " in err
    assert out["result"]["clusters"]["prod-eu"]["status"] == "bootstrapped"  # the cluster was seeded before
