"""Pure helpers of the bootstrap service: error text for reports, which Fargate profiles take metrics-server."""

from __future__ import annotations

from typing import Any

import pytest

from eksops.bootstrap.config import BootstrapConfig
from eksops.bootstrap.service import MAX_ERROR_MESSAGE, _selects_metrics_server, safe_message


def test_safe_message_redacts_tokens_and_signatures() -> None:
    token = "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5"
    text = safe_message(
        RuntimeError(
            f"HTTP headers: {{'Authorization': 'Bearer {token}'}} token={token} "
            "url=https://sts.amazonaws.com/?X-Amz-Credential=AKIAEXAMPLE%2F20240501&X-Amz-Signature=abcdef0123&x=1"
        )
    )
    assert "k8s-aws-v1." not in text and "aHR0cHM6" not in text
    assert "AKIAEXAMPLE" not in text and "abcdef0123" not in text
    assert "[redacted]" in text and "x=1" in text


def test_safe_message_is_bounded_and_never_empty() -> None:
    assert len(safe_message(ValueError("x" * 5000))) == MAX_ERROR_MESSAGE
    assert safe_message(ValueError()) == "ValueError"


@pytest.mark.parametrize(
    ("selectors", "selected"),
    [
        ([{"namespace": "default"}], False),
        ([{"namespace": "kube-system"}], True),
        ([{"namespace": "kube-*"}], True),  # EKS allows * and ? in selector namespaces
        ([{"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}], False),  # CoreDNS only
        ([{"namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}}], True),
        ([{"namespace": "default"}, {"namespace": "*"}], True),
    ],
)
def test_metrics_server_runs_on_fargate_when_a_profile_selects_its_pods(
    selectors: list[dict[str, Any]], selected: bool
) -> None:
    assert _selects_metrics_server([{"selectors": selectors}]) is selected
    assert _selects_metrics_server([]) is False


def test_pod_security_exclusions_default_and_configurable() -> None:
    cfg = BootstrapConfig.from_env({})
    for system in ("kube-system", "amazon-guardduty", "aws-observability", "calico-system", "tigera-operator"):
        assert not cfg.labels_pod_security(system), system
    assert cfg.labels_pod_security("shop") and cfg.labels_pod_security("cert-manager")
    custom = BootstrapConfig.from_env({"BOOTSTRAP_PSA_EXCLUDE": '["shop-*"]', "BOOTSTRAP_PSA_NAMESPACES": '["*"]'})
    assert custom.labels_pod_security("amazon-guardduty") and not custom.labels_pod_security("shop-dev")


@pytest.mark.parametrize(("spare_ms", "touched"), [(-1, []), (0, ["c1", "c2"])])
def test_the_sweep_starts_a_cluster_only_when_its_whole_budget_fits(spare_ms: int, touched: list[str]) -> None:
    """A cluster may take CLUSTER_BUDGET_SECONDS plus a request in flight: started later than that before the
    checkpoint margin, it would run the invocation into its timeout and lose the report."""
    import boto3
    from botocore.stub import Stubber

    from eksops.bootstrap import BootstrapService
    from eksops.bootstrap.service import CLUSTER_START_MS, Summary
    from eksops.config import CommonConfig
    from eksops.notify import Publisher
    from eksops.sweeps import Deadline

    eks = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client("eks")
    deadline = Deadline(lambda: 30_000 + CLUSTER_START_MS + spare_ms, margin_ms=30_000)
    with Stubber(eks) as stub:
        stub.add_response("list_clusters", {"clusters": ["c1", "c2"]})
        for name in touched:  # CREATING: skipped without any Kubernetes work
            stub.add_response(
                "describe_cluster",
                {"cluster": {"name": name, "status": "CREATING"}},
                expected_params={"name": name},
            )
        service = BootstrapService(
            BootstrapConfig.from_env({}),
            CommonConfig.from_env({}),
            eks=eks,
            iam=None,
            sts=None,
            publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
            api_client=lambda name: None,
        )
        summary = Summary(dry_run=False)
        service.sweep(summary, deadline)
        stub.assert_no_pending_responses()
    assert summary.deferred == ([] if touched else ["c1", "c2"])
