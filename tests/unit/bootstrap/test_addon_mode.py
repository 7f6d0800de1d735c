"""Add-on mode (moto has no CreateAddon): the calls are checked with botocore's Stubber against the EKS model."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from eksops.bootstrap import BootstrapConfig, BootstrapService
from eksops.bootstrap.service import OBSERVABILITY_ADDON
from eksops.config import CommonConfig
from eksops.notify import Publisher


def service(mode: str, eks: Any, *, dry_run: bool = False) -> BootstrapService:
    return BootstrapService(
        BootstrapConfig.from_env({"BOOTSTRAP_OBSERVABILITY": mode}),
        CommonConfig.from_env({"DRY_RUN": "true" if dry_run else "false"}),
        eks=eks,
        iam=None,
        sts=None,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        api_client=lambda name: None,
    )


def eks_client() -> Any:
    return boto3.session.Session(
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    ).client("eks")


def test_addon_is_installed_once() -> None:
    eks = eks_client()
    with Stubber(eks) as stub:
        params = {"clusterName": "c1", "addonName": OBSERVABILITY_ADDON}
        stub.add_client_error("describe_addon", "ResourceNotFoundException", expected_params=params)
        stub.add_response(
            "create_addon",
            {"addon": {"addonName": OBSERVABILITY_ADDON, "status": "CREATING"}},
            expected_params={**params, "resolveConflicts": "OVERWRITE"},
        )
        stub.add_response(
            "describe_addon", {"addon": {"addonName": OBSERVABILITY_ADDON, "status": "ACTIVE"}}, expected_params=params
        )
        svc = service("addon", eks)
        assert svc._addon("c1") == [f"installed the {OBSERVABILITY_ADDON} add-on"]
        assert svc._addon("c1") == []  # already there: nothing to do
        stub.assert_no_pending_responses()


def test_dry_run_does_not_create_the_addon() -> None:
    eks = eks_client()
    with Stubber(eks) as stub:
        stub.add_client_error("describe_addon", "ResourceNotFoundException")
        assert service("addon", eks, dry_run=True)._addon("c1") == [f"installed the {OBSERVABILITY_ADDON} add-on"]
        stub.assert_no_pending_responses()  # no create_addon call was queued or made


def test_addon_mode_never_ships_the_agent_or_fluent_bit_manifests() -> None:
    def names(mode: str) -> set[str]:
        docs = service(mode, eks_client()).desired("c1", "us-east-1", [], fargate=False, fargate_only=False)
        return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}

    assert {"DaemonSet/cloudwatch-agent", "DaemonSet/fluent-bit"} <= names("manifests")
    assert not {"DaemonSet/cloudwatch-agent", "DaemonSet/fluent-bit"} & names("addon")
    assert "Deployment/metrics-server" in names("addon")
