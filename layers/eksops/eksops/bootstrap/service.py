"""Bootstraps EKS clusters: IAM for node and Fargate logging, then server-side apply of the baseline manifests.

Level- and edge-triggered: a CloudTrail CreateCluster / CreateNodegroup / CreateFargateProfile reconciles that
cluster at once (or skips it, with a log line, while it is not ACTIVE yet); the schedule reconciles every
cluster. The tag eksops:bootstrap=<manifest version> records success: a reconcile of a tagged cluster only
reads (every object still there, namespaces labelled) and applies when something is missing or the shipped
manifest version is newer.

eksops applies only what is its own. Before applying, it reads each object it would apply: a component (the
CloudWatch agent, Fluent Bit, metrics-server, Fargate logging, a default-deny policy) of which any object is
managed by Helm, an EKS add-on or another tool (eksops.kube.apply.foreign_owner), or whose EKS add-on is installed
(DescribeAddon), is left whole and reported as a warning; conflicts are forced only on objects eksops owns or
creates.

One cluster's failure (no access, an endpoint that cannot be reached, anything else) never stops the sweep: it is
recorded as that cluster's error, the other clusters are bootstrapped and reported, and the invocation fails at
the end (Summary.raise_for_errors). Every request to a cluster's API has a timeout (eksops.kube.auth) and each
cluster a time budget (CLUSTER_BUDGET_SECONDS).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.bootstrap.config import BootstrapConfig
from eksops.config import CommonConfig
from eksops.errors import PartialFailure, PermanentError, TemporaryError, UnsupportedEvent
from eksops.events import AnyEvent, CloudTrailCall, ScheduledRun, cluster_name
from eksops.kube import manifests
from eksops.kube.apply import (
    Owner,
    apply_manifests,
    delete_managed,
    foreign_owner,
    read_objects,
    ref_of,
)
from eksops.kube.errors import AccessDenied, principal_arn, raise_for_status
from eksops.names import is_cluster_name
from eksops.notify import Message, Publisher, Severity
from eksops.sweeps import Deadline

FUNCTION = "cluster_bootstrap"
TAG = "eksops:bootstrap"
EVENTS = {"CreateCluster": "name", "CreateNodegroup": "clusterName", "CreateFargateProfile": "clusterName"}
CLOUDWATCH_AGENT_POLICY = "CloudWatchAgentServerPolicy"
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"
# EKS community add-ons that install a component eksops also ships (EKS user guide, "Community add-ons"): with one of
# them installed, eksops leaves its own version of that component out. The Fluent Bit add-on runs in its own
# namespace (fluent-bit), so no object name collides, but two log shippers on every node would send each line twice.
METRICS_SERVER_ADDON = "metrics-server"
FLUENT_BIT_ADDON = "fluent-bit"
# Kubernetes work on one cluster stops (TemporaryError) once this is spent; each request has its own timeout too.
CLUSTER_BUDGET_SECONDS = 120.0
# A request already in flight when the budget runs out may still take its read timeouts and retries.
IN_FLIGHT_SECONDS = 60.0
# The sweep starts a cluster only if its whole budget fits before the invocation's checkpoint margin.
CLUSTER_START_MS = int((CLUSTER_BUDGET_SECONDS + IN_FLIGHT_SECONDS) * 1000)
MAX_ERROR_MESSAGE = 1000
# Bearer tokens and presigned-URL credentials, should an exception's text ever carry one.
_SECRETS = re.compile(
    r"k8s-aws-v1\.[A-Za-z0-9_-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+|(?i:X-Amz-(?:Signature|Credential|Security-Token))=[^&\s'\"]+"
)

log = logging.getLogger(__name__)


@dataclass
class ClusterResult:
    status: str  # bootstrapped, unchanged, not-active, gone, failed
    aws: list[str] = field(default_factory=list)
    kubernetes: dict[str, int] = field(default_factory=dict)
    changed_objects: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Components eksops left to another installer: {"component", "owner", "sign", "object", "objects"}.
    left: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """What one cluster gets, from its EKS description."""

    fargate: bool  # it has Fargate profiles: aws-observability and the aws-logging ConfigMap
    metrics_server_on_fargate: bool  # a Fargate profile selects metrics-server's pods: secure port 10251
    observability: bool  # the CloudWatch agent and Fluent Bit manifests
    addons: frozenset[str] = frozenset()  # installed EKS add-ons of components eksops ships (METRICS_SERVER_ADDON...)


@dataclass(frozen=True)
class Component:
    """Objects that go on a cluster together. eksops applies all of them, or none when another installer has any of
    them or its EKS add-on (``addons``) is installed. Namespaces do not decide: they hold others' objects too.
    ``shared``: objects of others on which eksops only sets labels (Pod Security); never left whole."""

    name: str
    docs: tuple[dict[str, Any], ...]
    addons: tuple[str, ...] = ()
    shared: bool = False


@dataclass(frozen=True)
class Left:
    """A component eksops leaves to ``owner``, as ``sign`` on ``ref`` shows; ``docs``: what it does not apply."""

    component: Component
    owner: Owner
    ref: str
    docs: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component.name,
            "owner": self.owner.who,
            "sign": self.owner.sign,
            "object": self.ref,
            "objects": [ref_of(d) for d in self.docs],
        }

    def warning(self) -> str:
        where = f" on {self.ref}" if self.ref else ""
        return (
            f"{self.component.name} is installed by {self.owner.who} ({self.owner.sign}{where}): eksops leaves it"
            f" and applies none of its {len(self.docs)} object(s); remove that installation for eksops to manage"
            f" {self.component.name}, or keep it and ignore this warning"
        )


def node_policy_arn(partition: str) -> str:
    """The AWS managed policy nodes need for the CloudWatch agent (Container Insights) and Fluent Bit."""
    return f"arn:{partition}:iam::aws:policy/{CLOUDWATCH_AGENT_POLICY}"


def attach_policy(iam: Any, role_arn: str, policy_arn: str, *, dry_run: bool) -> list[str]:
    """Attach ``policy_arn`` to the role unless it is attached already; returns what was (or would be) done.

    Also used by compliance_sweep's remediation of a node role without the policy (one copy of this logic).
    """
    role = role_arn.rsplit("/", 1)[-1]
    attached = {
        p["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
        for p in page.get("AttachedPolicies", [])
    }
    if policy_arn in attached:
        return []
    if not dry_run:
        iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
    return [f"attached {policy_arn.rsplit('/', 1)[-1]} to role {role}"]


def safe_message(exc: BaseException) -> str:
    """An exception's text for reports and alerts: tokens and signatures redacted, bounded in length."""
    text = str(exc) or type(exc).__name__
    text = _SECRETS.sub("[redacted]", text)
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 3] + "..."


@dataclass
class Summary:
    dry_run: bool
    clusters: dict[str, ClusterResult] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)  # clusters whose warnings are new: reported, not only logged
    skipped: list[dict[str, str | None]] = field(default_factory=list)  # failed API calls: nothing done

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "clusters": {k: v.__dict__ for k, v in self.clusters.items()},
            "errors": self.errors,
            "deferred": self.deferred,
            "warned": self.warned,
            "skipped": self.skipped,
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
        with deadline.bounding_calls():  # AWS calls leave the margin to the report (eksops.aws.budget)
            if isinstance(event, CloudTrailCall) and event.error_code:
                self._skip_failed_call(event, summary)
            elif isinstance(event, CloudTrailCall):
                name = self._cluster_of(event)
                if self.cfg.manages(name):
                    try:
                        self.bootstrap(name, summary, force=True)
                    except AccessDenied as exc:  # raised on: retried, then dead-lettered; the operator is told now
                        self._alert_access_denied(name, safe_message(exc))
                        raise
            elif isinstance(event, ScheduledRun):
                self.sweep(summary, deadline)
            else:
                raise UnsupportedEvent(
                    f"{FUNCTION} does not continue sweeps; got a continuation for {event.function[:80]!r}"
                )
            self._report(summary, event.id or uuid.uuid4().hex)
        return summary

    @staticmethod
    def _name_key(call: CloudTrailCall) -> str:
        """The request parameter that names the cluster, for the calls this function handles."""
        if call.source != "aws.eks" or call.event_name not in EVENTS:
            raise UnsupportedEvent(
                f"{FUNCTION} handles aws.eks {sorted(EVENTS)}, not {call.source[:80]} {call.event_name[:80]}"
            )
        return EVENTS[call.event_name]

    def _cluster_of(self, call: CloudTrailCall) -> str:
        key = self._name_key(call)
        return cluster_name(call.request_parameters.get(key), f"detail.requestParameters.{key}")

    def _skip_failed_call(self, call: CloudTrailCall, summary: Summary) -> None:
        """A failed call created nothing: whatever cluster it names (it may have failed for that very name, or
        because the name is taken) is not this event's to act on. Reported in the summary; nothing is changed."""
        name = call.request_parameters.get(self._name_key(call))
        cluster = name if is_cluster_name(name) else None
        code = (call.error_code or "")[:100]
        log.info("the %s call for %s failed (%s): nothing to do", call.event_name, cluster or "a cluster", code)
        summary.skipped.append({"call": call.event_name, "error_code": code, "cluster": cluster})

    def sweep(self, summary: Summary, deadline: Deadline) -> None:
        for page in self._eks.get_paginator("list_clusters").paginate():
            for name in page.get("clusters", []):
                if not self.cfg.manages(name):
                    continue
                if deadline.remaining_ms() < deadline.margin_ms + CLUSTER_START_MS:
                    summary.deferred.append(name)  # the next run (every 15 minutes) picks these up
                    continue
                try:
                    self.bootstrap(name, summary, force=False)
                except Exception as exc:  # one cluster's failure must not stop the others
                    error = "AccessDenied" if isinstance(exc, AccessDenied) else type(exc).__name__
                    # The redacted text only: a traceback would carry the exception's text unredacted.
                    log.warning("cluster %s failed: %s: %s", name, error, safe_message(exc))
                    summary.errors.append({"cluster": name, "error": error, "message": safe_message(exc)})
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
        profile_names = self._list(
            self._eks.get_paginator("list_fargate_profiles"), "fargateProfileNames", clusterName=name
        )
        profiles = [
            self._eks.describe_fargate_profile(clusterName=name, fargateProfileName=p)["fargateProfile"]
            for p in profile_names
        ]
        result.aws += self._node_roles(name, nodegroups)
        result.aws += self._fargate_roles(profiles)
        observability = self._wants_observability_manifests(name, result)
        plan = Plan(
            fargate=bool(profiles),
            metrics_server_on_fargate=_selects_metrics_server(profiles),
            observability=observability,
            addons=self._component_addons(name, observability=observability),
        )
        # Add-on mode, add-on not there yet: make sure it can be installed before eksops' own agent and Fluent Bit
        # are removed (_kubernetes), then install it: never both, and never neither for lack of an add-on version.
        switch_to_addon = self.cfg.observability == "addon" and not self._addon_installed(name)
        if switch_to_addon:
            self._check_addon_available(name, cluster)
        self._kubernetes(name, cluster, result, plan, force=force, remove_observability=switch_to_addon)
        if switch_to_addon:
            result.aws += self._create_addon(name)
        if result.aws or result.changed_objects:
            result.status = "bootstrapped"
        tagged = cluster.get("tags", {}).get(TAG) == manifests.MANIFEST_VERSION
        if result.warnings and (force or not tagged):
            summary.warned.append(name)
        if not self.common.dry_run and not tagged:
            self._eks.tag_resource(resourceArn=cluster["arn"], tags={TAG: manifests.MANIFEST_VERSION})

    @staticmethod
    def _list(paginator: Any, key: str, **kwargs: Any) -> list[str]:
        return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    # -- AWS side ---------------------------------------------------------------------------------------------

    def _attach(self, role_arn: str, policy_arn: str) -> list[str]:
        return attach_policy(self._iam, role_arn, policy_arn, dry_run=self.common.dry_run)

    def _node_roles(self, cluster: str, nodegroups: list[str]) -> list[str]:
        policy = node_policy_arn(self._partition())
        changes: list[str] = []
        for roles in {
            self._eks.describe_nodegroup(clusterName=cluster, nodegroupName=ng)["nodegroup"]["nodeRole"]
            for ng in nodegroups
        }:
            changes += self._attach(roles, policy)
        return changes

    def _fargate_roles(self, profiles: list[dict[str, Any]]) -> list[str]:
        if not profiles or not self.cfg.fargate_logging_policy_arn:
            return []
        changes: list[str] = []
        for role in {p["podExecutionRoleArn"] for p in profiles}:
            changes += self._attach(role, self.cfg.fargate_logging_policy_arn)
        return changes

    def _addon_installed(self, cluster: str, addon: str = OBSERVABILITY_ADDON) -> bool:
        try:
            self._eks.describe_addon(clusterName=cluster, addonName=addon)
        except ClientError as exc:
            # A missing add-on is ResourceNotFoundException, HTTP 404; an emulator without add-ons answers a bare 404.
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error_code(exc) == "ResourceNotFoundException" or status == 404:
                return False
            raise
        return True

    def _component_addons(self, cluster: str, *, observability: bool) -> frozenset[str]:
        """The EKS add-ons installed on ``cluster`` that install a component eksops would apply (DescribeAddon:
        the function's role may describe add-ons; it is not allowed eks:ListAddons)."""
        names = [METRICS_SERVER_ADDON] + ([FLUENT_BIT_ADDON] if observability else [])
        return frozenset(addon for addon in names if self._addon_installed(cluster, addon))

    def _addon(self, cluster: str) -> list[str]:
        return [] if self._addon_installed(cluster) else self._create_addon(cluster)

    def _check_addon_available(self, name: str, cluster: Mapping[str, Any]) -> None:
        """Raise PermanentError when EKS offers no version of the add-on for the cluster's Kubernetes version."""
        version = cluster.get("version")
        offered = self._eks.describe_addon_versions(
            addonName=OBSERVABILITY_ADDON, **({"kubernetesVersion": version} if version else {})
        ).get("addons", [])
        if not any(addon.get("addonVersions") for addon in offered):
            raise PermanentError(
                f"EKS offers no {OBSERVABILITY_ADDON} add-on version for cluster {name!r} (Kubernetes {version}):"
                " eksops keeps its own CloudWatch agent and Fluent Bit there; upgrade the cluster or set"
                " BootstrapObservability=manifests"
            )

    def _create_addon(self, cluster: str) -> list[str]:
        if not self.common.dry_run:
            self._eks.create_addon(clusterName=cluster, addonName=OBSERVABILITY_ADDON, resolveConflicts="OVERWRITE")
        return [f"installed the {OBSERVABILITY_ADDON} add-on"]

    def _wants_observability_manifests(self, cluster: str, result: ClusterResult) -> bool:
        """Manifests mode, unless the add-on is there already: never both (add-on mode: never the manifests)."""
        if self.cfg.observability != "manifests":
            return False
        if not self._addon_installed(cluster):
            return True
        result.warnings.append(
            f"the {OBSERVABILITY_ADDON} EKS add-on is installed, so eksops did not apply its CloudWatch agent and"
            " Fluent Bit manifests (never both); set BootstrapObservability=addon to use the add-on (eksops then"
            " removes the agent and Fluent Bit objects it applied earlier), or remove the add-on"
        )
        log.warning("cluster %s: %s", cluster, result.warnings[-1])
        return False

    def _partition(self) -> str:
        return str(self._eks.meta.partition)

    # -- Kubernetes side --------------------------------------------------------------------------------------

    def desired(self, name: str, region: str, namespaces: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
        """Every object the cluster should have, rendered for it. ``namespaces``: the metadata of each namespace."""
        return [doc for component in self.components(name, region, namespaces, plan) for doc in component.docs]

    def components(self, name: str, region: str, namespaces: list[dict[str, Any]], plan: Plan) -> list[Component]:
        """What the cluster should have, by component (see Component), rendered for it."""
        found: list[Component] = []
        if plan.observability:
            found.append(Component("CloudWatch agent", tuple(manifests.render_container_insights(name, region))))
            found.append(
                Component("Fluent Bit", tuple(manifests.render_fluent_bit(name, region)), addons=(FLUENT_BIT_ADDON,))
            )
        metrics_server = manifests.render_metrics_server(plan.metrics_server_on_fargate)
        found.append(Component("metrics-server", tuple(metrics_server), addons=(METRICS_SERVER_ADDON,)))
        if plan.fargate:
            found.append(Component("Fargate logging", tuple(manifests.render_fargate_logging(name, region))))
        labels = manifests.pod_security_labels(self.cfg.psa_enforce, self.cfg.psa_warn, self.cfg.psa_audit)
        pod_security: list[dict[str, Any]] = []
        for meta in namespaces:
            ns = str(meta["name"])
            if ns in manifests.PROTECTED_NAMESPACES:
                continue
            if self.cfg.labels_pod_security(ns):
                if manifests.may_set_pod_security(meta):
                    pod_security.append(manifests.namespace_with_pod_security(ns, labels))
                else:
                    log.info("namespace %s: its owner set its Pod Security labels; eksops leaves them", ns)
            if any(fnmatch.fnmatchcase(ns, g) for g in self.cfg.deny_namespaces):
                deny = manifests.default_deny(ns, egress=self.cfg.deny_egress)
                found.append(Component(f"the default-deny NetworkPolicy of namespace {ns}", (deny,)))
        if pod_security:
            found.append(Component("Pod Security labels", tuple(pod_security), shared=True))
        return found

    def _kubernetes(
        self,
        name: str,
        cluster: dict[str, Any],
        result: ClusterResult,
        plan: Plan,
        *,
        force: bool,
        remove_observability: bool = False,
    ) -> None:
        deadline = time.monotonic() + CLUSTER_BUDGET_SECONDS
        region = str(cluster.get("arn", "::::").split(":")[3]) or str(self._eks.meta.region_name)
        try:
            from kubernetes.dynamic import DynamicClient

            api = self._api_client(name)
            if remove_observability:
                self._remove_observability_manifests(api, name, region, result, deadline)
            dynamic = DynamicClient(api)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
            namespaces = [
                n["metadata"]
                for n in dynamic.resources.get(api_version="v1", kind="Namespace").get().to_dict()["items"]
            ]
            components = self.components(name, region, namespaces, plan)
            found = read_objects(api, [d for c in components for d in c.docs], deadline=deadline)
            docs, left = _own_part(components, found, plan.addons)
            self._warn_left(name, result, left)
            current = cluster.get("tags", {}).get(TAG) == manifests.MANIFEST_VERSION
            if not force and current and _all_present(docs, found):
                result.kubernetes = {"unchanged": len(docs), **_left_count(left)}
                return
            # Force only where eksops owns the object (or creates it): a namespace or a Pod Security label set
            # that others own too is applied without force, and a conflict there leaves it as it is.
            applied = apply_manifests(api, docs, dry_run=self.common.dry_run, deadline=deadline, force="owned")
        except Exception as exc:
            cause = exc if hasattr(exc, "status") else exc.__cause__
            if cause is not None:
                raise_for_status(cause, name, self._principal_arn())
            _raise_if_unreachable(exc, name, cluster)
            raise
        result.kubernetes = {o: applied.count(o) for o in ("created", "configured", "unchanged")}
        result.kubernetes.update(_left_count(left))
        if applied.conflicts:
            result.kubernetes["conflict"] = len(applied.conflicts)
        result.changed_objects += [o.ref for o in applied.objects if o.outcome in ("created", "configured")]
        for obj in applied.conflicts:
            result.warnings.append(
                f"{obj.ref} is left as it is: another field manager owns a field eksops sets ({obj.message})"
            )
            log.warning("cluster %s: %s", name, result.warnings[-1])

    @staticmethod
    def _warn_left(name: str, result: ClusterResult, left: list[Left]) -> None:
        for part in left:
            result.left.append(part.as_dict())
            result.warnings.append(part.warning())
            log.warning("cluster %s: %s", name, result.warnings[-1])

    def _remove_observability_manifests(
        self, api: Any, name: str, region: str, result: ClusterResult, deadline: float
    ) -> None:
        """Add-on mode: delete the CloudWatch agent and Fluent Bit objects eksops applied in manifests mode.

        The namespace amazon-cloudwatch stays: the add-on installs into it.
        """
        docs = [d for d in manifests.render_observability(name, region) if d["kind"] != "Namespace"]
        deleted, kept = delete_managed(api, docs, dry_run=self.common.dry_run, deadline=deadline)
        result.changed_objects += [f"deleted {ref}" for ref in deleted]
        if kept:
            result.warnings.append(
                f"left in place although the {OBSERVABILITY_ADDON} add-on replaces them: {', '.join(kept)}"
            )

    def _principal_arn(self) -> str:
        if self._principal is None:
            self._principal = principal_arn(str(self._sts.get_caller_identity()["Arn"]))
        return self._principal

    # -- reporting --------------------------------------------------------------------------------------------

    def _alert_access_denied(self, cluster: str, message: str) -> None:
        self._publisher.alert(
            Message(
                kind="bootstrap.access-denied",
                severity=Severity.CRITICAL,
                title=f"eksops cannot reach Kubernetes on {cluster}",
                summary=message,
                cluster=cluster,
            )
        )

    def _report(self, summary: Summary, run_id: str) -> None:
        for error in summary.errors:
            if error["error"] == "AccessDenied":
                self._alert_access_denied(error["cluster"], error["message"])
        if not summary.changed and not summary.errors and not summary.warned:
            return
        verb = "would bootstrap" if summary.dry_run else "bootstrapped"
        lines = tuple(
            f"{name}: {', '.join(r.aws + r.changed_objects[:20])}"
            for name, r in summary.clusters.items()
            if r.aws or r.changed_objects
        ) + tuple(f"{name}: warning: {w}" for name in summary.warned for w in summary.clusters[name].warnings)
        warned = f"; warnings on {', '.join(summary.warned)}" if summary.warned else ""
        self._publisher.report(
            Message(
                kind="bootstrap.changes",
                severity=Severity.WARNING if summary.errors or summary.warned else Severity.INFO,
                title=f"Cluster bootstrap: {verb} {len(summary.changed)} cluster(s)",
                summary=f"{verb}: {', '.join(summary.changed) or 'none'}; errors {len(summary.errors)}{warned}.",
                details={**summary.as_dict(), "run_id": run_id, "manifest_version": manifests.MANIFEST_VERSION},
                lines=lines,
            )
        )


def _selects_metrics_server(profiles: list[dict[str, Any]]) -> bool:
    """Whether a Fargate profile selects metrics-server's pods (namespace kube-system, its labels), which then run
    on Fargate, where 10250 is the micro-VM kubelet's port. EKS selector namespaces may hold * and ? wildcards."""
    pod_labels = manifests.metrics_server_pod_labels()
    return any(
        fnmatch.fnmatchcase("kube-system", str(selector.get("namespace", "")))
        and (selector.get("labels") or {}).items() <= pod_labels.items()
        for profile in profiles
        for selector in profile.get("selectors") or []
    )


def _raise_if_unreachable(exc: BaseException, name: str, cluster: dict[str, Any]) -> None:
    """Raise TemporaryError naming the endpoint when ``exc`` is a connection failure (urllib3) to the cluster."""
    import urllib3

    if isinstance(exc, urllib3.exceptions.HTTPError):
        endpoint = cluster.get("endpoint") or "its kubeconfig server"
        access = cluster.get("resourcesVpcConfig", {})
        private = access.get("endpointPublicAccess") is False
        hint = (
            "the endpoint is private-only: the function must run in the cluster's VPC (docs/cluster-bootstrap.md)"
            if private
            else "is the endpoint private, or its public access limited by CIDR? (docs/cluster-bootstrap.md)"
        )
        raise TemporaryError(
            f"cannot reach the Kubernetes API of cluster {name!r} at {endpoint}: {safe_message(exc)}; {hint}"
        ) from exc


def _all_present(docs: list[dict[str, Any]], found: Mapping[str, dict[str, Any] | None]) -> bool:
    """Whether every desired object exists (and namespaces carry their labels), from the objects read."""
    for doc in docs:
        live = found.get(ref_of(doc))
        if live is None:
            return False
        wanted = doc["metadata"].get("labels", {})
        if wanted.items() - (live.get("metadata", {}).get("labels") or {}).items():
            return False
    return True


def _component_owner(
    component: Component, found: Mapping[str, dict[str, Any] | None], addons: frozenset[str]
) -> tuple[Owner, str] | None:
    """Who else installed ``component`` and where that shows (an object's ref; "" for an EKS add-on), or None."""
    for addon in component.addons:
        if addon in addons:
            return Owner(f"the EKS add-on {addon}", f"eks:DescribeAddon {addon}"), ""
    # Workloads first: the Deployment or DaemonSet is what an operator knows the other installation by.
    for doc in sorted(component.docs, key=lambda d: d["kind"] not in ("Deployment", "DaemonSet")):
        if doc["kind"] == "Namespace":
            continue
        live = found.get(ref_of(doc))
        owner = foreign_owner(live) if live is not None else None
        if owner is not None:
            return owner, ref_of(doc)
    return None


def _own_part(
    components: list[Component], found: Mapping[str, dict[str, Any] | None], addons: frozenset[str]
) -> tuple[list[dict[str, Any]], list[Left]]:
    """The documents eksops applies, and the components it leaves to another installer.

    A left component's Namespace is still applied when something eksops applies lives in it (Fluent Bit in
    amazon-cloudwatch when the CloudWatch agent is Helm's): then it is not counted as left.
    """
    docs: list[dict[str, Any]] = []
    left: list[tuple[Component, Owner, str]] = []
    for component in components:
        other = None if component.shared else _component_owner(component, found, addons)
        if other is None:
            docs += component.docs
        else:
            left.append((component, *other))
    used = {d["metadata"].get("namespace") for d in docs}
    parts: list[Left] = []
    for component, owner, ref in left:
        namespaces = [d for d in component.docs if d["kind"] == "Namespace" and d["metadata"]["name"] in used]
        docs += namespaces
        parts.append(Left(component, owner, ref, tuple(d for d in component.docs if d not in namespaces)))
    return docs, parts


def _left_count(left: list[Left]) -> dict[str, int]:
    count = sum(len(part.docs) for part in left)
    return {"left": count} if count else {}
