"""Cluster rules against moto and the Kubernetes emulator over HTTP; where moto lacks the API (DescribeClusterVersions,
access entries), the production path against botocore's Stubber, which validates every call and answer."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from eksops.aws import client
from eksops.compliance.context import ClusterContext
from eksops.compliance.model import Severity, Violation, rules
from eksops.compliance.rules import cluster as cluster_rules
from eksops.kube import auth
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.conftest import kubeconfig_file as kubeconfig

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def check(rule_id: str, ctx: ClusterContext) -> list[Violation]:
    return list(rules()[rule_id].check(ctx))


def stubbed_eks() -> tuple[Any, Stubber]:
    eks = botocore.session.get_session().create_client(
        "eks", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return eks, Stubber(eks)


def with_eks(ctx: ClusterContext, eks: Any) -> ClusterContext:
    """``ctx`` reading EKS through ``eks`` (a stubbed client) and every other service from moto."""
    ctx.tools.aws = lambda service: eks if service == "eks" else client(service)
    return ctx


def described(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "cluster": {
            "name": name,
            "arn": f"arn:aws:eks:us-east-1:123456789012:cluster/{name}",
            "version": "1.31",
            "status": "ACTIVE",
            **fields,
        }
    }


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fix the date the version rule compares with."""

    def set_today(day: date) -> None:
        monkeypatch.setattr(cluster_rules, "today", lambda: day)

    return set_today


# -- cluster-kubernetes-unreachable ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Denying(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def denying() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Denying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cluster_kubernetes_unreachable_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    cluster.namespace("shop")
    assert cluster.violations("cluster-kubernetes-unreachable") == []


def test_cluster_kubernetes_unreachable_non_compliant(
    cluster: ClusterUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "HTTP_RETRIES", 0)  # refused at once; no retries with back-off
    cluster.create_cluster(resourcesVpcConfig={"subnetIds": ["subnet-1"], "publicAccessCidrs": ["203.0.113.0/24"]})
    cluster.kubeconfig = kubeconfig(tmp_path / "closed.json", cluster.name, f"http://127.0.0.1:{closed_port()}")
    [found] = cluster.violations("cluster-kubernetes-unreachable")
    assert found.resource == f"cluster/{cluster.name}"
    assert "cannot reach the Kubernetes API" in found.evidence
    assert "public access is limited to 203.0.113.0/24" in found.evidence


def test_a_kubeconfig_without_the_clusters_context_is_unreachable_not_an_error(
    cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    """Outside Lambda (a workstation's kubeconfig, the sandbox) a cluster may have no context: that is a finding
    saying so, and the service then skips the Kubernetes rules, instead of each of them failing."""
    cluster.create_cluster()
    cluster.kubeconfig = kubeconfig(tmp_path / "other.json", "some-other-cluster", "http://127.0.0.1:1")
    [found] = cluster.violations("cluster-kubernetes-unreachable")
    assert "no context named" in found.evidence, found.evidence


def test_a_denying_cluster_says_which_access_entry_to_create(
    cluster: ClusterUnderTest, tmp_path: Path, denying: str
) -> None:
    cluster.create_cluster()
    cluster.kubeconfig = kubeconfig(tmp_path / "denying.json", cluster.name, denying)
    [found] = cluster.violations("cluster-kubernetes-unreachable")
    principal = client("sts").get_caller_identity()["Arn"]
    assert "HTTP 401" in found.evidence and f"--principal-arn {principal}" in found.evidence


# -- cluster-endpoint-public ----------------------------------------------------------------------------------


def test_cluster_endpoint_public_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(
        resourcesVpcConfig={
            "subnetIds": ["subnet-1"],
            "endpointPublicAccess": True,
            "publicAccessCidrs": ["198.51.100.7/32"],
        }
    )
    assert cluster.violations("cluster-endpoint-public") == []


def test_a_private_endpoint_is_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(
        resourcesVpcConfig={"subnetIds": ["subnet-1"], "endpointPublicAccess": False, "endpointPrivateAccess": True}
    )
    assert cluster.violations("cluster-endpoint-public") == []


def test_cluster_endpoint_public_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()  # no endpoint settings: EKS's defaults, public and open
    [found] = cluster.violations("cluster-endpoint-public")
    assert found.evidence == "public endpoint open to 0.0.0.0/0; private endpoint access off"
    assert not rules()["cluster-endpoint-public"].remediable  # endpoint changes are findings only


# -- cluster-control-plane-logs -------------------------------------------------------------------------------


def test_cluster_control_plane_logs_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(
        logging={
            "clusterLogging": [
                {"types": ["api", "audit", "authenticator"], "enabled": True},
                {"types": ["controllerManager", "scheduler"], "enabled": False},
            ]
        }
    )
    assert cluster.violations("cluster-control-plane-logs") == []


def test_cluster_control_plane_logs_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(logging={"clusterLogging": [{"types": ["api", "scheduler"], "enabled": True}]})
    [found] = cluster.violations("cluster-control-plane-logs")
    assert found.evidence == "control-plane log types off: audit, authenticator (enabled: api, scheduler)"


# -- cluster-secrets-encryption -------------------------------------------------------------------------------


def test_cluster_secrets_encryption_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(encryptionConfig=[{"resources": ["secrets"], "provider": {"keyArn": KEY}}])
    assert cluster.violations("cluster-secrets-encryption") == []


def test_cluster_secrets_encryption_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(version="1.31")
    [found] = cluster.violations("cluster-secrets-encryption")
    assert found.severity is Severity.MEDIUM  # EKS's default envelope encryption applies from 1.28
    assert "AWS owned key only" in found.evidence


def test_before_1_28_unencrypted_secrets_stay_high(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster(version="1.27")
    [found] = cluster.violations("cluster-secrets-encryption")
    assert found.severity is None  # the rule's own: high
    assert rules()["cluster-secrets-encryption"].severity is Severity.HIGH


# -- cluster-version-support ----------------------------------------------------------------------------------


def test_cluster_version_support_compliant(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 6, 1))
    cluster.create_cluster(version="1.34")  # moto has no DescribeClusterVersions: the calendar decides
    assert cluster.violations("cluster-version-support") == []


def test_cluster_version_support_non_compliant(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 6, 1))
    cluster.create_cluster(version="1.31")
    [found] = cluster.violations("cluster-version-support")
    assert found.severity is Severity.HIGH
    assert found.evidence == (
        "Kubernetes 1.31 is in extended support until 2026-11-26, at extended-support prices "
        "(eksops' EKS calendar of 2026-11)"
    )


def test_near_the_end_of_standard_support_is_medium(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 11, 1))
    cluster.create_cluster(version="1.34")
    [found] = cluster.violations("cluster-version-support")
    assert found.severity is None  # the rule's medium
    assert "standard support ends 2026-12-02, in 31 days" in found.evidence


def test_versions_past_extended_support_and_newer_than_the_calendar(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 6, 1))
    cluster.create_cluster(version="1.27")
    [found] = cluster.violations("cluster-version-support")
    assert found.severity is Severity.HIGH and "ended extended support" in found.evidence


def test_describe_cluster_versions_decides_where_eks_answers(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 6, 1))
    eks, stub = stubbed_eks()
    stub.add_response("describe_cluster", described(cluster.name, version="1.33"), {"name": cluster.name})
    stub.add_response(
        "describe_cluster_versions",
        {
            "clusterVersions": [
                {
                    "clusterVersion": "1.33",
                    "versionStatus": "EXTENDED_SUPPORT",
                    "endOfStandardSupportDate": datetime(2026, 5, 1, tzinfo=UTC),
                    "endOfExtendedSupportDate": datetime(2027, 5, 1, tzinfo=UTC),
                }
            ]
        },
        {"clusterVersions": ["1.33"], "includeAll": True},
    )
    with stub:
        [found] = check("cluster-version-support", with_eks(cluster.context(), eks))
    stub.assert_no_pending_responses()
    assert found.severity is Severity.HIGH
    assert found.evidence.endswith("until 2027-05-01, at extended-support prices (DescribeClusterVersions)")


def test_standard_support_far_from_its_end_is_compliant_by_the_api(cluster: ClusterUnderTest, on: Any) -> None:
    on(date(2026, 6, 1))
    eks, stub = stubbed_eks()
    stub.add_response("describe_cluster", described(cluster.name, version="1.35"), {"name": cluster.name})
    stub.add_response(
        "describe_cluster_versions",
        {
            "clusterVersions": [
                {
                    "clusterVersion": "1.35",
                    "versionStatus": "STANDARD_SUPPORT",
                    "endOfStandardSupportDate": datetime(2027, 3, 27, tzinfo=UTC),
                }
            ]
        },
    )
    with stub:
        assert check("cluster-version-support", with_eks(cluster.context(), eks)) == []
    stub.assert_no_pending_responses()


# -- cluster-eksops-access-entry ------------------------------------------------------------------------------


def test_cluster_eksops_access_entry_compliant(cluster: ClusterUnderTest) -> None:
    principal = client("sts").get_caller_identity()["Arn"]
    eks, stub = stubbed_eks()
    stub.add_response(
        "describe_cluster", described(cluster.name, accessConfig={"authenticationMode": "API"}), {"name": cluster.name}
    )
    stub.add_response(
        "describe_access_entry",
        {"accessEntry": {"clusterName": cluster.name, "principalArn": principal, "type": "STANDARD"}},
        {"clusterName": cluster.name, "principalArn": principal},
    )
    with stub:
        assert check("cluster-eksops-access-entry", with_eks(cluster.context(), eks)) == []
    stub.assert_no_pending_responses()


def test_cluster_eksops_access_entry_non_compliant(cluster: ClusterUnderTest) -> None:
    principal = client("sts").get_caller_identity()["Arn"]
    eks, stub = stubbed_eks()
    stub.add_response(
        "describe_cluster",
        described(cluster.name, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}),
        {"name": cluster.name},
    )
    stub.add_client_error(
        "describe_access_entry",
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
        expected_params={"clusterName": cluster.name, "principalArn": principal},
    )
    with stub:
        [found] = check("cluster-eksops-access-entry", with_eks(cluster.context(), eks))
    stub.assert_no_pending_responses()
    assert found.evidence.startswith(f"authentication mode API_AND_CONFIG_MAP: no access entry for {principal}")


def test_without_access_entries_there_is_nothing_to_check(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()  # moto reports no accessConfig, as clusters from before access entries
    assert cluster.violations("cluster-eksops-access-entry") == []
    eks, stub = stubbed_eks()
    stub.add_response(
        "describe_cluster",
        described(cluster.name, accessConfig={"authenticationMode": "CONFIG_MAP"}),
        {"name": cluster.name},
    )
    with stub:  # no DescribeAccessEntry: the stub would refuse an unexpected call
        assert check("cluster-eksops-access-entry", with_eks(cluster.context(), eks)) == []


# -- cluster-oidc-provider ------------------------------------------------------------------------------------


def test_cluster_oidc_provider_compliant(cluster: ClusterUnderTest) -> None:
    issuer = cluster.create_cluster()["identity"]["oidc"]["issuer"]
    client("iam").create_open_id_connect_provider(
        Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    )
    assert cluster.violations("cluster-oidc-provider") == []


def test_cluster_oidc_provider_non_compliant(cluster: ClusterUnderTest) -> None:
    issuer = cluster.create_cluster()["identity"]["oidc"]["issuer"]
    client("iam").create_open_id_connect_provider(  # another cluster's
        Url="https://oidc.eks.us-east-1.amazonaws.com/id/OTHER",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
    )
    [found] = cluster.violations("cluster-oidc-provider")
    assert found.evidence == f"no IAM OIDC provider for {issuer}, and no eks-pod-identity-agent add-on"


def test_the_pod_identity_agent_needs_no_oidc_provider(cluster: ClusterUnderTest) -> None:
    eks, stub = stubbed_eks()
    issuer = {"oidc": {"issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"}}
    stub.add_response("describe_cluster", described(cluster.name, identity=issuer), {"name": cluster.name})
    stub.add_response("list_addons", {"addons": ["vpc-cni", "eks-pod-identity-agent"]}, {"clusterName": cluster.name})
    with stub:
        assert check("cluster-oidc-provider", with_eks(cluster.context(), eks)) == []
    stub.assert_no_pending_responses()
