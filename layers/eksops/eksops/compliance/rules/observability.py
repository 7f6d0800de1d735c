"""Compliance rules: observability agents (CloudWatch agent, Fluent Bit) and the metrics API HPAs depend on.

The agents are found by what they run, not only by where: a DaemonSet in any namespace whose name or container
image is the CloudWatch agent's (or Fluent Bit's) counts, so the bootstrap manifests, the
amazon-cloudwatch-observability add-on and a Helm install all pass. When no such DaemonSet runs, an ACTIVE
amazon-cloudwatch-observability add-on passes too (EKS reports its health). Findings are on ``cluster/<name>`` so a
finding keeps its identity from "missing" to "not ready".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from eksops.compliance.model import Category, KubePermission, Rule, Severity, Violation, register
from eksops.compliance.workloads import summarise

if TYPE_CHECKING:
    from eksops.compliance.context import ClusterContext

# eksops.bootstrap.service.OBSERVABILITY_ADDON (not imported: that module loads the whole bootstrap service)
OBSERVABILITY_ADDON = "amazon-cloudwatch-observability"
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
COMPUTE_TYPE = "eks.amazonaws.com/compute-type"  # "fargate" on Fargate's per-pod nodes, where DaemonSets never run


def _image_name(image: str) -> str:
    """``public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.3`` -> ``cloudwatch-agent``."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _readiness(daemonset: Mapping[str, Any]) -> tuple[int, int]:
    status = daemonset.get("status") or {}
    return int(status.get("numberReady") or 0), int(status.get("desiredNumberScheduled") or 0)


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class AgentRule(Rule):
    """An agent DaemonSet that must run on every EC2 node (Fargate nodes run no DaemonSets)."""

    names: ClassVar[frozenset[str]]  # DaemonSet names and image names that identify the agent
    agent: ClassVar[str]  # how the evidence names it
    category = Category.OBSERVABILITY
    severity = Severity.MEDIUM
    iam_actions = ("eks:ListAddons", "eks:DescribeAddon")
    kube_permissions = (KubePermission("apps", "daemonsets", ("list",)), KubePermission("", "nodes", ("list",)))

    def _matches(self, daemonset: Mapping[str, Any]) -> bool:
        if (daemonset.get("metadata") or {}).get("name") in self.names:
            return True
        containers = (((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        return any(_image_name(str(c.get("image", ""))) in self.names for c in containers)

    def problem(self, ctx: ClusterContext) -> str | None:
        """What is wrong with the agent's DaemonSets, or None when they run on every node they should."""
        nodes = [
            n
            for n in ctx.kube_list("v1", "nodes")
            if ((n.get("metadata") or {}).get("labels") or {}).get(COMPUTE_TYPE) != "fargate"
        ]
        if not nodes:
            return None  # no EC2 node to run on: Fargate logs through its own router (fargate-logging-configmap)
        found = [d for d in ctx.kube_list("apps/v1", "daemonsets") if self._matches(d)]
        if not found:
            return f"no {self.agent} DaemonSet"
        lagging = [f"{_ref(d)} ready on {r} of {w} nodes" for d in found for r, w in [_readiness(d)] if r < w]
        if lagging:
            return f"{self.agent} not ready: {summarise(lagging, 2)}"
        if all(_readiness(d)[1] == 0 for d in found):
            return f"{self.agent} DaemonSet {summarise([_ref(d) for d in found], 2)} runs on none of {len(nodes)} nodes"
        return None

    def addon(self, ctx: ClusterContext) -> tuple[bool, str]:
        """(the add-on is ACTIVE, how it stands) for the amazon-cloudwatch-observability add-on."""
        if OBSERVABILITY_ADDON not in ctx.addons():
            return False, f"no {OBSERVABILITY_ADDON} add-on"
        addon = ctx.aws("eks", "describe_addon", clusterName=ctx.name, addonName=OBSERVABILITY_ADDON)["addon"]
        status = str(addon.get("status", "UNKNOWN"))
        if status == "ACTIVE":
            return True, ""
        issues = [f"{i.get('code')}: {i.get('message')}" for i in (addon.get("health") or {}).get("issues") or []]
        return False, f"the {OBSERVABILITY_ADDON} add-on is {status}" + (f" ({summarise(issues, 2)})" if issues else "")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        problem = self.problem(ctx)
        if problem is None:
            return
        active, standing = self.addon(ctx)
        if not active:
            yield Violation(f"cluster/{ctx.name}", f"{problem}, and {standing}")


@register
class CloudWatchAgent(AgentRule):
    id = "observability-cloudwatch-agent"
    title = "CloudWatch agent (Container Insights) not running on every node"
    names = frozenset({"cloudwatch-agent"})
    agent = "CloudWatch agent"
    why = (
        "Without the CloudWatch agent there are no Container Insights metrics: no node or pod CPU and memory, no"
        " reserved-CPU alarms for node_scaler, no performance log group to investigate with."
    )
    fix = (
        "Let cluster_bootstrap apply its Container Insights manifests (BOOTSTRAP_OBSERVABILITY=manifests) or install"
        " the amazon-cloudwatch-observability add-on; if the DaemonSet exists, see why its pods are not ready"
        " (kubectl -n amazon-cloudwatch describe ds cloudwatch-agent): often the node role lacks"
        " CloudWatchAgentServerPolicy."
    )
    reference = "EKS BP: Reliability > Applications > Observability > Monitor your applications (Container Insights)"
    adds = "hardeneks does not check the agents; eksops checks readiness on every EC2 node and the add-on's health"


@register
class FluentBit(AgentRule):
    id = "observability-fluent-bit"
    title = "Fluent Bit not shipping container logs from every node"
    names = frozenset({"fluent-bit", "aws-for-fluent-bit"})
    agent = "Fluent Bit"
    why = (
        "Without Fluent Bit, container, host and data-plane logs stay on the nodes and go with them: nothing reaches"
        " the Container Insights log groups, and the error alarms of error_alarms see no errors."
    )
    fix = (
        "Let cluster_bootstrap apply its Fluent Bit manifests (BOOTSTRAP_OBSERVABILITY=manifests) or install the"
        " amazon-cloudwatch-observability add-on; if the DaemonSet exists, see why its pods are not ready"
        " (kubectl -n amazon-cloudwatch describe ds fluent-bit)."
    )
    reference = (
        "EKS BP: Reliability > Applications > Observability > Use centralized logging tools to collect and persist logs"
    )
    adds = "hardeneks does not check log shipping; eksops checks readiness on every EC2 node and the add-on's health"


@register
class MetricsServer(Rule):
    id = "observability-metrics-server"
    title = "HorizontalPodAutoscalers without a working metrics API"
    severity = Severity.MEDIUM
    category = Category.OBSERVABILITY
    why = (
        "HorizontalPodAutoscalers read CPU and memory from the metrics API that metrics-server serves: without it,"
        " or while it is unavailable, they cannot scale and only report FailedGetResourceMetric."
    )
    fix = (
        "Install metrics-server (cluster_bootstrap applies it, or the metrics-server EKS add-on); if the APIService"
        f" {METRICS_APISERVICE} is unavailable, see its status message (often the control plane cannot reach the"
        " pod on port 10250/10251: a security group or, on Fargate, the port)."
    )
    reference = (
        "hardeneks: check_metrics_server_is_running; EKS BP: Reliability > Applications > Run Kubernetes Metrics Server"
    )
    adds = (
        "checks that the metrics API is Available (hardeneks looks for a Service named metrics-server), and only"
        " reports while HPAs depend on it"
    )
    kube_permissions = (
        KubePermission("autoscaling", "horizontalpodautoscalers", ("list",)),
        KubePermission("apiregistration.k8s.io", "apiservices", ("get",)),
    )

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        hpas = ctx.kube_list("autoscaling/v2", "horizontalpodautoscalers")
        if not hpas:
            return
        depending = f"{len(hpas)} HorizontalPodAutoscaler(s) ({summarise([_ref(h) for h in hpas], 2)})"
        service = ctx.kube_get("apiregistration.k8s.io/v1", "apiservices", METRICS_APISERVICE)
        if service is None:
            yield Violation(
                f"cluster/{ctx.name}", f"{depending} but no APIService {METRICS_APISERVICE}: metrics-server is missing"
            )
            return
        available: Mapping[str, Any] = next(
            (c for c in (service.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), {}
        )
        if available.get("status") != "True":
            why = ": ".join(str(available[k]) for k in ("reason", "message") if available.get(k)) or "no status"
            yield Violation(f"cluster/{ctx.name}", f"{depending} but the metrics API is unavailable ({why})")
