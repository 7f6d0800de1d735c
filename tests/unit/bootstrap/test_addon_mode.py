"""The observability add-on (moto has no EKS add-on API: the EKS calls are checked with botocore's Stubber against
the EKS model) against the Kubernetes emulator over HTTP: never the add-on and eksops' agent manifests both."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from eksops.bootstrap import BootstrapConfig, BootstrapService
from eksops.bootstrap.service import METRICS_SERVER_ADDON, OBSERVABILITY_ADDON, TAG, Plan, Summary
from eksops.config import CommonConfig
from eksops.kube import manifests
from eksops.kube.apply import apply_manifests
from eksops.notify import Publisher
from eksops_dev.kube import EksopsEmulator

ARN = "arn:aws:eks:us-east-1:123456789012:cluster/c1"
ADDON = {"clusterName": "c1", "addonName": OBSERVABILITY_ADDON}


def service(mode: str, eks: Any, *, dry_run: bool = False, api: Any = None) -> BootstrapService:
    return BootstrapService(
        BootstrapConfig.from_env({"BOOTSTRAP_OBSERVABILITY": mode}),
        CommonConfig.from_env({"DRY_RUN": "true" if dry_run else "false"}),
        eks=eks,
        iam=None,
        sts=None,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        api_client=lambda name: api,
    )


def eks_client() -> Any:
    return boto3.session.Session(
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    ).client("eks")


def stub_cluster(stub: Stubber) -> None:
    """DescribeCluster (ACTIVE, not tagged), no node groups, no Fargate profiles."""
    stub.add_response(
        "describe_cluster",
        {"cluster": {"name": "c1", "arn": ARN, "status": "ACTIVE", "version": "1.31", "tags": {}}},
        expected_params={"name": "c1"},
    )
    stub.add_response("list_nodegroups", {"nodegroups": []}, expected_params={"clusterName": "c1"})
    stub.add_response("list_fargate_profiles", {"fargateProfileNames": []}, expected_params={"clusterName": "c1"})


def no_addon(stub: Stubber, *names: str) -> None:
    """DescribeAddon of each add-on in ``names`` (metrics-server, fluent-bit: eksops' own components): not installed."""
    for name in names:
        stub.add_client_error(
            "describe_addon",
            "ResourceNotFoundException",
            http_status_code=404,
            expected_params={"clusterName": "c1", "addonName": name},
        )


VERSIONS = {"addonName": OBSERVABILITY_ADDON, "kubernetesVersion": "1.31"}


def stub_versions(stub: Stubber, *, offered: bool = True) -> None:
    """DescribeAddonVersions for the cluster's Kubernetes version: one version offered, or none."""
    versions = [{"addonVersion": "v4.1.0-eksbuild.1", "compatibilities": [{"clusterVersion": "1.31"}]}]
    addons = [{"addonName": OBSERVABILITY_ADDON, "addonVersions": versions}] if offered else []
    stub.add_response("describe_addon_versions", {"addons": addons}, expected_params=VERSIONS)


def stub_tag(stub: Stubber) -> None:
    stub.add_response(
        "tag_resource", {}, expected_params={"resourceArn": ARN, "tags": {TAG: manifests.MANIFEST_VERSION}}
    )


def bootstrap_with_the_addon_installed(mode: str, api: Any, *, force: bool) -> Summary:
    """Bootstrap c1 whose DescribeAddon shows the add-on ACTIVE; every EKS call is the stubbed one, in order."""
    eks = eks_client()
    with Stubber(eks) as stub:
        stub_cluster(stub)
        if mode == "addon":  # add-on mode asks for metrics-server's add-on first, then whether to switch
            no_addon(stub, METRICS_SERVER_ADDON)
        stub.add_response(
            "describe_addon", {"addon": {"addonName": OBSERVABILITY_ADDON, "status": "ACTIVE"}}, expected_params=ADDON
        )
        if mode == "manifests":  # the add-on installed: no Fluent Bit of eksops', so no question about its add-on
            no_addon(stub, METRICS_SERVER_ADDON)
        stub_tag(stub)
        summary = Summary(dry_run=False)
        service(mode, eks, api=api).bootstrap("c1", summary, force=force)
        stub.assert_no_pending_responses()
    return summary


def live(emulator: EksopsEmulator) -> set[str]:
    return {
        f"{o.raw['kind']}/{o.raw['metadata'].get('namespace') or '-'}/{o.raw['metadata']['name']}"
        for o in emulator.objects.values()
        if not o.deleted
    }


@pytest.fixture
def api(kube: tuple[str, EksopsEmulator]) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


def test_addon_is_installed_once() -> None:
    eks = eks_client()
    with Stubber(eks) as stub:
        stub.add_client_error(
            "describe_addon", "ResourceNotFoundException", http_status_code=404, expected_params=ADDON
        )
        stub.add_response(
            "create_addon",
            {"addon": {"addonName": OBSERVABILITY_ADDON, "status": "CREATING"}},
            expected_params={**ADDON, "resolveConflicts": "OVERWRITE"},
        )
        stub.add_response(
            "describe_addon", {"addon": {"addonName": OBSERVABILITY_ADDON, "status": "ACTIVE"}}, expected_params=ADDON
        )
        svc = service("addon", eks)
        assert svc._addon("c1") == [f"installed the {OBSERVABILITY_ADDON} add-on"]
        assert svc._addon("c1") == []  # already there: nothing to do
        stub.assert_no_pending_responses()


def test_dry_run_does_not_create_the_addon() -> None:
    eks = eks_client()
    with Stubber(eks) as stub:
        stub.add_client_error("describe_addon", "ResourceNotFoundException", http_status_code=404)
        assert service("addon", eks, dry_run=True)._addon("c1") == [f"installed the {OBSERVABILITY_ADDON} add-on"]
        stub.assert_no_pending_responses()  # no create_addon call was queued or made


def test_an_unexpected_describe_addon_error_is_not_taken_for_absence() -> None:
    from botocore.exceptions import ClientError

    eks = eks_client()
    with Stubber(eks) as stub:
        stub.add_client_error("describe_addon", "AccessDeniedException", http_status_code=403)
        with pytest.raises(ClientError):
            service("manifests", eks)._addon_installed("c1")


def test_addon_mode_never_ships_the_agent_or_fluent_bit_manifests() -> None:
    def names(mode: str) -> set[str]:
        plan = Plan(fargate=False, metrics_server_on_fargate=False, observability=mode == "manifests")
        docs = service(mode, eks_client()).desired("c1", "us-east-1", [], plan)
        return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}

    assert {"DaemonSet/cloudwatch-agent", "DaemonSet/fluent-bit"} <= names("manifests")
    assert not {"DaemonSet/cloudwatch-agent", "DaemonSet/fluent-bit"} & names("addon")
    assert "Deployment/metrics-server" in names("addon")


def test_addon_mode_removes_the_agent_and_fluent_bit_eksops_applied_before_installing_the_addon(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    _, emulator = kube
    observability = manifests.render_observability("c1", "us-east-1")
    apply_manifests(api, copy.deepcopy(observability))  # as manifests mode left them
    # An object of the same name that eksops does not own (its label is someone else's): it must stay.
    foreign = copy.deepcopy(next(d for d in observability if d["kind"] == "ClusterRole"))
    foreign["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "someone-else"}
    apply_manifests(api, [foreign])
    before_addon: list[set[str]] = []

    eks = eks_client()
    eks.meta.events.register("before-parameter-build.eks.CreateAddon", lambda **_: before_addon.append(live(emulator)))
    with Stubber(eks) as stub:
        stub_cluster(stub)
        no_addon(stub, METRICS_SERVER_ADDON)
        stub.add_client_error(
            "describe_addon", "ResourceNotFoundException", http_status_code=404, expected_params=ADDON
        )
        stub_versions(stub)
        stub.add_response("create_addon", {"addon": {"addonName": OBSERVABILITY_ADDON}})
        stub_tag(stub)
        summary = Summary(dry_run=False)
        service("addon", eks, api=api).bootstrap("c1", summary, force=True)
        stub.assert_no_pending_responses()

    stored = live(emulator)
    result = summary.clusters["c1"]
    for gone in (
        "DaemonSet/amazon-cloudwatch/cloudwatch-agent",
        "DaemonSet/amazon-cloudwatch/fluent-bit",
        "ConfigMap/amazon-cloudwatch/fluent-bit-config",
        "ServiceAccount/amazon-cloudwatch/fluent-bit",
    ):
        assert gone not in stored
        assert f"deleted {gone}" in result.changed_objects
    assert "Namespace/-/amazon-cloudwatch" in stored  # the add-on installs into it
    kept = f"ClusterRole/-/{foreign['metadata']['name']}"
    assert kept in stored
    assert any(foreign["metadata"]["name"] in w and "not labelled" in w for w in result.warnings)
    # The deletions happened before CreateAddon: never both.
    (at_create,) = before_addon
    assert not {"DaemonSet/amazon-cloudwatch/cloudwatch-agent", "DaemonSet/amazon-cloudwatch/fluent-bit"} & at_create
    assert f"installed the {OBSERVABILITY_ADDON} add-on" in result.aws
    assert "Deployment/kube-system/metrics-server" in stored


def test_manifests_mode_with_the_addon_installed_applies_no_agent_and_warns(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    _, emulator = kube
    summary = bootstrap_with_the_addon_installed("manifests", api, force=False)  # and no CreateAddon

    stored = live(emulator)
    assert not [ref for ref in stored if ref.startswith("DaemonSet/")]
    assert not [ref for ref in stored if "/amazon-cloudwatch/" in ref]
    assert "Deployment/kube-system/metrics-server" in stored  # the rest of the baseline still applies
    (warning,) = summary.clusters["c1"].warnings
    assert OBSERVABILITY_ADDON in warning and "never both" in warning
    assert summary.warned == ["c1"]  # not tagged yet: the report carries it


def test_addon_mode_keeps_eksops_agent_when_eks_offers_no_addon_version(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    """Never neither: with no add-on version for the cluster's Kubernetes, nothing is deleted and it fails."""
    from eksops.errors import PermanentError

    _, emulator = kube
    apply_manifests(api, manifests.render_observability("c1", "us-east-1"))
    before = live(emulator)
    eks = eks_client()
    with Stubber(eks) as stub:
        stub_cluster(stub)
        no_addon(stub, METRICS_SERVER_ADDON)
        stub.add_client_error(
            "describe_addon", "ResourceNotFoundException", http_status_code=404, expected_params=ADDON
        )
        stub_versions(stub, offered=False)
        with pytest.raises(PermanentError, match="no amazon-cloudwatch-observability add-on version"):
            service("addon", eks, api=api).bootstrap("c1", Summary(dry_run=False), force=True)
        stub.assert_no_pending_responses()  # no CreateAddon, no tag
    assert live(emulator) == before
    assert {"DaemonSet/amazon-cloudwatch/cloudwatch-agent", "DaemonSet/amazon-cloudwatch/fluent-bit"} <= before


def test_once_the_addon_is_installed_its_objects_are_neither_deleted_nor_warned_about(
    kube: tuple[str, EksopsEmulator], api: Any
) -> None:
    _, emulator = kube
    # What the add-on installed: objects of the same names, not labelled as eksops'.
    theirs = [d for d in manifests.render_observability("c1", "us-east-1") if d["kind"] != "Namespace"]
    for doc in theirs:
        doc["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "EKS"}
    apply_manifests(api, copy.deepcopy(theirs), field_manager="eks")
    before = live(emulator)
    summary = bootstrap_with_the_addon_installed("addon", api, force=True)  # no DescribeAddonVersions, CreateAddon
    assert before <= live(emulator)
    assert summary.clusters["c1"].warnings == [] and summary.warned == []
