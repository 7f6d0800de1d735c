"""Every compliance rule module; importing this package registers them all (eksops.compliance.model.REGISTRY)."""

from eksops.compliance.rules import (  # noqa: F401  # imported to register their rules
    cluster,
    fargate,
    images,
    kubernetes_security,
    logs,
    nodes,
    observability,
    reliability,
)
