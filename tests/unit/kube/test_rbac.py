"""The least-privilege ClusterRole (deploy/kubernetes/eksops-rbac.yaml) against what cluster_bootstrap does.

What eksops needs is derived twice: from the manifests (every object it may apply, delete, write as a role or
bind a role of), and from the requests cluster_bootstrap really sends to the Kubernetes emulator over HTTP in
manifests mode, on a reconcile and in add-on mode. The role must allow all of it, and grant nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.stub import Stubber

from eksops.bootstrap import BootstrapConfig, BootstrapService
from eksops.bootstrap.service import FLUENT_BIT_ADDON, METRICS_SERVER_ADDON, OBSERVABILITY_ADDON, TAG, Summary
from eksops.config import CommonConfig
from eksops.kube import manifests
from eksops.kube.apply import apply_manifests
from eksops.kube.errors import LEAST_PRIVILEGE_GROUP, RBAC_MANIFEST, access_denied_message
from eksops.notify import Publisher
from eksops_dev.kube import RESOURCES, EksopsEmulator

ROOT = Path(__file__).resolve().parents[3]
ANY = "*any*"  # eksops acts on objects of any name (application namespaces it labels)
RBAC = "rbac.authorization.k8s.io"
# (API group, resource, verb, name or ANY): one request the API server authorizes.
Need = tuple[str, str, str, str]

# Kind -> (API group, resource), from the one list of resources the emulator serves (eksops_dev.kube).
PLURALS: dict[str, tuple[str, str]] = {
    kind: ("" if key.startswith("v1/") else key.split("/")[0], key.rsplit("/", 1)[-1]) for key, kind, _ in RESOURCES
}


def load() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((ROOT / RBAC_MANIFEST).read_text()))


def cluster_role() -> dict[str, Any]:
    (role,) = [d for d in load() if d["kind"] == "ClusterRole"]
    return role


def allows(rules: Iterable[dict[str, Any]], group: str, resource: str, verb: str, name: str) -> bool:
    """Whether RBAC allows the request: a rule naming the group, resource and verb, and the object's name among
    its resourceNames when it has any (a request for objects of any name needs a rule without resourceNames)."""
    for rule in rules:
        if group in rule.get("apiGroups", ()) and resource in rule.get("resources", ()) and verb in rule["verbs"]:
            names = rule.get("resourceNames")
            if not names or name in names:
                return True
    return False


def granted(rules: Iterable[dict[str, Any]]) -> set[Need]:
    """Every (group, resource, verb, name) a role grants; ANY for rules without resourceNames."""
    return {
        (group, resource, verb, name)
        for rule in rules
        for group in rule.get("apiGroups", ())
        for resource in rule.get("resources", ())
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [ANY]
    }


def writes(doc: dict[str, Any], name: str | None = None) -> set[Need]:
    """What a server-side apply of ``doc`` is authorized as: get, patch, and create of its name when it is new;
    escalate on a role (eksops does not hold the permissions it lists) and bind on a binding's role."""
    group, resource = PLURALS[doc["kind"]]
    name = name or doc["metadata"]["name"]
    needs = {(group, resource, verb, name) for verb in ("get", "patch", "create")}
    if doc["kind"] in {"ClusterRole", "Role"}:
        needs.add((group, resource, "escalate", name))
    if "roleRef" in doc:
        needs.add((RBAC, PLURALS[doc["roleRef"]["kind"]][1], "bind", doc["roleRef"]["name"]))
    return needs


def needed_from_manifests() -> set[Need]:
    """Everything cluster_bootstrap may ask for, from the manifests and the objects it builds."""
    observability = manifests.render_observability("c1", "us-east-1")
    docs = [
        *observability,
        *manifests.render_metrics_server(fargate=False),
        *manifests.render_metrics_server(fargate=True),
        *manifests.render_fargate_logging("c1", "us-east-1"),
        manifests.default_deny("team-a", egress=True),
    ]
    needs = {need for doc in docs for need in writes(doc)}
    # Pod Security labels: a Namespace object applied to an existing application namespace of any name (read,
    # then patched; it exists, so it is never created).
    labelled = manifests.namespace_with_pod_security("team-a", manifests.pod_security_labels())
    needs |= {(*need[:3], ANY) for need in writes(labelled) if need[2] != "create"}
    needs.add(("", "namespaces", "list", ANY))  # which namespaces there are
    # Add-on mode deletes what manifests mode applied of the agent and Fluent Bit, but not their namespace.
    needs |= {(*PLURALS[d["kind"]], "delete", d["metadata"]["name"]) for d in observability if d["kind"] != "Namespace"}
    return needs


def covers(needed: set[Need], needs: Iterable[Need]) -> bool:
    return all(need in needed or (*need[:3], ANY) in needed for need in needs)


def test_the_file_binds_a_cluster_role_to_the_least_privilege_group() -> None:
    import kubernetes_validate

    role, binding = load()
    assert (role["kind"], binding["kind"]) == ("ClusterRole", "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": LEAST_PRIVILEGE_GROUP}]
    for doc in (role, binding):
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_the_role_has_no_wildcards_and_no_non_resource_urls() -> None:
    for rule in cluster_role()["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule
        values = [*rule["apiGroups"], *rule["resources"], *rule["verbs"], *rule.get("resourceNames", [])]
        assert not [v for v in values if "*" in v], rule


def test_the_role_allows_everything_eksops_applies_deletes_and_binds() -> None:
    rules = cluster_role()["rules"]
    missing = sorted(need for need in needed_from_manifests() if not allows(rules, *need))
    assert not missing, f"{RBAC_MANIFEST} lacks {missing}"


def test_the_role_grants_nothing_else() -> None:
    extra = sorted(granted(cluster_role()["rules"]) - needed_from_manifests())
    assert not extra, f"{RBAC_MANIFEST} grants what eksops never asks for: {extra}"


def test_the_checks_can_fail() -> None:
    rules = cluster_role()["rules"]
    needed = needed_from_manifests()
    without_delete = [{**r, "verbs": [v for v in r["verbs"] if v != "delete"]} for r in rules]
    assert any(not allows(without_delete, *need) for need in needed)
    with_any_daemonset = [*rules, {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["patch"]}]
    assert ("apps", "daemonsets", "patch", ANY) in granted(with_any_daemonset) - needed
    assert not allows(rules, "", "secrets", "get", "aws-auth")
    assert not allows(rules, "apps", "daemonsets", "patch", "kube-proxy")  # someone else's DaemonSet


def test_access_denied_guidance_offers_both_modes() -> None:
    assert (ROOT / RBAC_MANIFEST).is_file()
    session = "arn:aws:sts::123456789012:assumed-role/eksops-bootstrap-role/s"
    for status in (401, 403):
        message = access_denied_message("prod-eu", session, status)
        assert "AmazonEKSClusterAdminPolicy" in message
        assert f"kubectl apply -f {RBAC_MANIFEST}" in message
        assert LEAST_PRIVILEGE_GROUP in message
    create = "aws eks create-access-entry --cluster-name prod-eu --principal-arn "
    assert f"{create}arn:aws:iam::123456789012:role/eksops-bootstrap-role --kubernetes-groups eksops-bootstrap" in (
        access_denied_message("prod-eu", session, 401)
    )


# -- what cluster_bootstrap really asks the API server for ------------------------------------------------------

ARN = "arn:aws:eks:us-east-1:123456789012:cluster/c1"


def no_addon(stub: Stubber, *names: str) -> None:
    """DescribeAddon of each add-on in ``names``: not installed."""
    for name in names:
        stub.add_client_error(
            "describe_addon",
            "ResourceNotFoundException",
            http_status_code=404,
            expected_params={"clusterName": "c1", "addonName": name},
        )


PROFILE = {
    "fargateProfileName": "system",
    "clusterName": "c1",
    "podExecutionRoleArn": "arn:aws:iam::123456789012:role/c1-pods",
    "selectors": [{"namespace": "kube-system"}],  # metrics-server runs on Fargate: its port moves
}
DISCOVERY = re.compile(r"^/(version|api|apis)(/[^/]+){0,2}/?$")


def stub_cluster(stub: Stubber, *, tagged: bool) -> None:
    tags = {TAG: manifests.MANIFEST_VERSION} if tagged else {}
    cluster = {"name": "c1", "arn": ARN, "status": "ACTIVE", "version": "1.31", "tags": tags}
    stub.add_response("describe_cluster", {"cluster": cluster}, expected_params={"name": "c1"})
    stub.add_response("list_nodegroups", {"nodegroups": []}, expected_params={"clusterName": "c1"})
    stub.add_response(
        "list_fargate_profiles", {"fargateProfileNames": ["system"]}, expected_params={"clusterName": "c1"}
    )
    stub.add_response(
        "describe_fargate_profile",
        {"fargateProfile": PROFILE},
        expected_params={"clusterName": "c1", "fargateProfileName": "system"},
    )


def bootstrap(api: Any, mode: str, stubs: Any, *, force: bool) -> Summary:
    import boto3

    eks = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client("eks")
    environ = {
        "BOOTSTRAP_OBSERVABILITY": mode,
        "BOOTSTRAP_DENY_NAMESPACES": '["team-*"]',
        "BOOTSTRAP_DENY_EGRESS": "true",
    }
    svc = BootstrapService(
        BootstrapConfig.from_env(environ),
        CommonConfig.from_env({"DRY_RUN": "false"}),
        eks=eks,
        iam=None,
        sts=None,
        publisher=Publisher(None, alerts_topic_arn=None, reports_topic_arn=None),
        api_client=lambda name: api,
    )
    summary = Summary(dry_run=False)
    with Stubber(eks) as stub:
        stubs(stub)
        svc.bootstrap("c1", summary, force=force)
        stub.assert_no_pending_responses()
    return summary


def requested(requests: Iterable[Any]) -> Iterator[Need]:
    """The authorization checks the API server makes for each request the emulator received."""
    for request in requests:
        if request.resource is None:
            assert DISCOVERY.match(request.url.path), f"not a discovery request: {request.method} {request.url.path}"
            continue  # discovery: every authenticated user may (system:discovery)
        group, resource, name = request.resource.group or "", request.resource.plural, request.name or ANY
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        if method == "GET":
            yield group, resource, ("get" if request.name else "list"), name
        elif method == "PATCH":
            yield group, resource, "patch", name
            if str(request.action).lower().endswith("create"):  # the apply created the object
                yield group, resource, "create", name
            if resource in {"clusterroles", "roles"}:
                yield group, resource, "escalate", name
            if isinstance(request.data, dict) and "roleRef" in request.data:
                role_ref = request.data["roleRef"]
                yield RBAC, PLURALS[role_ref["kind"]][1], "bind", role_ref["name"]
        elif method == "DELETE":
            yield group, resource, "delete", name
        else:
            raise AssertionError(f"cluster_bootstrap sent {method} {request.url.path}: only get, list, apply, delete")


@pytest.fixture
def api(kube: tuple[str, EksopsEmulator]) -> Iterator[Any]:
    import kubernetes

    url, _ = kube
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url)) as client:
        yield client


def test_every_request_of_a_bootstrap_is_allowed_by_the_role(kube: tuple[str, EksopsEmulator], api: Any) -> None:
    _, emulator = kube
    apply_manifests(
        api, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("team-a", "web")]
    )
    start = len(list(emulator))  # the requests the emulator received so far (its journal)

    def manifests_mode(stub: Stubber, *, tagged: bool = False) -> None:
        stub_cluster(stub, tagged=tagged)
        no_addon(stub, OBSERVABILITY_ADDON, METRICS_SERVER_ADDON, FLUENT_BIT_ADDON)
        if not tagged:
            stub.add_response(
                "tag_resource", {}, expected_params={"resourceArn": ARN, "tags": {TAG: manifests.MANIFEST_VERSION}}
            )

    def addon_mode(stub: Stubber) -> None:
        stub_cluster(stub, tagged=True)
        no_addon(stub, METRICS_SERVER_ADDON, OBSERVABILITY_ADDON)
        versions = [{"addonVersion": "v4.1.0-eksbuild.1", "compatibilities": [{"clusterVersion": "1.31"}]}]
        stub.add_response(
            "describe_addon_versions",
            {"addons": [{"addonName": OBSERVABILITY_ADDON, "addonVersions": versions}]},
            expected_params={"addonName": OBSERVABILITY_ADDON, "kubernetesVersion": "1.31"},
        )
        stub.add_response("create_addon", {"addon": {"addonName": OBSERVABILITY_ADDON}})

    first = bootstrap(api, "manifests", manifests_mode, force=True)
    assert first.clusters["c1"].status == "bootstrapped"
    assert "NetworkPolicy/team-a/eksops-default-deny" in first.clusters["c1"].changed_objects
    reconcile = bootstrap(api, "manifests", lambda stub: manifests_mode(stub, tagged=True), force=False)
    assert reconcile.clusters["c1"].status == "unchanged"  # reads only
    switched = bootstrap(api, "addon", addon_mode, force=False)
    assert "deleted DaemonSet/amazon-cloudwatch/fluent-bit" in switched.clusters["c1"].changed_objects

    needs = list(requested(list(emulator)[start:]))
    verbs = {need[2] for need in needs}
    assert verbs == {"get", "list", "patch", "create", "delete", "escalate", "bind"}, verbs
    rules = cluster_role()["rules"]
    denied = sorted({need for need in needs if not allows(rules, *need)})
    assert not denied, f"{RBAC_MANIFEST} would deny cluster_bootstrap: {denied}"
    # The derivation from the manifests foresees every request the code made.
    assert covers(needed_from_manifests(), needs)
