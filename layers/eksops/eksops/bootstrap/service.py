"""Bootstraps EKS clusters: IAM for node and Fargate logging, then server-side apply of the baseline manifests.

Level- and edge-triggered: a CloudTrail CreateCluster / CreateNodegroup / CreateFargateProfile reconciles that
cluster at once (or skips it, with a log line, while it is not ACTIVE yet); the schedule reconciles every
cluster. The tag eksops:bootstrap=<manifest version> records success: a reconcile of a tagged cluster only
reads (every object still there, namespaces labelled) and applies when something is missing or the shipped
manifest version is newer.
"""

from __future__ import annotations

import fnmatch
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.bootstrap.config import BootstrapConfig
from eksops.config import CommonConfig
from eksops.errors import EksopsError, InvalidEvent, PartialFailure, UnsupportedEvent
from eksops.events import AnyEvent, CloudTrailCall, ScheduledRun
from eksops.kube import manifests
from eksops.kube.apply import apply_manifests
from eksops.kube.errors import AccessDenied, principal_arn, raise_for_status
from eksops.notify import Message, Publisher, Severity
from eksops.sweeps import Deadline

FUNCTION = "cluster_bootstrap"
TAG = "eksops:bootstrap"
EVENTS = {"CreateCluster": "name", "CreateNodegroup": "clusterName", "CreateFargateProfile": "clusterName"}
CLOUDWATCH_AGENT_POLICY = "CloudWatchAgentServerPolicy"
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"

log = logging.getLogger(__name__)


@dataclass
class ClusterResult:
    status: str  # bootstrapped, unchanged, not-active, gone, failed
    aws: list[str] = field(default_factory=list)
    kubernetes: dict[str, int] = field(default_factory=dict)
    changed_objects: list[str] = field(default_factory=list)


@dataclass
class Summary:
    dry_run: bool
    clusters: dict[str, ClusterResult] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "clusters": {k: v.__dict__ for k, v in self.clusters.items()},
            "errors": self.errors,
            "deferred": self.deferred,
        }

    @property
    def changed(self) -> list[str]:
        return [name for name, r in self.clusters.items() if r.aws or r.changed_objects]

    def counts(self) -> dict[str, int]:
        statuses = [r.status for r in self.clusters.values()]
        return {
            "bootstrapped": statuses.count("bootstrapped"),
            "unchanged": statuses.count("unchanged"),
            "not_active": statuses.count("not-active"),
            "errors": len(self.errors),
        }

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PartialFailure(f"{len(self.errors)} cluster(s) failed; see the alerts", self.errors)


class BootstrapService:
    def __init__(
        self,
        cfg: BootstrapConfig,
        common: CommonConfig,
        *,
        eks: Any,
        iam: Any,
        sts: Any,
        publisher: Publisher,
        api_client: Callable[[str], Any],
    ) -> None:
        self.cfg = cfg
        self.common = common
        self._eks = eks
        self._iam = iam
        self._sts = sts
        self._publisher = publisher
        self._api_client = api_client
        self._principal: str | None = None

    # -- entry point ------------------------------------------------------------------------------------------

    def handle(self, event: AnyEvent, deadline: Deadline) -> Summary:
        summary = Summary(dry_run=self.common.dry_run)
        if isinstance(event, CloudTrailCall):
            name = self._cluster_of(event)
            if self.cfg.manages(name):
                self.bootstrap(name, summary, force=True)  # an access error here raises: retried, dead-lettered
        elif isinstance(event, ScheduledRun):
            self.sweep(summary, deadline)
        else:
            raise UnsupportedEvent(f"{FUNCTION} does not continue sweeps; got a continuation for {event.function!r}")
        self._report(summary, event.id or uuid.uuid4().hex)
        return summary

    @staticmethod
    def _cluster_of(call: CloudTrailCall) -> str:
        if call.source != "aws.eks" or call.event_name not in EVENTS:
            raise UnsupportedEvent(f"{FUNCTION} handles aws.eks {sorted(EVENTS)}, not {call.source} {call.event_name}")
        key = EVENTS[call.event_name]
        name = call.request_parameters.get(key)
        if not isinstance(name, str) or not name:
            raise InvalidEvent("must be a cluster name", field=f"detail.requestParameters.{key}")
        return name

    def sweep(self, summary: Summary, deadline: Deadline) -> None:
        for page in self._eks.get_paginator("list_clusters").paginate():
            for name in page.get("clusters", []):
                if not self.cfg.manages(name):
                    continue
                if deadline.low():  # the next run (every 15 minutes) picks these up
                    summary.deferred.append(name)
                    continue
                try:
                    self.bootstrap(name, summary, force=False)
                except AccessDenied as exc:
                    summary.errors.append({"cluster": name, "error": "AccessDenied", "message": str(exc)})
                    summary.clusters[name] = ClusterResult("failed")
                except (EksopsError, ClientError) as exc:
                    summary.errors.append({"cluster": name, "error": type(exc).__name__, "message": str(exc)})
                    summary.clusters[name] = ClusterResult("failed")

    # -- one cluster ------------------------------------------------------------------------------------------

    def bootstrap(self, name: str, summary: Summary, *, force: bool) -> None:
        try:
            cluster = self._eks.describe_cluster(name=name)["cluster"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                summary.clusters[name] = ClusterResult("gone")
                return
            raise
        if cluster.get("status") != "ACTIVE":
            log.info("cluster %s is %s: skipped; the reconcile bootstraps it once ACTIVE", name, cluster.get("status"))
            summary.clusters[name] = ClusterResult("not-active")
            return
        result = ClusterResult("unchanged")
        summary.clusters[name] = result
        nodegroups = self._list(self._eks.get_paginator("list_nodegroups"), "nodegroups", clusterName=name)
        profiles = self._list(self._eks.get_paginator("list_fargate_profiles"), "fargateProfileNames", clusterName=name)
        result.aws += self._node_roles(name, nodegroups)
        result.aws += self._fargate_roles(name, profiles)
        if self.cfg.observability == "addon":
            result.aws += self._addon(name)
        self._kubernetes(
            name, cluster, result, fargate=bool(profiles), fargate_only=bool(profiles) and not nodegroups, force=force
        )
        if result.aws or result.changed_objects:
            result.status = "bootstrapped"
        if not self.common.dry_run and cluster.get("tags", {}).get(TAG) != manifests.MANIFEST_VERSION:
            self._eks.tag_resource(resourceArn=cluster["arn"], tags={TAG: manifests.MANIFEST_VERSION})

    @staticmethod
    def _list(paginator: Any, key: str, **kwargs: Any) -> list[str]:
        return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    # -- AWS side ---------------------------------------------------------------------------------------------

    def _attach(self, role_arn: str, policy_arn: str) -> list[str]:
        role = role_arn.rsplit("/", 1)[-1]
        attached = {
            p["PolicyArn"]
            for page in self._iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
            for p in page.get("AttachedPolicies", [])
        }
        if policy_arn in attached:
            return []
        if not self.common.dry_run:
            self._iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
        return [f"attached {policy_arn.rsplit('/', 1)[-1]} to role {role}"]

    def _node_roles(self, cluster: str, nodegroups: list[str]) -> list[str]:
        policy = f"arn:{self._partition()}:iam::aws:policy/{CLOUDWATCH_AGENT_POLICY}"
        changes: list[str] = []
        for roles in {
            self._eks.describe_nodegroup(clusterName=cluster, nodegroupName=ng)["nodegroup"]["nodeRole"]
            for ng in nodegroups
        }:
            changes += self._attach(roles, policy)
        return changes

    def _fargate_roles(self, cluster: str, profiles: list[str]) -> list[str]:
        if not profiles or not self.cfg.fargate_logging_policy_arn:
            return []
        changes: list[str] = []
        for role in {
            self._eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=p)["fargateProfile"][
                "podExecutionRoleArn"
            ]
            for p in profiles
        }:
            changes += self._attach(role, self.cfg.fargate_logging_policy_arn)
        return changes

    def _addon(self, cluster: str) -> list[str]:
        try:
            self._eks.describe_addon(clusterName=cluster, addonName=OBSERVABILITY_ADDON)
            return []
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        if not self.common.dry_run:
            self._eks.create_addon(clusterName=cluster, addonName=OBSERVABILITY_ADDON, resolveConflicts="OVERWRITE")
        return [f"installed the {OBSERVABILITY_ADDON} add-on"]

    def _partition(self) -> str:
        return str(self._eks.meta.partition)

    # -- Kubernetes side --------------------------------------------------------------------------------------

    def desired(
        self, name: str, region: str, namespaces: list[str], *, fargate: bool, fargate_only: bool
    ) -> list[dict[str, Any]]:
        """Every object the cluster should have, rendered for it."""
        docs: list[dict[str, Any]] = []
        if self.cfg.observability == "manifests":
            docs += manifests.render_observability(name, region)
        docs += manifests.render_metrics_server(fargate_only)
        if fargate:
            docs += manifests.render_fargate_logging(name, region)
        labels = manifests.pod_security_labels(self.cfg.psa_enforce, self.cfg.psa_warn, self.cfg.psa_audit)
        for ns in namespaces:
            if ns in manifests.PROTECTED_NAMESPACES:
                continue
            if any(fnmatch.fnmatchcase(ns, g) for g in self.cfg.psa_namespaces):
                docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
            if any(fnmatch.fnmatchcase(ns, g) for g in self.cfg.deny_namespaces):
                docs.append(manifests.default_deny(ns, egress=self.cfg.deny_egress))
        return docs

    def _kubernetes(
        self,
        name: str,
        cluster: dict[str, Any],
        result: ClusterResult,
        *,
        fargate: bool,
        fargate_only: bool,
        force: bool,
    ) -> None:
        try:
            from kubernetes.dynamic import DynamicClient

            api = self._api_client(name)
            dynamic = DynamicClient(api)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
            namespaces = [
                n["metadata"]["name"]
                for n in dynamic.resources.get(api_version="v1", kind="Namespace").get().to_dict()["items"]
            ]
            region = str(cluster.get("arn", "::::").split(":")[3]) or str(self._eks.meta.region_name)
            docs = self.desired(name, region, namespaces, fargate=fargate, fargate_only=fargate_only)
            current = cluster.get("tags", {}).get(TAG) == manifests.MANIFEST_VERSION
            if not force and current and _all_present(dynamic, docs):
                result.kubernetes = {"unchanged": len(docs)}
                return
            applied = apply_manifests(api, docs, dry_run=self.common.dry_run)
        except Exception as exc:
            cause = exc if hasattr(exc, "status") else exc.__cause__
            if cause is not None:
                raise_for_status(cause, name, self._principal_arn())
            raise
        result.kubernetes = {o: applied.count(o) for o in ("created", "configured", "unchanged")}
        result.changed_objects = [o.ref for o in applied.objects if o.outcome != "unchanged"]

    def _principal_arn(self) -> str:
        if self._principal is None:
            self._principal = principal_arn(str(self._sts.get_caller_identity()["Arn"]))
        return self._principal

    # -- reporting --------------------------------------------------------------------------------------------

    def _report(self, summary: Summary, run_id: str) -> None:
        for error in summary.errors:
            if error["error"] == "AccessDenied":
                self._publisher.alert(
                    Message(
                        kind="bootstrap.access-denied",
                        severity=Severity.CRITICAL,
                        title=f"eksops cannot reach Kubernetes on {error['cluster']}",
                        summary=error["message"],
                        cluster=error["cluster"],
                    )
                )
        if not summary.changed and not summary.errors:
            return
        verb = "would bootstrap" if summary.dry_run else "bootstrapped"
        lines = tuple(
            f"{name}: {', '.join(r.aws + r.changed_objects[:20])}"
            for name, r in summary.clusters.items()
            if r.aws or r.changed_objects
        )
        self._publisher.report(
            Message(
                kind="bootstrap.changes",
                severity=Severity.WARNING if summary.errors else Severity.INFO,
                title=f"Cluster bootstrap: {verb} {len(summary.changed)} cluster(s)",
                summary=f"{verb}: {', '.join(summary.changed) or 'none'}; errors {len(summary.errors)}.",
                details={**summary.as_dict(), "run_id": run_id, "manifest_version": manifests.MANIFEST_VERSION},
                lines=lines,
            )
        )


def _all_present(dynamic: Any, docs: list[dict[str, Any]]) -> bool:
    """Whether every desired object exists (and namespaces carry their labels): reads only."""
    from kubernetes.dynamic.exceptions import NotFoundError

    for doc in docs:
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        try:
            found = resource.get(name=doc["metadata"]["name"], namespace=namespace).to_dict()
        except NotFoundError:
            return False
        wanted = doc["metadata"].get("labels", {})
        if wanted.items() - (found["metadata"].get("labels") or {}).items():
            return False
    return True
