"""Kubernetes security rules against the Kubernetes emulator over HTTP: namespaces, RBAC, workloads' pod security."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eksops.bootstrap.config import BootstrapConfig
from eksops.compliance.model import NotRemediated, Violation, rules
from eksops.kube import manifests
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.kube_objects import (
    container,
    deep_merge,
    owner,
    pod,
    pod_spec,
    replica_set,
    workload,
)

RBAC = "rbac.authorization.k8s.io/v1"


def create(cluster: ClusterUnderTest, *objects: dict[str, Any]) -> None:
    for obj in objects:
        cluster.kube_create(obj)


def found(cluster: ClusterUnderTest, rule_id: str, *objects: dict[str, Any]) -> dict[str, Violation]:
    """Create ``objects``, run the rule; its violations by resource."""
    create(cluster, *objects)
    violations = cluster.violations(rule_id)
    by_resource = {v.resource: v for v in violations}
    assert len(by_resource) == len(violations), f"a resource reported twice: {violations}"
    return by_resource


def remediate_all(cluster: ClusterUnderTest, rule_id: str, *, dry_run: bool = False) -> list[str]:
    cluster.common = replace(cluster.common, dry_run=dry_run)
    try:
        ctx = cluster.context()
        rule = rules()[rule_id]
        return [rule.remediate(ctx, v) for v in list(rule.check(ctx))]
    finally:
        cluster.common = replace(cluster.common, dry_run=False)


def get(cluster: ClusterUnderTest, path: str) -> Any:
    from eksops.compliance.context import kube_request

    status, body = kube_request(cluster.api(), "GET", path)
    return body if status == 200 else None


# -- namespace-default-deny -------------------------------------------------------------------------------------


def network_policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], **spec},
    }


def fargate_profile(cluster: ClusterUnderTest, *selectors: dict[str, Any]) -> None:
    cluster.aws("eks").create_fargate_profile(
        clusterName=cluster.name,
        fargateProfileName=f"fp-{len(selectors)}",
        podExecutionRoleArn=cluster.role(service="eks-fargate-pods.amazonaws.com"),
        subnets=["subnet-1"],
        selectors=list(selectors),
    )


def test_namespace_default_deny_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    # every pod of batch-* runs on Fargate, which enforces no NetworkPolicy: a default deny there would only pretend
    fargate_profile(cluster, {"namespace": "batch-*"})
    cluster.namespace("shop")
    cluster.namespace("batch-nightly")
    cluster.namespace("kube-system")  # a system namespace: never reported
    cluster.namespace("amazon-cloudwatch")
    assert found(cluster, "namespace-default-deny", network_policy("shop", "deny-all")) == {}


def test_namespace_default_deny_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.create_cluster()
    fargate_profile(cluster, {"namespace": "blog", "labels": {"app": "batch"}})  # only some of its pods on Fargate
    for name in ("shop", "blog", "billing"):
        cluster.namespace(name)
    violations = found(
        cluster,
        "namespace-default-deny",
        # selects only some pods: not a default deny
        network_policy("shop", "web-only", podSelector={"matchLabels": {"app": "web"}}),
        # selects every pod but lets traffic in
        network_policy("shop", "allow-all", ingress=[{}]),
        # egress only: ingress stays open
        network_policy("billing", "egress", policyTypes=["Egress"]),
    )
    assert set(violations) == {"namespace/shop", "namespace/blog", "namespace/billing"}
    assert "web-only" in violations["namespace/shop"].evidence
    assert "allow-all" in violations["namespace/shop"].evidence
    assert violations["namespace/blog"].evidence == "no NetworkPolicy denies ingress to all its pods"


def test_namespace_default_deny_remediation(cluster: ClusterUnderTest) -> None:
    cluster.tools_extra["bootstrap"] = BootstrapConfig.from_env({"BOOTSTRAP_DENY_NAMESPACES": '["shop"]'})
    cluster.create_cluster()
    cluster.namespace("shop")
    path = f"/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/{manifests.DENY_POLICY_NAME}"

    said = remediate_all(cluster, "namespace-default-deny", dry_run=True)
    assert len(said) == 1
    assert said[0].startswith("would apply NetworkPolicy shop/eksops-default-deny")
    assert get(cluster, path) is None  # the dry run stored nothing

    assert remediate_all(cluster, "namespace-default-deny") == [
        "applied NetworkPolicy shop/eksops-default-deny (denies ingress) (created)"
    ]
    policy = get(cluster, path)
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # BootstrapConfig's default: no egress deny
    assert cluster.violations("namespace-default-deny") == []
    # idempotent: applying the same manifest again changes nothing
    ctx = cluster.context()
    violation = Violation("namespace/shop", "", data={"namespace": "shop"})
    assert rules()["namespace-default-deny"].remediate(ctx, violation).endswith("(unchanged)")


def test_namespace_default_deny_is_not_applied_where_bootstrap_would_not_apply_it(cluster: ClusterUnderTest) -> None:
    """A default deny cuts traffic: only namespaces BOOTSTRAP_DENY_NAMESPACES opts in get it (default: none)."""
    cluster.tools_extra["bootstrap"] = BootstrapConfig.from_env({"BOOTSTRAP_DENY_NAMESPACES": '["team-*"]'})
    cluster.create_cluster()
    cluster.namespace("shop")
    with pytest.raises(NotRemediated, match="not in BOOTSTRAP_DENY_NAMESPACES"):
        remediate_all(cluster, "namespace-default-deny")
    path = f"/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/{manifests.DENY_POLICY_NAME}"
    assert get(cluster, path) is None
    assert [v.resource for v in cluster.violations("namespace-default-deny")] == ["namespace/shop"]


def test_namespace_default_deny_remediation_uses_bootstrap_egress(cluster: ClusterUnderTest) -> None:
    cluster.tools_extra["bootstrap"] = BootstrapConfig.from_env(
        {"BOOTSTRAP_DENY_EGRESS": "true", "BOOTSTRAP_DENY_NAMESPACES": '["*"]'}
    )
    cluster.create_cluster()
    cluster.namespace("shop")
    assert remediate_all(cluster, "namespace-default-deny") == [
        "applied NetworkPolicy shop/eksops-default-deny (denies ingress and egress but DNS) (created)"
    ]
    policy = get(cluster, f"/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/{manifests.DENY_POLICY_NAME}")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert cluster.violations("namespace-default-deny") == []


# -- namespace-pod-security ---------------------------------------------------------------------------------------


def test_namespace_pod_security_compliant(cluster: ClusterUnderTest) -> None:
    cluster.namespace("shop", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    cluster.namespace("kube-system")  # system
    cluster.namespace("calico-system")  # left out by BOOTSTRAP_PSA_EXCLUDE's default
    assert cluster.violations("namespace-pod-security") == []


def test_namespace_pod_security_non_compliant(cluster: ClusterUnderTest) -> None:
    cluster.namespace("shop")
    cluster.namespace("legacy", labels={"pod-security.kubernetes.io/warn": "restricted"}, annotations={"team": "x"})
    violations = {v.resource: v for v in cluster.violations("namespace-pod-security")}
    assert set(violations) == {"namespace/shop", "namespace/legacy"}
    assert violations["namespace/shop"].evidence == "no pod-security.kubernetes.io/enforce label"
    assert violations["namespace/shop"].data["may_set"] is True
    legacy = violations["namespace/legacy"]
    assert "(it has warn=restricted)" in legacy.evidence
    assert "owner chose" in legacy.evidence
    assert legacy.data["may_set"] is False
    assert legacy.annotations == {"team": "x"}


def test_namespace_pod_security_remediation(cluster: ClusterUnderTest) -> None:
    cluster.tools_extra["bootstrap"] = BootstrapConfig.from_env({"BOOTSTRAP_PSA_ENFORCE": "restricted"})
    cluster.namespace("shop", labels={"team": "cart"})
    cluster.namespace("legacy", labels={"pod-security.kubernetes.io/warn": "restricted"})
    rule = rules()["namespace-pod-security"]

    cluster.common = replace(cluster.common, dry_run=True)
    ctx = cluster.context()
    (shop,) = [v for v in rule.check(ctx) if v.resource == "namespace/shop"]
    assert rule.remediate(ctx, shop).startswith("would apply Pod Security labels enforce=restricted")
    cluster.common = replace(cluster.common, dry_run=False)
    assert "pod-security.kubernetes.io/enforce" not in get(cluster, "/api/v1/namespaces/shop")["metadata"]["labels"]

    ctx = cluster.context()
    by_resource = {v.resource: v for v in rule.check(ctx)}
    said = rule.remediate(ctx, by_resource["namespace/shop"])
    assert said == (
        "applied Pod Security labels enforce=restricted, warn=restricted, audit=restricted on namespace shop"
        " (configured)"
    )
    labels = get(cluster, "/api/v1/namespaces/shop")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["team"] == "cart"  # the namespace's other labels stay
    # the owner's choice is reported, never overridden
    with pytest.raises(NotRemediated, match="never relabels"):
        rule.remediate(ctx, by_resource["namespace/legacy"])
    assert "pod-security.kubernetes.io/enforce" not in get(cluster, "/api/v1/namespaces/legacy")["metadata"]["labels"]

    assert [v.resource for v in cluster.violations("namespace-pod-security")] == ["namespace/legacy"]


def test_namespace_pod_security_is_applied_only_where_bootstrap_labels(cluster: ClusterUnderTest) -> None:
    cluster.tools_extra["bootstrap"] = BootstrapConfig.from_env({"BOOTSTRAP_PSA_NAMESPACES": '["team-*"]'})
    cluster.namespace("shop")
    rule = rules()["namespace-pod-security"]
    ctx = cluster.context()
    (shop,) = [v for v in rule.check(ctx) if v.resource == "namespace/shop"]
    with pytest.raises(NotRemediated, match="not among BOOTSTRAP_PSA_NAMESPACES"):
        rule.remediate(ctx, shop)
    assert "pod-security.kubernetes.io/enforce" not in get(cluster, "/api/v1/namespaces/shop")["metadata"]["labels"]


# -- RBAC -----------------------------------------------------------------------------------------------------------


def binding(name: str, role: str, *subjects: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": list(subjects),
    }


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def service_account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_role(name: str, *rules_: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules_)}


def test_rbac_cluster_admin_binding_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "rbac-cluster-admin-binding",
            binding("cluster-admin", "cluster-admin", group("system:masters")),
            binding("addon", "cluster-admin", service_account("kube-system", "addon-manager")),
            binding("eks-user", "cluster-admin", user("eks:addon-manager")),
            binding("devs-view", "view", group("developers")),
        )
        == {}
    )


def test_rbac_cluster_admin_binding_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "rbac-cluster-admin-binding",
        binding(
            "devs-admin",
            "cluster-admin",
            group("developers"),
            service_account("ci", "deployer"),
            group("system:masters"),
        ),
        binding("everyone", "cluster-admin", group("system:authenticated")),
        binding("cluster-admin", "cluster-admin", group("system:masters")),
    )
    assert set(violations) == {"clusterrolebinding/devs-admin", "clusterrolebinding/everyone"}
    assert violations["clusterrolebinding/devs-admin"].evidence == (
        "binds cluster-admin to Group developers; ServiceAccount ci/deployer"
    )
    assert "system:authenticated" in violations["clusterrolebinding/everyone"].evidence


WILDCARD = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}


def test_rbac_wildcard_clusterrole_compliant(cluster: ClusterUnderTest) -> None:
    reader = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    assert (
        found(
            cluster,
            "rbac-wildcard-clusterrole",
            cluster_role("ops", WILDCARD),  # bound only to a system subject
            binding("ops", "ops", service_account("kube-system", "ops")),
            cluster_role("reader", reader),  # no wildcard
            binding("reader", "reader", group("developers")),
            cluster_role("system:thing", WILDCARD),  # the platform's
            binding("thing", "system:thing", group("developers")),
            cluster_role("unbound", WILDCARD),  # bound to nobody
        )
        == {}
    )


def test_rbac_wildcard_clusterrole_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "rbac-wildcard-clusterrole",
        cluster_role("ops", {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}),
        binding("ops-alice", "ops", user("alice"), namespace="shop"),
        cluster_role("secrets-all", {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}),
        binding("secrets-all", "secrets-all", service_account("ci", "runner")),
    )
    assert set(violations) == {"clusterrole/ops", "clusterrole/secrets-all"}
    assert violations["clusterrole/ops"].evidence == (
        "grants verbs * on deployments (apps); bound by rolebinding/shop/ops-alice to User alice"
    )
    assert "resources" not in violations["clusterrole/secrets-all"].evidence
    assert "verbs get on * (core)" in violations["clusterrole/secrets-all"].evidence


def test_rbac_anonymous_binding_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "rbac-anonymous-binding",
            binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                group("system:authenticated"),
                group("system:unauthenticated"),
            ),
            binding("basic", "system:basic-user", group("system:authenticated")),
        )
        == {}
    )


def test_rbac_anonymous_binding_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "rbac-anonymous-binding",
        binding("open", "view", user("system:anonymous")),
        binding("open-shop", "edit", group("system:unauthenticated"), group("developers"), namespace="shop"),
    )
    assert set(violations) == {"clusterrolebinding/open", "rolebinding/shop/open-shop"}
    assert violations["clusterrolebinding/open"].evidence == "binds ClusterRole view to system:anonymous"
    assert violations["rolebinding/shop/open-shop"].namespace == "shop"


# -- workloads: the walker ----------------------------------------------------------------------------------------


PRIVILEGED = container(securityContext={"privileged": True, "allowPrivilegeEscalation": False})


def test_workloads_reported_once_per_workload_on_its_template(cluster: ClusterUnderTest) -> None:
    bad = pod_spec(PRIVILEGED)
    violations = found(
        cluster,
        "pod-privileged",
        workload("Deployment", "shop", "cart", bad, annotations={"eksops.io/accept-pod-privileged": "why"}),
        # its replicas: covered by the Deployment, never reported one by one (tests/integration/compliance/
        # test_workloads.py walks the other controllers)
        replica_set("shop", "cart-7d9f", bad, by=owner("Deployment", "cart")),
        pod("shop", "cart-7d9f-abcde", bad, owner={"kind": "ReplicaSet", "name": "cart-7d9f"}),
        pod("shop", "cart-7d9f-fghij", bad, owner={"kind": "ReplicaSet", "name": "cart-7d9f"}),
        workload("DaemonSet", "shop", "agent", bad),
        workload("StatefulSet", "shop", "db", bad),
        pod("shop", "debug", bad),  # a bare pod
        pod("shop", "static-web-node1", bad, owner={"apiVersion": "v1", "kind": "Node", "name": "node1"}),  # mirror
        workload("DaemonSet", "kube-system", "aws-node", bad),  # system namespaces are left out
        pod("eksops-headroom", "pause", bad),
    )
    assert set(violations) == {
        "deployment/shop/cart",
        "daemonset/shop/agent",
        "statefulset/shop/db",
        "pod/shop/debug",
        "pod/shop/static-web-node1",
    }
    cart = violations["deployment/shop/cart"]
    assert cart.namespace == "shop"
    assert cart.annotations == {"eksops.io/accept-pod-privileged": "why"}


# -- pod-privileged ---------------------------------------------------------------------------------------------------


def test_pod_privileged_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "pod-privileged",
            workload("Deployment", "shop", "cart"),
            workload("DaemonSet", "kube-system", "aws-node", pod_spec(PRIVILEGED)),
        )
        == {}
    )


def test_pod_privileged_non_compliant(cluster: ClusterUnderTest) -> None:
    spec = pod_spec(container(), initContainers=[container("setup", securityContext={"privileged": True})])
    violations = found(cluster, "pod-privileged", workload("Deployment", "shop", "cart", spec))
    assert violations["deployment/shop/cart"].evidence == "init container setup: privileged"


# -- pod-host-path ----------------------------------------------------------------------------------------------------


def host_path_spec(path: str, *, read_only: bool) -> dict[str, Any]:
    mount = {"name": "host", "mountPath": "/host", "readOnly": read_only}
    return pod_spec(container(volumeMounts=[mount]), volumes=[{"name": "host", "hostPath": {"path": path}}])


def test_pod_host_path_compliant(cluster: ClusterUnderTest) -> None:
    unmounted = pod_spec(volumes=[{"name": "host", "hostPath": {"path": "/etc"}}])
    assert (
        found(
            cluster,
            "pod-host-path",
            workload("Deployment", "shop", "reader", host_path_spec("/var/log", read_only=True)),  # read-only
            workload("Deployment", "shop", "idle", unmounted),  # declared, never mounted
            workload("Deployment", "shop", "builder", host_path_spec("/var/run/docker.sock", read_only=False)),
            workload("DaemonSet", "amazon-cloudwatch", "fluent-bit", host_path_spec("/var/log", read_only=False)),
        )
        == {}
    )


def test_pod_host_path_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(cluster, "pod-host-path", pod("shop", "debug", host_path_spec("/etc", read_only=False)))
    assert violations["pod/shop/debug"].evidence == "container app mounts /etc writable"


# -- pod-host-namespaces ----------------------------------------------------------------------------------------------


def test_pod_host_namespaces_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "pod-host-namespaces",
            workload("Deployment", "shop", "cart", pod_spec(hostNetwork=False)),
            workload("DaemonSet", "kube-system", "kube-proxy", pod_spec(hostNetwork=True)),
        )
        == {}
    )


def test_pod_host_namespaces_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "pod-host-namespaces",
        workload("DaemonSet", "monitoring", "node-exporter", pod_spec(hostNetwork=True, hostPID=True)),
    )
    assert violations["daemonset/monitoring/node-exporter"].evidence == "hostNetwork true; hostPID true"


# -- pod-run-as-root ----------------------------------------------------------------------------------------------


def test_pod_run_as_root_compliant(cluster: ClusterUnderTest) -> None:
    nonroot_container = container(securityContext={"runAsNonRoot": True})
    assert (
        found(
            cluster,
            "pod-run-as-root",
            workload("Deployment", "shop", "cart"),  # pod-level runAsNonRoot and runAsUser
            workload("Deployment", "shop", "web", pod_spec(nonroot_container, securityContext={})),
            workload("Deployment", "shop", "win", pod_spec(securityContext={}, os={"name": "windows"})),
        )
        == {}
    )


def test_pod_run_as_root_non_compliant(cluster: ClusterUnderTest) -> None:
    root_container = container("sidecar", securityContext={"runAsUser": 0})
    violations = found(
        cluster,
        "pod-run-as-root",
        workload("Deployment", "shop", "cart", pod_spec(container(), root_container)),  # overrides the pod's
        workload("StatefulSet", "shop", "db", pod_spec(securityContext={})),
    )
    assert violations["deployment/shop/cart"].evidence == "container sidecar: runAsUser 0"
    assert violations["statefulset/shop/db"].evidence == "container app: neither runAsNonRoot nor runAsUser"


# -- pod-privilege-escalation ---------------------------------------------------------------------------------------


def test_pod_privilege_escalation_compliant(cluster: ClusterUnderTest) -> None:
    assert found(cluster, "pod-privilege-escalation", workload("Deployment", "shop", "cart")) == {}


def test_pod_privilege_escalation_non_compliant(cluster: ClusterUnderTest) -> None:
    spec = pod_spec(
        container("app", securityContext={}), container("sidecar", securityContext={"allowPrivilegeEscalation": True})
    )
    violations = found(cluster, "pod-privilege-escalation", workload("Deployment", "shop", "cart", spec))
    assert violations["deployment/shop/cart"].evidence == (
        "container app: allowPrivilegeEscalation not set (true); container sidecar: allowPrivilegeEscalation true"
    )


# -- pod-container-socket -------------------------------------------------------------------------------------------


def test_pod_container_socket_compliant(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "pod-container-socket",
            workload("Deployment", "shop", "logs", host_path_spec("/var/log", read_only=True)),
            workload("Deployment", "shop", "data", host_path_spec("/var/run/app", read_only=True)),
            workload("DaemonSet", "kube-system", "runtime-agent", host_path_spec("/run/containerd", read_only=True)),
        )
        == {}
    )


def test_pod_container_socket_non_compliant(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "pod-container-socket",
        workload("Deployment", "ci", "builder", host_path_spec("/var/run/docker.sock", read_only=True)),
        workload("DaemonSet", "ci", "scanner", host_path_spec("/run/containerd/", read_only=True)),
    )
    assert violations["deployment/ci/builder"].evidence == "volume host: /var/run/docker.sock"
    assert violations["daemonset/ci/scanner"].evidence == (
        "volume host: /run/containerd/ (holds /run/containerd/containerd.sock)"
    )


# -- pod-secrets-in-env ---------------------------------------------------------------------------------------------


def test_pod_secrets_in_env_compliant(cluster: ClusterUnderTest) -> None:
    env = [
        {"name": "MODE", "value": "prod"},
        {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ]
    volume = {"name": "db", "secret": {"secretName": "db"}}
    spec = pod_spec(container(env=env, volumeMounts=[{"name": "db", "mountPath": "/secrets"}]), volumes=[volume])
    assert found(cluster, "pod-secrets-in-env", workload("Deployment", "shop", "cart", spec)) == {}


def test_pod_secrets_in_env_non_compliant(cluster: ClusterUnderTest) -> None:
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    spec = pod_spec(container(env=env), initContainers=[container("migrate", envFrom=[{"secretRef": {"name": "api"}}])])
    violations = found(cluster, "pod-secrets-in-env", workload("Deployment", "shop", "cart", spec))
    assert violations["deployment/shop/cart"].evidence == (
        "init container migrate: all of secret api; container app: DB_PASSWORD from secret db"
    )


# -- pod-added-capabilities -----------------------------------------------------------------------------------------


def test_pod_added_capabilities_compliant(cluster: ClusterUnderTest) -> None:
    low_port = container(securityContext={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CAP_CHOWN"]}})
    assert found(cluster, "pod-added-capabilities", workload("Deployment", "shop", "web", pod_spec(low_port))) == {}


def test_pod_added_capabilities_non_compliant(cluster: ClusterUnderTest) -> None:
    admin = container(securityContext={"capabilities": {"add": ["CAP_SYS_ADMIN", "net_admin", "CHOWN"]}})
    violations = found(cluster, "pod-added-capabilities", workload("Deployment", "shop", "vpn", pod_spec(admin)))
    assert violations["deployment/shop/vpn"].evidence == "container app: adds NET_ADMIN, SYS_ADMIN"


# -- pod-service-account-token ----------------------------------------------------------------------------------------


def sa(namespace: str, name: str, automount: bool | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    if automount is not None:
        obj["automountServiceAccountToken"] = automount
    return obj


def test_pod_service_account_token_compliant(cluster: ClusterUnderTest) -> None:
    inherit = deep_merge(pod_spec(serviceAccountName="cart"), {})
    inherit.pop("automountServiceAccountToken")
    assert (
        found(
            cluster,
            "pod-service-account-token",
            workload("Deployment", "shop", "web"),  # the pod says false
            sa("shop", "cart", automount=False),
            workload("Deployment", "shop", "cart", inherit),  # its service account says false
        )
        == {}
    )


def test_pod_service_account_token_non_compliant(cluster: ClusterUnderTest) -> None:
    inherit = pod_spec(serviceAccountName="cart")
    inherit.pop("automountServiceAccountToken")
    violations = found(
        cluster,
        "pod-service-account-token",
        sa("shop", "cart", automount=None),
        workload("Deployment", "shop", "cart", inherit),
        # the pod's true wins over its service account's false
        sa("shop", "quiet", automount=False),
        workload("Deployment", "shop", "api", pod_spec(serviceAccountName="quiet", automountServiceAccountToken=True)),
        pod("shop", "debug", {"containers": [container()]}),  # the default service account, which does not exist yet
    )
    assert set(violations) == {"deployment/shop/cart", "deployment/shop/api", "pod/shop/debug"}
    assert violations["deployment/shop/cart"].evidence == (
        "mounts the token of service account cart (automountServiceAccountToken not false)"
    )
    assert "service account default" in violations["pod/shop/debug"].evidence
