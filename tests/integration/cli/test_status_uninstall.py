"""`eksops status` and `eksops uninstall` through the entry point: on the sandbox (seeded and run), and with --aws
against a running sandbox (its moto server and Kubernetes emulator stand in for your account and clusters).

Uninstall must remove exactly what carries eksops' marks: a dry run changes nothing, a run leaves the sandbox empty of
eksops-owned resources (scanned again with the same marks), things of eksops' names that are not its own stay, and a
second run finds nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eksops_dev.cli import main
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.seed import seed_cluster
from eksops_dev.status import sandbox_as_target
from eksops_dev.uninstall import populate, scan

CLUSTER = "demo"


@pytest.fixture(autouse=True)
def own_sandbox_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The sandbox's kubeconfig and logs in this test's own folder: other tests run sandboxes at the same time."""
    monkeypatch.setenv("EKSOPS_SANDBOX_DIR", str(tmp_path / "sandbox"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- status ---------------------------------------------------------------------------------------------------


def test_status_of_the_seeded_sandbox_shows_the_drift(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--format", "json")
    assert code == 0, err[-2000:]
    report = json.loads(out)  # stdout holds the JSON alone
    assert report["where"] == "sandbox"
    caps = report["capabilities"]
    assert list(caps) == [
        "log_retention",
        "error_alarms",
        "cluster_bootstrap",
        "node_scaler",
        "image_updater",
        "compliance_sweep",
        "notifier",
    ]
    # the four Container Insights groups seed_cluster makes never expire; the rules want 7 to 30 days
    drifted = {d["log_group"]: d["target"] for d in caps["log_retention"]["drifted"]}
    assert drifted == {
        f"/aws/containerinsights/{CLUSTER}/application": 30,
        f"/aws/containerinsights/{CLUSTER}/host": 14,
        f"/aws/containerinsights/{CLUSTER}/dataplane": 14,
        f"/aws/containerinsights/{CLUSTER}/performance": 7,
    }
    assert caps["error_alarms"]["missing"] == [
        {"cluster": CLUSTER, "missing": ["alarm", "dashboard", "metric-filter", "query"]}
    ]
    assert caps["cluster_bootstrap"]["not_bootstrapped"] == [CLUSTER] and caps["cluster_bootstrap"]["managed"] == 0
    assert caps["image_updater"]["summary"].startswith("not deployed")  # no ImageConfigRepoUrl by default
    assert "sandbox: seeded" in err


def test_status_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status")
    assert code == 0, err[-2000:]
    lines = out.splitlines()
    assert lines[0] == "eksops status: sandbox, region us-east-1"
    assert lines[1].split() == ["CAPABILITY", "MANAGED", "DRIFT", "DETAILS"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[2:]}
    assert rows["log_retention"] == ["4", "4"] and rows["cluster_bootstrap"] == ["0", "1"]


# -- uninstall on the sandbox ----------------------------------------------------------------------------------


def test_uninstall_on_the_sandbox_removes_everything_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "uninstall")
    assert code == 0, err[-3000:]
    result = json.loads(out)
    kinds = {(r["capability"], r["kind"]) for r in result["removed"]}
    assert kinds == {
        ("cluster_bootstrap", "pod-security-labels"),
        ("cluster_bootstrap", "kubernetes"),
        ("cluster_bootstrap", "cluster-tag"),
        ("cluster_bootstrap", "iam-attachment"),  # the stack's FargateLoggingPolicy on a pod execution role
        ("error_alarms", "metric-filter"),
        ("error_alarms", "alarm"),
        ("error_alarms", "dashboard"),
        ("error_alarms", "query"),
        ("node_scaler", "alarm"),
    }
    assert result["remaining"] == [] and result["errors"] == []
    left = {(item["capability"], item["kind"]) for item in result["left_in_place"]}
    assert ("cluster_bootstrap", "iam-attachment") in left and ("log_retention", "retention-policy") in left
    assert "ran cluster_bootstrap on its schedule: ok" in err
    assert "sam delete" not in err  # the sandbox has no stack to delete


# -- uninstall --aws (against a running sandbox) -----------------------------------------------------------------


@pytest.fixture
def installed(make_sandbox: Callable[..., tuple[Sandbox, Dispatcher]], monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A sandbox where eksops ran (bootstrap, error alarms, node scaler on a seeded cluster), with things of eksops'
    names that are not its own next to them; --aws reaches the cluster through the sandbox's kubeconfig."""
    sandbox, _ = make_sandbox({"ImageConfigRepoUrl": ""})
    seed_cluster(sandbox, CLUSTER)
    assert all(line.startswith(("ran", "function logs")) and "failed" not in line for line in populate(sandbox))
    monkeypatch.setenv("EKSOPS_KUBECONFIG", str(sandbox.kubeconfig_path))
    _as_headroom_scaler_would(sandbox)
    cloudwatch, logs = sandbox.client("cloudwatch"), sandbox.client("logs")
    # an alarm of error_alarms' naming on another metric, untagged; a dashboard without the marker; a query a
    # person saved under eksops/<cluster>/
    cloudwatch.put_metric_alarm(
        AlarmName="eksops-other-application-errors",
        MetricName="Errors",
        Namespace="MyApp",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.put_dashboard(DashboardName="eksops-mine", DashboardBody=json.dumps({"widgets": []}))
    logs.put_query_definition(name=f"eksops/{CLUSTER}/my-query", queryString="fields @message")
    # the owner of namespace web chose its own Pod Security level after eksops labelled it
    kube = _kube(sandbox)
    kube.patch_namespace(
        "web",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
    )
    return sandbox


def _as_headroom_scaler_would(sandbox: Sandbox) -> None:
    """What node_scaler writes with the headroom actuator, and its bookkeeping tag on the group (the sandbox's
    populate runs the asg actuator on a group with no demand, which writes neither)."""
    from kubernetes import config as k8s_config

    from eksops.scaling.config import ScalerConfig
    from eksops.scaling.groups import LAST_SCALE_OUT_TAG, discover
    from eksops.scaling.headroom import HeadroomActuator

    autoscaling = sandbox.client("autoscaling")
    (group,) = discover(autoscaling, ScalerConfig())
    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=CLUSTER)  # type: ignore[no-untyped-call]
    HeadroomActuator().apply(api, group, replicas=1, pod_millicores=500)
    tag = {"ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": LAST_SCALE_OUT_TAG}
    autoscaling.create_or_update_tags(Tags=[{**tag, "Value": "2026-11-25T10:00:00Z", "PropagateAtLaunch": False}])


def _kube(sandbox: Sandbox) -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=CLUSTER)  # type: ignore[no-untyped-call]
    return k8s.CoreV1Api(api)


def _owned(sandbox: Sandbox) -> list[dict[str, str]]:
    """Everything of eksops' own left on the sandbox, scanned with uninstall's marks (read-only)."""
    return [f.as_dict() for f in scan(sandbox_as_target(sandbox), dry_run=True).found]


def test_uninstall_aws_dry_run_then_run_then_again(capsys: pytest.CaptureFixture[str], installed: Sandbox) -> None:
    before = _owned(installed)
    assert len(before) > 25

    code, out, err = run(capsys, "uninstall", "--aws", "--dry-run")
    assert code == 0, err[-3000:]
    listed = json.loads(out)
    assert listed["where"] == "account 123456789012" and listed["dry_run"] is True
    assert listed["would_remove"] == before
    assert _owned(installed) == before  # the dry run changed nothing
    assert "sam delete" not in err

    names = {(f["kind"], f["name"]) for f in before}
    assert ("kubernetes", "PriorityClass/eksops-headroom") in names and (
        "kubernetes",
        "Namespace/eksops-headroom",
    ) in names
    assert any(kind == "kubernetes" and name.startswith("Deployment/eksops-headroom/headroom-") for kind, name in names)
    assert ("asg-tags", f"{CLUSTER}-general: eksops:scaling-last-scale-out") in names

    code, out, err = run(capsys, "uninstall", "--aws", "--yes")
    assert code == 0, err[-3000:]
    assert json.loads(out)["removed"] == before
    assert "sam delete" in err and err.count("\n") == 1  # one note: what to run next
    assert _owned(installed) == []  # nothing of eksops' own is left
    # read directly, not with uninstall's own marks: the stack's policy is on no role, so `sam delete` can delete it
    iam = installed.client("iam")
    policy = next(p for p in iam.list_policies(Scope="Local")["Policies"] if "FargateLoggingPolicy" in p["PolicyName"])
    assert iam.list_entities_for_policy(PolicyArn=policy["Arn"])["PolicyRoles"] == []
    assert ("iam-attachment", f"{policy['PolicyName']} on role {CLUSTER}-fargate-pods") in names

    # what was not eksops' own is still there
    cloudwatch, logs = installed.client("cloudwatch"), installed.client("logs")
    assert cloudwatch.describe_alarms(AlarmNames=["eksops-other-application-errors"])["MetricAlarms"]
    assert [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]] == ["eksops-mine"]
    queries = logs.describe_query_definitions(queryDefinitionNamePrefix="eksops/")["queryDefinitions"]
    assert [q["name"] for q in queries] == [f"eksops/{CLUSTER}/my-query"]
    kube = _kube(installed)
    web = kube.read_namespace("web").metadata
    assert web.labels["pod-security.kubernetes.io/enforce"] == "privileged"
    payments = kube.read_namespace("payments").metadata
    assert not any(k.startswith("pod-security.kubernetes.io/") for k in payments.labels or {})
    assert "eksops/pod-security" not in (payments.annotations or {})
    assert [n.metadata.name for n in kube.list_namespace().items if n.metadata.name == "amazon-cloudwatch"] == []
    assert "eksops:bootstrap" not in installed.client("eks").describe_cluster(name=CLUSTER)["cluster"].get("tags", {})
    (asg,) = installed.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert {t["Key"] for t in asg["Tags"] if t["Key"].startswith("eksops:")} == {
        "eksops:scaling",
        "eksops:scaling-autoscaler",
    }
    # seeded workloads are untouched
    assert _kube_deployments(installed) >= {"payments/payments-api", "web/storefront"}

    code, out, err = run(capsys, "uninstall", "--aws", "--yes")
    assert code == 0, err[-3000:]
    again = json.loads(out)
    assert again["removed"] == [] and again["errors"] == []
    assert {(i["kind"], i["name"]) for i in again["left_in_place"]} >= {
        ("pod-security-labels", f"{CLUSTER}: namespace/web"),
        ("iam-attachment", f"{CLUSTER}: CloudWatchAgentServerPolicy on role {CLUSTER}-nodes"),
        ("asg-tag", f"{CLUSTER}-general: eksops:scaling=enabled"),
    }


def _kube_deployments(sandbox: Sandbox) -> set[str]:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=CLUSTER)  # type: ignore[no-untyped-call]
    apps: Any = k8s.AppsV1Api(api)
    return {f"{d.metadata.namespace}/{d.metadata.name}" for d in apps.list_deployment_for_all_namespaces().items}


def test_status_aws_after_eksops_ran(capsys: pytest.CaptureFixture[str], installed: Sandbox) -> None:
    code, out, err = run(capsys, "status", "--aws", "--format", "json")
    assert code == 0, err[-2000:]
    caps = json.loads(out)["capabilities"]
    assert caps["cluster_bootstrap"]["current"] == [CLUSTER] and caps["cluster_bootstrap"]["drift"] == 0
    assert caps["error_alarms"]["missing"] == [] and caps["error_alarms"]["managed"] == 5
    assert caps["node_scaler"]["enrolled_groups"] == [f"{CLUSTER}-general"] and caps["node_scaler"]["drift"] == 0


def test_status_aws_judges_against_the_deployed_stack(capsys: pytest.CaptureFixture[str], installed: Sandbox) -> None:
    """The stack's own parameter values and resources (from CloudFormation), not the template's defaults."""
    stack = {  # the stack's parameter that differs from the default, and its state table (moto's CloudFormation)
        "Parameters": {"BootstrapClusters": {"Type": "String"}, "ComplianceClusters": {"Type": "String"}},
        "Resources": {
            "ComplianceStateTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "prod-compliance",
                    "KeySchema": [
                        {"AttributeName": "cluster", "KeyType": "HASH"},
                        {"AttributeName": "finding", "KeyType": "RANGE"},
                    ],
                    "AttributeDefinitions": [
                        {"AttributeName": "cluster", "AttributeType": "S"},
                        {"AttributeName": "finding", "AttributeType": "S"},
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            }
        },
    }
    cloudformation = installed.client("cloudformation")
    cloudformation.create_stack(
        StackName="eksops-prod",
        TemplateBody=json.dumps(stack),
        Parameters=[
            {"ParameterKey": "BootstrapClusters", "ParameterValue": '["elsewhere"]'},
            {"ParameterKey": "ComplianceClusters", "ParameterValue": '["elsewhere"]'},
        ],
    )
    code, out, err = run(capsys, "status", "--aws", "--format", "json")  # no stack named eksops: the defaults
    assert code == 0, err[-2000:]
    assert "no stack eksops read in us-east-1" in err
    caps = json.loads(out)["capabilities"]
    assert caps["cluster_bootstrap"]["current"] == [CLUSTER]
    assert caps["compliance_sweep"]["summary"].startswith("no COMPLIANCE_TABLE")

    code, out, err = run(capsys, "status", "--aws", "--format", "json", "--stack-name", "eksops-prod")
    assert code == 0, err[-2000:]
    assert "stack eksops-prod: 2 parameter value(s) and 1 resource(s) from CloudFormation" in err
    caps = json.loads(out)["capabilities"]
    assert (
        caps["cluster_bootstrap"]["current"] == []
        and "1 outside BOOTSTRAP_CLUSTERS" in caps["cluster_bootstrap"]["summary"]
    )
    compliance = caps["compliance_sweep"]
    assert compliance["managed"] == 0 and compliance["summary"].endswith("; 1 outside COMPLIANCE_CLUSTERS"), compliance


def test_uninstall_aws_asks_first(
    capsys: pytest.CaptureFixture[str], installed: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    before = _owned(installed)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run(capsys, "uninstall", "--aws")
    assert code == 1 and out == ""
    assert f"Remove these {len(before)} item(s) from account 123456789012, us-east-1? [y/N]" in err
    assert "nothing removed" in err
    assert _owned(installed) == before


# -- mistakes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["uninstall", "--aws"], "add --yes to confirm, or --dry-run to list them"),
        (["status", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["uninstall", "--force"], "unrecognized arguments: --force"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, out, err = run(capsys, *argv)  # stdin under pytest is not a terminal: --aws without --yes refuses
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("eksops: error:") and fragment in err, err
