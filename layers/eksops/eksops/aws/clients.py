"""Cached AWS clients: one per service for the life of the execution environment.

Endpoints are never configured here: botocore itself honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>``, which is how the sandbox and the tests point it at a moto server.
The clients come from a botocore session, not boto3's: they are the same clients, and a cold start skips
importing boto3 and building its session (about 35 ms of CPU each cold start, measured in
benchmarks/cold_start.py).

Only the services in :data:`SERVICES` have clients: `make build` ships botocore's data for those alone (the build
check trims the layer and proves their endpoints unchanged), so a client for any other service would fail in Lambda
while working in the venv. :func:`client` refuses it everywhere, so the tests catch it before a deploy.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from eksops import __version__
from eksops.aws.budget import CallBudget
from eksops.errors import UndeclaredService

# Every AWS service eksops creates a client for, with who uses it. Adding a client("...") in code means adding its
# service here (tests/unit/test_clients.py finds the literal ones); the Powertools stores get clients from here.
SERVICES = frozenset(
    {
        "autoscaling",  # node_scaler
        "cloudwatch",  # error_alarms, node_scaler
        "codecommit",  # image_updater (a CodeCommit config repository)
        "codepipeline",  # image_updater
        "dynamodb",  # the idempotency store (notifier, node_scaler), image_updater, compliance_sweep's state
        "ec2",  # compliance_sweep (launch templates: instance metadata options)
        "ecr",  # image_updater, compliance_sweep
        "eks",  # cluster_bootstrap, node_scaler (DescribeCluster, add-ons), compliance_sweep
        "events",  # sweep continuations (log_retention), image_updater
        "iam",  # cluster_bootstrap
        "logs",  # log_retention, error_alarms
        "resourcegroupstaggingapi",  # log_retention
        "secretsmanager",  # notifier (Slack webhook secrets), image_updater
        "securityhub",  # compliance_sweep (optional export of findings)
        "sns",  # every function's reports and alerts
        "sqs",  # notifier
        "ssm",  # node_scaler
        "sts",  # the Kubernetes token (presigned GetCallerIdentity), image_updater
    }
)

# Adaptive mode adds a client-side rate limiter that backs off on throttling errors; together with
# exponential backoff and jitter it turns "Rate exceeded" into waiting instead of failing. Ten attempts
# (default three) ride out the low quotas of CloudWatch Logs during sweeps. The timeouts are what one attempt may
# take (AWS answers these APIs in well under a second); BUDGET bounds the whole call, retries included
# (eksops.aws.budget), so a sweep part always has the time to checkpoint.
MAX_ATTEMPTS = 10  # the first attempt included (botocore's "max_attempts" would count retries only)
CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 5
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS},
    user_agent_extra=f"eksops/{__version__}",
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)
BUDGET = CallBudget(RETRY_CONFIG)


@functools.cache
def _session() -> botocore.session.Session:
    # One session per process: its loader parses each service model once for every client made from it.
    session = botocore.session.get_session()
    _LOADER.setdefault("loader", session.get_component("data_loader"))
    session.register_component("data_loader", _LOADER["loader"])
    return session


# The data loader outlives clear_client_cache: service models do not change with endpoints or credentials, and
# parsing one again costs up to 0.4 s (ec2), which tests that reset their clients would pay every time.
_LOADER: dict[str, Any] = {}


@functools.cache
def client(service: str) -> Any:
    """A client for ``service`` (one of :data:`SERVICES`) with eksops' retry settings and call budget, created once
    per process."""
    if service not in SERVICES:
        raise UndeclaredService(service, SERVICES)
    made = _session().create_client(service, config=RETRY_CONFIG)
    BUDGET.register(made)
    return made


class LazyClient:
    """The :func:`client` for ``service``, created on its first use, then the same cached client.

    For a client only some invocations need (log_retention publishes a report only when something changed, and puts
    a continuation only when a sweep runs out of time): a cold start that never takes that path does not load the
    service's model. The service is checked at once, so an undeclared one still fails at start-up.
    """

    __slots__ = ("service",)

    def __init__(self, service: str) -> None:
        if service not in SERVICES:
            raise UndeclaredService(service, SERVICES)
        self.service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self.service), name)

    def __repr__(self) -> str:
        return f"LazyClient({self.service!r})"


def lazy_client(service: str) -> Any:
    """A :class:`LazyClient` (typed ``Any``, as :func:`client` is, so it stands wherever a client does)."""
    return LazyClient(service)


def clear_client_cache() -> None:
    """Forget cached clients and the session (tests that change endpoints or credentials)."""
    client.cache_clear()
    _session.cache_clear()


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ('' when the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
