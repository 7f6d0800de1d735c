"""Kubernetes API failures mapped to eksops errors, with the fix spelled out for the operator."""

from __future__ import annotations

import re

from eksops.errors import PermanentError

UNAUTHORIZED = 401
FORBIDDEN = 403
_ARN_PARTITION = re.compile(r"^arn:(?P<partition>aws[a-z-]*):")
# The least-privilege access mode: the access entry (or aws-auth mapping) puts eksops in this Kubernetes group, which
# RBAC_MANIFEST binds to a ClusterRole listing only what eksops applies (template parameter BootstrapKubernetesAccess).
LEAST_PRIVILEGE_GROUP = "eksops-bootstrap"
RBAC_MANIFEST = "deploy/kubernetes/eksops-rbac.yaml"

# The caller identity of a Lambda function is an STS assumed-role ARN; access entries and aws-auth want the
# IAM role ARN. The session ARN carries no role path, so a role created under a path must be named with it.
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


class AccessDenied(PermanentError):
    """The cluster's API server answered 401 or 403 to eksops' identity. The message says what to create."""

    def __init__(self, cluster: str, principal_arn: str, status: int) -> None:
        self.cluster = cluster
        self.principal_arn = principal_arn
        self.status = status
        super().__init__(access_denied_message(cluster, principal_arn, status))


def principal_arn(arn: str) -> str:
    """The IAM principal an access entry names: the role ARN for an assumed-role session ARN, else ``arn``."""
    match = _ASSUMED_ROLE.match(arn)
    if not match:
        return arn
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def partition_of(arn: str) -> str:
    """The partition of an ARN (``aws``, ``aws-cn``, ``aws-us-gov``...); ``aws`` when it is not an ARN."""
    match = _ARN_PARTITION.match(arn)
    return match["partition"] if match else "aws"


def cluster_admin_policy(partition: str = "aws") -> str:
    """The ARN of the EKS access policy AmazonEKSClusterAdminPolicy in ``partition``."""
    return f"arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def access_denied_message(cluster: str, role_arn: str, status: int) -> str:
    """What failed and the exact commands that grant ``role_arn`` access to ``cluster``, in either access mode.

    Cluster admin (the EKS access policy) needs nothing else; least privilege (the Kubernetes group
    LEAST_PRIVILEGE_GROUP) needs RBAC_MANIFEST applied once by a cluster admin, and again when an eksops upgrade
    changes what it applies. The access policy ARN is in the principal's partition, which is the cluster's (an
    access entry can only name a principal of the cluster's own account, so of its partition).
    """
    principal = principal_arn(role_arn)
    create = f"aws eks create-access-entry --cluster-name {cluster} --principal-arn {principal}"
    associate = (
        f"aws eks associate-access-policy --cluster-name {cluster} --principal-arn {principal}"
        f" --policy-arn {cluster_admin_policy(partition_of(principal))} --access-scope type=cluster"
    )
    rbac = f"kubectl apply -f {RBAC_MANIFEST} (by a cluster admin, from the deployed eksops version)"
    aws_auth = (
        "or, with authenticationMode CONFIG_MAP, add to the kube-system/aws-auth ConfigMap under mapRoles:"
        f" {{rolearn: {principal}, username: eksops, groups: [system:masters]}}"
        f" (least privilege: groups: [{LEAST_PRIVILEGE_GROUP}] and {RBAC_MANIFEST})"
    )
    if status == UNAUTHORIZED:
        # 401: the token was valid but no access entry (nor aws-auth mapping) maps the principal to a user.
        what = f"the Kubernetes API of EKS cluster {cluster!r} did not authenticate {principal} (HTTP 401)"
        return (
            f"{what}; create an access entry for it, with cluster admin: {create} && {associate};"
            f" or least privilege: {create} --kubernetes-groups {LEAST_PRIVILEGE_GROUP} && {rbac} ({aws_auth})"
        )
    # 403: the principal is known but its Kubernetes permissions do not allow the request.
    what = f"the Kubernetes API of EKS cluster {cluster!r} denied {principal} (HTTP {status})"
    return (
        f"{what}; grant its access entry the cluster admin policy: {associate} (no entry yet: {create});"
        f" or, if the entry uses the least-privilege group {LEAST_PRIVILEGE_GROUP}, make sure its ClusterRole is"
        f" current: {rbac} ({aws_auth})"
    )


def raise_for_status(exc: BaseException, cluster: str, role_arn: str) -> None:
    """Raise AccessDenied for a Kubernetes ApiException with status 401/403; return otherwise.

    Duck-typed on ``.status`` so this module does not import kubernetes. Use it as
    ``except ApiException as exc: raise_for_status(exc, cluster, arn); raise``.
    """
    status = getattr(exc, "status", None)
    if status in (UNAUTHORIZED, FORBIDDEN):
        raise AccessDenied(cluster, role_arn, status) from exc
