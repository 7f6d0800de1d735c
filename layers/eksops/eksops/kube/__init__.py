"""Kubernetes access to EKS clusters: STS bearer tokens, CA files, API clients, access-denied guidance.

kubernetes itself is imported only inside :func:`api_client`, never when this package is imported.
"""

from eksops.kube.auth import (
    EKSOPS_KUBECONFIG,
    ClusterAccess,
    KubeConfig,
    api_client,
    cluster_access,
    eks_token,
)
from eksops.kube.errors import AccessDenied, access_denied_message, principal_arn, raise_for_status

__all__ = [
    "EKSOPS_KUBECONFIG",
    "AccessDenied",
    "ClusterAccess",
    "KubeConfig",
    "access_denied_message",
    "api_client",
    "cluster_access",
    "eks_token",
    "principal_arn",
    "raise_for_status",
]
