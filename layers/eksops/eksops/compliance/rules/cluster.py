"""Compliance rules about the EKS cluster itself: API reachability, endpoint, logs, encryption, version, access."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.compliance.context import ClusterContext, ClusterUnreachable
from eksops.compliance.model import Category, KubePermission, Rule, Severity, Violation, register
from eksops.kube.errors import AccessDenied

NOT_FOUND = 404
OPEN_CIDRS = ("0.0.0.0/0", "::/0")
REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
# Kubernetes 1.28 and later: EKS envelope-encrypts all Kubernetes API data by default, with an AWS owned KMS key.
DEFAULT_ENCRYPTION_FROM = (1, 28)
POD_IDENTITY_ADDON = "eks-pod-identity-agent"
NEAR_DAYS = 90  # "near extended support": standard support ends within this many days

# EKS's Kubernetes release calendar (EKS user guide, "Understand the Kubernetes version lifecycle on EKS"; 1.35 from
# its announcement), as of November 2026: version -> (end of standard support, end of extended support). Only the
# fallback when DescribeClusterVersions does not answer. Versions older than the first had ended extended support
# by then; versions newer than the last are taken to be in standard support (14 months from their EKS release).
CALENDAR_AS_OF = "2026-11"
CALENDAR: dict[tuple[int, int], tuple[date, date]] = {
    (1, 29): (date(2025, 3, 23), date(2026, 3, 23)),
    (1, 30): (date(2025, 7, 23), date(2026, 7, 23)),
    (1, 31): (date(2025, 11, 26), date(2026, 11, 26)),
    (1, 32): (date(2026, 3, 23), date(2027, 3, 23)),
    (1, 33): (date(2026, 7, 29), date(2027, 7, 29)),
    (1, 34): (date(2026, 12, 2), date(2027, 12, 2)),
    (1, 35): (date(2027, 3, 27), date(2028, 3, 27)),
}


def today() -> date:
    """The UTC date the support windows are compared with (a function, so tests can fix it)."""
    return datetime.now(UTC).date()


def _resource(ctx: ClusterContext) -> str:
    return f"cluster/{ctx.name}"


def _version(raw: object) -> tuple[int, int] | None:
    parts = str(raw or "").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


@register
class KubernetesUnreachable(Rule):
    """Reads the namespaces (which the namespace rules read next anyway, from the memo). A connection failure or a
    401/403 is the finding; the service runs this rule first and skips the Kubernetes rules when it fires."""

    id = "cluster-kubernetes-unreachable"
    title = "eksops cannot read the cluster's Kubernetes API"
    severity = Severity.HIGH
    category = Category.CLUSTER
    why = (
        "Every Kubernetes check needs the API: a cluster eksops cannot reach or is not allowed into is a cluster "
        "nobody is sweeping, and cluster_bootstrap cannot keep its baseline there either."
    )
    fix = (
        "Unreachable: run the function where it can reach the endpoint (the cluster's VPC for a private endpoint) or "
        "add its egress address to publicAccessCidrs. Denied: create an access entry for eksops' role (aws eks "
        "create-access-entry, then associate-access-policy or the eksops RBAC manifest); the evidence gives the "
        "exact commands."
    )
    reference = "EKS BP: Security > Identity and Access Management (cluster access manager, access entries)"
    adds = (
        "hardeneks stops when its kubeconfig does not work; eksops reports the cluster as a finding, says why "
        "(endpoint, CIDRs, access entry) and sweeps the other clusters"
    )
    iam_actions = ("eks:DescribeCluster",)
    kube_permissions = (KubePermission("", "namespaces", ("list",)),)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        try:
            ctx.namespaces()
        except ClusterUnreachable as exc:
            yield Violation(_resource(ctx), f"{exc}; {_reachability_hint(ctx.cluster)}")
        except AccessDenied as exc:
            yield Violation(_resource(ctx), str(exc))


def _reachability_hint(cluster: Mapping[str, Any]) -> str:
    vpc = cluster.get("resourcesVpcConfig") or {}
    if vpc.get("endpointPublicAccess") is False:
        return "the endpoint is private only: the function must run in the cluster's VPC (or one peered with it)"
    cidrs = vpc.get("publicAccessCidrs") or []
    if cidrs and not set(cidrs) & set(OPEN_CIDRS):
        return f"public access is limited to {', '.join(cidrs)}: the function's egress address must be among them"
    return "the endpoint is public and open: check DNS and the function's network egress"


@register
class EndpointPublic(Rule):
    """Absent fields count as the CreateCluster defaults (public access on, from 0.0.0.0/0), which is what EKS
    itself reports for a cluster created without them. Never remediated: closing the endpoint can cut access."""

    id = "cluster-endpoint-public"
    title = "The cluster's API endpoint is public and open to the whole internet"
    severity = Severity.HIGH
    category = Category.CLUSTER
    why = (
        "An endpoint reachable from 0.0.0.0/0 exposes the Kubernetes API (and any authentication flaw in it) to "
        "every address on the internet."
    )
    fix = (
        "Make the endpoint private (endpointPrivateAccess true, endpointPublicAccess false), or limit public access "
        "to known CIDRs: aws eks update-cluster-config --name <cluster> --resources-vpc-config "
        "endpointPrivateAccess=true,publicAccessCidrs=<cidr>,... Keep eksops' own egress allowed. eksops never "
        "changes this itself: a wrong change locks everyone out."
    )
    reference = (
        "hardeneks: check_endpoint_public_access; EKS BP: Security > Identity and Access Management > "
        "Make the EKS Cluster Endpoint private"
    )
    adds = "only a public endpoint open to 0.0.0.0/0 or ::/0 is a finding: one limited to CIDRs is compliant"
    iam_actions = ("eks:DescribeCluster",)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        vpc = ctx.cluster.get("resourcesVpcConfig") or {}
        if vpc.get("endpointPublicAccess", True) is False:
            return
        cidrs = vpc.get("publicAccessCidrs") or ["0.0.0.0/0"]
        open_to = [c for c in cidrs if c in OPEN_CIDRS]
        if open_to:
            private = "on" if vpc.get("endpointPrivateAccess") else "off"
            yield Violation(
                _resource(ctx), f"public endpoint open to {', '.join(open_to)}; private endpoint access {private}"
            )


@register
class ControlPlaneLogs(Rule):
    """Checks the log types DescribeCluster reports as enabled. Not remediated: control-plane logs cost money
    (CloudWatch Logs ingestion), which is the operator's call."""

    id = "cluster-control-plane-logs"
    title = "Control-plane log types api, audit or authenticator are off"
    severity = Severity.MEDIUM
    category = Category.CLUSTER
    why = (
        "Without the audit and authenticator logs nobody can tell who did what to the cluster, and without the API "
        "server log failed requests leave no trace: investigations and detective controls start from these."
    )
    fix = (
        'aws eks update-cluster-config --name <cluster> --logging \'{"clusterLogging":[{"types":["api","audit",'
        '"authenticator"],"enabled":true}]}\' (controllerManager and scheduler are optional). log_retention then '
        "gives /aws/eks/<cluster>/cluster its retention."
    )
    reference = "hardeneks: check_logs_are_enabled; EKS BP: Security > Detective Controls > Enable audit logs"
    adds = "names the missing types (hardeneks only looks at the first entry's enabled flag)"
    iam_actions = ("eks:DescribeCluster",)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        entries = (ctx.cluster.get("logging") or {}).get("clusterLogging") or []
        enabled = {t for e in entries if e.get("enabled") for t in e.get("types") or []}
        missing = [t for t in REQUIRED_LOG_TYPES if t not in enabled]
        if missing:
            on = ", ".join(sorted(enabled)) or "none"
            yield Violation(_resource(ctx), f"control-plane log types off: {', '.join(missing)} (enabled: {on})")


@register
class SecretsEncryption(Rule):
    """A customer managed KMS key in encryptionConfig for "secrets" is compliant. From Kubernetes 1.28 EKS encrypts
    all API data by default with an AWS owned key, so there the finding is medium (key control and audit); before
    1.28 secrets have only the disk encryption of etcd, and it stays high."""

    id = "cluster-secrets-encryption"
    title = "Kubernetes secrets are not envelope-encrypted with your KMS key"
    severity = Severity.HIGH
    category = Category.CLUSTER
    why = (
        "Envelope encryption with a customer managed KMS key protects secrets in etcd with a key whose use you "
        "control, audit in CloudTrail and can revoke. Before Kubernetes 1.28 EKS adds no envelope encryption at all."
    )
    fix = (
        "aws eks associate-encryption-config --cluster-name <cluster> --encryption-config "
        '\'[{"resources":["secrets"],"provider":{"keyArn":"<kms key arn>"}}]\' (it cannot be undone; '
        "existing secrets are re-encrypted on their next write)."
    )
    reference = (
        "EKS BP: Security > Data encryption and secrets management > Encrypt Kubernetes secrets with AWS KMS "
        "(no hardeneks rule)"
    )
    adds = "a check hardeneks lacks; severity follows whether EKS's default envelope encryption (1.28+) applies"
    iam_actions = ("eks:DescribeCluster",)

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        for config in ctx.cluster.get("encryptionConfig") or []:
            if "secrets" in (config.get("resources") or []) and (config.get("provider") or {}).get("keyArn"):
                return
        version = _version(ctx.cluster.get("version"))
        if version is not None and version >= DEFAULT_ENCRYPTION_FROM:
            yield Violation(
                _resource(ctx),
                f"no KMS key for secrets; Kubernetes {ctx.cluster.get('version')} data is encrypted by EKS's default "
                "AWS owned key only",
                severity=Severity.MEDIUM,
            )
        else:
            yield Violation(
                _resource(ctx),
                f"no KMS key for secrets, and Kubernetes {ctx.cluster.get('version')} predates EKS's default "
                "envelope encryption (1.28)",
            )


@dataclass(frozen=True)
class _Support:
    status: str  # STANDARD_SUPPORT, EXTENDED_SUPPORT, UNSUPPORTED
    end_standard: date | None
    end_extended: date | None
    source: str


@register
class VersionSupport(Rule):
    """Asks EKS (DescribeClusterVersions) for the version's support status and dates. Where that API does not answer
    (HTTP 404 or UnknownOperationException: a partition or emulator without it), the dated CALENDAR in this module
    decides, and the evidence says so. Near = standard support ends within NEAR_DAYS days (medium); in extended
    support or past it, high."""

    id = "cluster-version-support"
    title = "Kubernetes version in or near EKS extended support"
    severity = Severity.MEDIUM
    category = Category.CLUSTER
    why = (
        "In extended support a cluster costs six times as much per hour, and at the end of it EKS upgrades the "
        "control plane on its own schedule; upgrades planned ahead are cheaper and safer."
    )
    fix = (
        "Upgrade one minor version at a time (aws eks update-cluster-version), after checking deprecated APIs and "
        "add-on versions (EKS cluster insights); then upgrade node groups and add-ons."
    )
    reference = "hardeneks: check_EKS_version; EKS BP: Cluster Upgrades"
    adds = (
        "uses EKS's own support dates (DescribeClusterVersions) rather than a fixed minimum version, and warns "
        f"{NEAR_DAYS} days before extended support starts"
    )
    iam_actions = ("eks:DescribeCluster", "eks:DescribeClusterVersions")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        raw = str(ctx.cluster.get("version") or "")
        version = _version(raw)
        if version is None:
            return
        support = self._from_api(ctx, raw) or _from_calendar(version)
        now = today()
        policy = ((ctx.cluster.get("upgradePolicy") or {}).get("supportType") or "").upper()
        if support.status == "UNSUPPORTED" or (support.end_extended and now >= support.end_extended):
            ended = f" on {support.end_extended}" if support.end_extended else ""
            yield Violation(
                _resource(ctx),
                f"Kubernetes {raw} ended extended support{ended}: EKS upgrades it automatically ({support.source})",
                severity=Severity.HIGH,
            )
        elif support.status == "EXTENDED_SUPPORT" or (support.end_standard and now >= support.end_standard):
            until = f" until {support.end_extended}" if support.end_extended else ""
            yield Violation(
                _resource(ctx),
                f"Kubernetes {raw} is in extended support{until}, at extended-support prices ({support.source})",
                severity=Severity.HIGH,
            )
        elif support.end_standard and (support.end_standard - now).days <= NEAR_DAYS:
            then = (
                "the cluster is upgraded then (upgrade policy STANDARD)"
                if policy == "STANDARD"
                else "extended support (extra cost) starts then"
            )
            yield Violation(
                _resource(ctx),
                f"Kubernetes {raw}: standard support ends {support.end_standard}, in "
                f"{(support.end_standard - now).days} days; {then} ({support.source})",
            )

    @staticmethod
    def _from_api(ctx: ClusterContext, raw: str) -> _Support | None:
        try:
            answer = ctx.aws("eks", "describe_cluster_versions", clusterVersions=[raw], includeAll=True)
        except ClientError as exc:
            http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if http == NOT_FOUND or error_code(exc) == "UnknownOperationException":
                return None  # the API is not offered here: the calendar decides
            raise
        for item in answer.get("clusterVersions") or []:
            if item.get("clusterVersion") == raw:
                status = str(item.get("versionStatus") or item.get("status") or "").upper().replace("-", "_")
                return _Support(
                    status,
                    _date(item.get("endOfStandardSupportDate")),
                    _date(item.get("endOfExtendedSupportDate")),
                    "DescribeClusterVersions",
                )
        return None


def _date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return None


def _from_calendar(version: tuple[int, int]) -> _Support:
    source = f"eksops' EKS calendar of {CALENDAR_AS_OF}"
    if version in CALENDAR:
        end_standard, end_extended = CALENDAR[version]
        return _Support("", end_standard, end_extended, source)
    if version < min(CALENDAR):
        return _Support("UNSUPPORTED", None, None, source)
    return _Support("STANDARD_SUPPORT", None, None, f"{source}: newer than its last version, taken as supported")


@register
class EksopsAccessEntry(Rule):
    """Only for authentication modes API and API_AND_CONFIG_MAP. A cluster in CONFIG_MAP mode, or one whose
    DescribeCluster has no accessConfig (clusters from before access entries; the sandbox's moto), has nothing to
    check here: whether eksops gets in at all is cluster-kubernetes-unreachable's question."""

    id = "cluster-eksops-access-entry"
    title = "No EKS access entry for eksops' role"
    severity = Severity.MEDIUM
    category = Category.CLUSTER
    why = (
        "Access entries are how EKS grants IAM principals access to Kubernetes; without one, eksops' role gets in "
        "only through the aws-auth ConfigMap (deprecated, easy to break with one bad edit) or not at all."
    )
    fix = (
        "aws eks create-access-entry --cluster-name <cluster> --principal-arn <eksops role arn> then either "
        "associate AmazonEKSClusterAdminPolicy or use --kubernetes-groups eksops-bootstrap with the eksops RBAC "
        "manifest (least privilege); see docs/cluster-bootstrap.md."
    )
    reference = "EKS BP: Security > Identity and Access Management > Use EKS access entries (no hardeneks rule)"
    adds = "checks eksops' own principal, by the role ARN behind its assumed-role session"
    iam_actions = ("eks:DescribeCluster", "eks:DescribeAccessEntry")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        mode = str((ctx.cluster.get("accessConfig") or {}).get("authenticationMode") or "")
        if mode not in ("API", "API_AND_CONFIG_MAP"):
            return
        principal = ctx.principal()
        found = ctx.aws_or_none(
            "eks", "describe_access_entry", "ResourceNotFoundException", clusterName=ctx.name, principalArn=principal
        )
        if found is None:
            also = (
                "; it may be mapped in aws-auth, which access entries replace" if mode == "API_AND_CONFIG_MAP" else ""
            )
            yield Violation(_resource(ctx), f"authentication mode {mode}: no access entry for {principal}{also}")


@register
class OidcProvider(Rule):
    """Compliant when the account has an IAM OIDC provider for the cluster's issuer, or when the cluster runs the EKS
    Pod Identity agent add-on (Pod Identity needs no OIDC provider)."""

    id = "cluster-oidc-provider"
    title = "No IAM OIDC provider for the cluster (IRSA) and no EKS Pod Identity agent"
    severity = Severity.LOW
    category = Category.CLUSTER
    why = (
        "Without IRSA or Pod Identity, pods that call AWS fall back to the node's instance role, so every pod on a "
        "node gets every permission any of them needs."
    )
    fix = (
        "Install the eks-pod-identity-agent add-on and use Pod Identity associations (preferred), or create the OIDC "
        "provider for IRSA: eksctl utils associate-iam-oidc-provider --cluster <cluster> --approve."
    )
    reference = (
        "EKS BP: Security > Identity and Access Management > Identities and credentials for EKS pods "
        "(hardeneks: check_aws_node_daemonset_service_account looks at its use by aws-node)"
    )
    adds = "checks the cluster-level prerequisite (provider or Pod Identity agent) from the AWS side"
    iam_actions = ("eks:DescribeCluster", "eks:ListAddons", "iam:ListOpenIDConnectProviders")

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        issuer = str(((ctx.cluster.get("identity") or {}).get("oidc") or {}).get("issuer") or "")
        if not issuer or POD_IDENTITY_ADDON in ctx.addons():
            return
        host = issuer.removeprefix("https://")
        providers = ctx.aws("iam", "list_open_id_connect_providers").get("OpenIDConnectProviderList") or []
        if not any(str(p.get("Arn", "")).endswith(f":oidc-provider/{host}") for p in providers):
            yield Violation(_resource(ctx), f"no IAM OIDC provider for {issuer}, and no {POD_IDENTITY_ADDON} add-on")
