"""`eksops sweep` through its entry point on the sandbox: the report on stdout (table, JSON, SARIF), logs on stderr,
read-only unless --remediate names a rule, and one-line errors (exit 2) for the user's mistakes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eksops_dev.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report_is_read_only_unless_remediation_is_asked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "json")
    assert code == 0, err[-2000:]
    (report,) = json.loads(out)  # stdout holds the report alone
    assert report["cluster"] == "demo" and report["status"] == "swept"
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for finding in report["findings"]:
        by_rule.setdefault(finding["rule"], []).append(finding)
    # what the seeded cluster carries (eksops_dev.seed)
    seeded = {"cluster-endpoint-public", "node-role-cloudwatch-policy", "namespace-default-deny", "pod-privileged"}
    assert seeded <= set(by_rule)
    assert all(f["status"] == "open" for f in report["findings"])  # nothing fixed without --remediate
    assert "sandbox: seeded" in err

    code, out, err = run(capsys, "--format", "json", "--remediate", "namespace-default-deny")
    assert code == 0, err[-2000:]
    (report,) = json.loads(out)
    deny = [f for f in report["findings"] if f["rule"] == "namespace-default-deny"]
    assert deny and all(f["status"] == "remediated" for f in deny)
    assert {f["status"] for f in report["findings"] if f["rule"] != "namespace-default-deny"} <= {"open"}


def test_sarif_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "sarif", "--cluster", "demo")
    assert code == 0, err[-2000:]
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "pod-privileged" and r["level"] == "error" for r in results)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--cluster", "prod"], "the sandbox has one cluster, 'demo'"),
        (["--remediate", "no-such-rule"], "unknown rule id(s) no-such-rule"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--param", "NoSuchParam=1"], "no such parameter"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("eksops: error:") and fragment in err, err
    assert "Traceback" not in err
