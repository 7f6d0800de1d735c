"""A sandbox cluster as a platform team's would look a few weeks in: what `eksops sweep` (and the demo) finds.

``seed_cluster`` creates, on a running sandbox, an ACTIVE EKS cluster with a Kubernetes API (the emulator), a managed
node group whose role lacks the CloudWatch agent policy, Container Insights log groups that never expire, and a few
namespaces and workloads with the drift compliance rules look for (no default-deny policy, a privileged container,
a single replica without requests). Everything is created through the APIs, as a real team would have done it.
"""

from __future__ import annotations

import json
from typing import Any

from eksops.compliance.context import kube_request

SUBNETS = ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]


def _role(sandbox: Any, name: str, service: str) -> str:
    iam = sandbox.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _create(api: Any, obj: dict[str, Any]) -> None:
    api_version, kind = obj["apiVersion"], obj["kind"]
    plural = {"NetworkPolicy": "networkpolicies"}.get(kind, kind.lower() + "s")
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    status, body = kube_request(api, "POST", path, body=obj)
    if status >= 300 and status != 409:  # 409: there already (a second seed of the same sandbox)
        raise RuntimeError(f"seeding {kind} {obj['metadata']['name']}: HTTP {status} {body}")


def _deployment(namespace: str, name: str, containers: list[dict[str, Any]], replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def seed_cluster(sandbox: Any, name: str = "demo") -> list[str]:
    """Create cluster ``name`` with its drift on the sandbox; returns one line per thing seeded."""
    from kubernetes import config as k8s_config

    eks, logs = sandbox.client("eks"), sandbox.client("logs")
    if name not in sandbox.kube_clusters:
        sandbox.add_kube_cluster(name)
    existing = eks.list_clusters().get("clusters", [])
    if name not in existing:
        eks.create_cluster(
            name=name,
            version="1.31",
            roleArn=_role(sandbox, f"{name}-cluster", "eks.amazonaws.com"),
            resourcesVpcConfig={"subnetIds": SUBNETS, "endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
        )
        eks.create_nodegroup(
            clusterName=name,
            nodegroupName="general",
            nodeRole=_role(sandbox, f"{name}-nodes", "ec2.amazonaws.com"),
            subnets=SUBNETS,
            scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
        )
    for kind in ("application", "host", "dataplane", "performance"):
        group = f"/aws/containerinsights/{name}/{kind}"
        if not logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups"):
            logs.create_log_group(logGroupName=group)
    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path), context=name)  # type: ignore[no-untyped-call]
    for namespace in ("kube-system", "payments", "web"):
        labels = {"kubernetes.io/metadata.name": namespace}
        _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
    requests = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    _create(
        api,
        _deployment(
            "payments",
            "payments-api",
            [{"name": "api", "image": "payments-api:1.4.2", "resources": requests}],
            replicas=2,
        ),
    )
    _create(
        api,
        _deployment(
            "web",
            "storefront",
            [{"name": "web", "image": "storefront:latest", "securityContext": {"privileged": True}}],
        ),
    )
    return [
        f"EKS cluster {name!r} (public endpoint open to 0.0.0.0/0) with node group 'general'"
        f" (role {name}-nodes without CloudWatchAgentServerPolicy)",
        f"Container Insights log groups of {name} that never expire",
        "namespaces payments and web without a default-deny NetworkPolicy or Pod Security labels",
        "deployment web/storefront: one replica, no resource requests, a privileged container on :latest",
    ]
