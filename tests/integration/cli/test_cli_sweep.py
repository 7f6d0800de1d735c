"""`eksops sweep` through its entry point on the sandbox: the report on stdout (table, JSON, SARIF), logs on stderr,
read-only unless --remediate names a rule, and one-line errors (exit 2) for the user's mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.cli import main


@pytest.fixture(autouse=True)
def own_sandbox_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The sandbox's kubeconfig and logs in this test's own folder: the demo test may run at the same time."""
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))


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

    # a default deny goes only where bootstrap would put it (BOOTSTRAP_DENY_NAMESPACES): payments, not web
    argv = ["--format", "json", "--remediate", "namespace-default-deny", "--param", 'BootstrapDenyNamespaces=["pay*"]']
    code, out, err = run(capsys, *argv)
    assert code == 0, err[-2000:]
    (report,) = json.loads(out)
    deny = {f["resource"]: f for f in report["findings"] if f["rule"] == "namespace-default-deny"}
    assert deny["namespace/payments"]["status"] == "remediated"
    assert deny["namespace/web"]["status"] == "open"
    assert "not in BOOTSTRAP_DENY_NAMESPACES" in deny["namespace/web"]["remediation"]
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


def test_a_sweep_that_fails_in_part_still_prints_its_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that fails makes the invocation fail (failure path), after the report: the CLI shows it, exit 1."""
    from eksops.compliance.model import rules

    def broken(self: Any, ctx: Any) -> Any:
        raise RuntimeError("a rule broke")

    monkeypatch.setattr(type(rules()["pod-privileged"]), "check", broken)
    code, out, err = run(capsys, "--format", "json")
    assert code == 1
    (report,) = json.loads(out)
    assert any(e["rule"] == "pod-privileged" for e in report["errors"])
    assert any(f["rule"] == "cluster-endpoint-public" for f in report["findings"])  # the other rules' findings
    assert "eksops: sweep failed: PartialFailure" in err


def test_aws_sweeps_every_cluster_even_when_one_fails_in_part(
    aws: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With --aws the fan-out runs here, part after part: one cluster's failing rule must not stop the others, and
    every cluster's report is printed (the moto server stands in for your account)."""
    from eksops.aws import client
    from eksops.compliance.model import rules

    role = client("iam").create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    for name in ("alpha", "beta", "gamma"):
        client("eks").create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    empty = tmp_path / "kubeconfig"  # no contexts: the Kubernetes rules report the clusters unreachable
    empty.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}))
    monkeypatch.setenv("EKSOPS_KUBECONFIG", str(empty))
    endpoint = rules()["cluster-endpoint-public"]
    check = type(endpoint).check

    def broken_on_beta(self: Any, ctx: Any) -> Any:
        if ctx.name == "beta":
            raise RuntimeError("a rule broke on beta")
        return check(self, ctx)

    monkeypatch.setattr(type(endpoint), "check", broken_on_beta)
    code, out, err = run(capsys, "--aws", "--format", "json")
    assert code == 1, err[-2000:]
    reports = {r["cluster"]: r for r in json.loads(out)}
    assert set(reports) == {"alpha", "beta", "gamma"}
    assert [e["rule"] for e in reports["beta"]["errors"]] == ["cluster-endpoint-public"]
    assert reports["alpha"]["errors"] == [] and reports["gamma"]["errors"] == []
    assert "eksops: sweep failed: PartialFailure" in err
