"""Cluster bootstrap: node and Fargate IAM for logging and metrics, and the Kubernetes baseline on every cluster."""

from eksops.bootstrap.config import BootstrapConfig
from eksops.bootstrap.service import BootstrapService, Summary

__all__ = ["BootstrapConfig", "BootstrapService", "Summary"]
