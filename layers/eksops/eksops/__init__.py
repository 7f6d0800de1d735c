"""eksops: serverless automation for running Amazon EKS in production."""

__version__ = "0.1.0"
