"""One EKS cluster in moto and its Kubernetes API in the emulator, both over HTTP, for compliance rule tests.

``cluster`` gives a :class:`ClusterUnderTest`: create AWS resources with ``aws(service)`` (moto clients), Kubernetes
objects with ``kube_create``, then ``violations(rule_id)`` runs one rule's check through a real ClusterContext
(memoised reads, budget) and returns what it found. ``context()`` gives that context for remediation tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.aws import client
from eksops.compliance.config import ComplianceConfig
from eksops.compliance.context import ClusterContext, Tools, kube_request
from eksops.compliance.model import Violation, rules
from eksops.config import CommonConfig
from eksops.kube.auth import api_client
from eksops_dev.kube import EksopsEmulator, serve

ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


class ClusterUnderTest:
    def __init__(self, name: str, kubeconfig: Path, emulator: EksopsEmulator) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.emulator = emulator
        self.settings = ComplianceConfig()
        self.common = CommonConfig(
            dry_run=False,
            alerts_topic_arn=None,
            reports_topic_arn=None,
            event_bus_name="default",
            function_name="compliance_sweep",
        )
        self.tools_extra: dict[str, Any] = {}

    # -- AWS ----------------------------------------------------------------------------------------------------

    @staticmethod
    def aws(service: str) -> Any:
        return client(service)

    def role(self, name: str | None = None, service: str = "eks.amazonaws.com") -> str:
        """An IAM role (trusting ``service``); returns its ARN."""
        policy = ROLE_POLICY.replace("eks.amazonaws.com", service)
        name = name or f"role-{uuid.uuid4().hex[:8]}"
        return str(client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=policy)["Role"]["Arn"])

    def create_cluster(self, **overrides: Any) -> dict[str, Any]:
        """The EKS cluster in moto (named ``self.name``), with ``overrides`` of CreateCluster's parameters."""
        params: dict[str, Any] = {
            "name": self.name,
            "version": "1.31",
            "roleArn": self.role(),
            "resourcesVpcConfig": {"subnetIds": ["subnet-1", "subnet-2"]},
            **overrides,
        }
        eks = client("eks")
        try:
            return eks.create_cluster(**params)["cluster"]  # type: ignore[no-any-return]
        except eks.exceptions.ResourceInUseException:
            # a retried request (the first one timed out on a loaded machine, after moto had created the cluster)
            return eks.describe_cluster(name=self.name)["cluster"]  # type: ignore[no-any-return]

    # -- Kubernetes ---------------------------------------------------------------------------------------------

    def api(self) -> Any:
        return api_client(self.name, eks_client=None, sts_client=None, kubeconfig=str(self.kubeconfig))

    def kube_create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` through the API (POST), as kubectl create would."""
        api_version, plural = obj["apiVersion"], _plural(obj["kind"])
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        namespace = obj.get("metadata", {}).get("namespace")
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        status, body = kube_request(self.api(), "POST", path, body=obj)
        assert status < 300, f"creating {obj['kind']} {obj['metadata'].get('name')}: HTTP {status} {body}"
        return body  # type: ignore[no-any-return]

    def namespace(
        self, name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
    ) -> None:
        meta: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}
        if annotations:
            meta["annotations"] = annotations
        self.kube_create({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    # -- running rules ------------------------------------------------------------------------------------------

    def context(self, **settings: Any) -> ClusterContext:
        from dataclasses import replace

        tools = Tools(
            aws=client,
            api_client=lambda name: api_client(name, eks_client=None, sts_client=None, kubeconfig=str(self.kubeconfig)),
            settings=replace(self.settings, **settings),
            common=self.common,
            **self.tools_extra,
        )
        return ClusterContext(self.name, tools, deadline=float("inf"), max_calls=10_000)

    def violations(self, rule_id: str, **settings: Any) -> list[Violation]:
        rule = rules()[rule_id]
        return list(rule.check(self.context(**settings)))


_PLURALS = {"NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets"}


def _plural(kind: str) -> str:
    return _PLURALS.get(kind) or (kind.lower() + ("es" if kind.endswith("s") else "s"))


def kubeconfig_file(path: Path, name: str, server: str) -> Path:
    """A kubeconfig at ``path`` whose one context, ``name``, points at ``server`` (a token user)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "test"}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def cluster(aws: str, tmp_path: Path) -> Iterator[ClusterUnderTest]:
    """A fresh moto account and a fresh Kubernetes emulator for one cluster named like ``c-1a2b3c4d``."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    with serve() as (url, emulator):
        kubeconfig = kubeconfig_file(tmp_path / "kubeconfig.json", name, url)
        yield ClusterUnderTest(name, kubeconfig, emulator)
