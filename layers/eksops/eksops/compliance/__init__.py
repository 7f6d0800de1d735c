"""Scheduled compliance sweeps over EKS clusters: rules, findings, state, reports and opt-in remediation."""
