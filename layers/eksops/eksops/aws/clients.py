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
import os
import sys
from types import FrameType
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from eksops import __version__
from eksops.aws.budget import CallBudget
from eksops.errors import UndeclaredOperation, UndeclaredService

# Every AWS service eksops creates a client for, with who uses it, and the operations eksops calls on it (their API
# names). `make build` ships each declared service's model cut to these operations (and without its documentation),
# which makes a client much cheaper to create (docs/reliability.md, section 7). So an operation missing
# here would not exist in Lambda while working in the venv: eksops' own code is refused it in every run
# (:class:`~eksops.errors.UndeclaredOperation`), and tests/unit/test_client_services.py finds the operations the code
# names. The Powertools idempotency stores call their clients (from here) with GetItem, PutItem, UpdateItem and
# DeleteItem.
OPERATIONS: dict[str, frozenset[str]] = {
    service: frozenset(operations.split())
    for service, operations in {
        # node_scaler
        "autoscaling": "CreateOrUpdateTags DeleteTags DescribeAutoScalingGroups SetDesiredCapacity",
        # error_alarms (alarms, dashboard), node_scaler (demand metrics, its alarms), compliance_sweep
        "cloudwatch": "DeleteAlarms DeleteDashboards DescribeAlarms GetDashboard GetMetricData ListDashboards "
        "ListTagsForResource PutDashboard PutMetricAlarm PutMetricData TagResource",
        "codecommit": "CreateCommit GetBranch GetFile",  # image_updater (a CodeCommit config repository)
        "codepipeline": "GetPipelineExecution ListActionExecutions",  # image_updater
        # the idempotency stores (notifier, node_scaler, image_updater), compliance_sweep's state
        "dynamodb": "BatchWriteItem DeleteItem GetItem PutItem Query UpdateItem",
        "ec2": "DescribeInstances DescribeLaunchTemplateVersions",  # compliance_sweep (nodes' instance metadata)
        "ecr": "DescribeImageScanFindings DescribeImages DescribeRepositories",  # image_updater, compliance
        # cluster_bootstrap, node_scaler, compliance_sweep, the Kubernetes client's cluster lookup
        "eks": "CreateAddon DescribeAccessEntry DescribeAddon DescribeAddonVersions DescribeCluster "
        "DescribeClusterVersions DescribeFargateProfile DescribeNodegroup ListAddons ListClusters ListFargateProfiles "
        "ListNodegroups TagResource",
        "events": "PutEvents",  # sweep continuations
        "iam": "AttachRolePolicy ListAttachedRolePolicies ListOpenIDConnectProviders",  # cluster_bootstrap, compliance
        # log_retention, error_alarms, compliance_sweep
        "logs": "DeleteMetricFilter DeleteQueryDefinition DescribeLogGroups DescribeMetricFilters "
        "DescribeQueryDefinitions ListTagsForResource PutMetricFilter PutQueryDefinition PutRetentionPolicy",
        "resourcegroupstaggingapi": "GetResources",  # log_retention's sweep
        "secretsmanager": "GetSecretValue",  # notifier (Slack webhook secrets), image_updater
        "securityhub": "BatchImportFindings BatchUpdateFindings",  # compliance_sweep (optional export of findings)
        "sns": "Publish",  # every function's reports and alerts
        "sqs": "SendMessage",  # notifier (a message Slack refuses, to the dead-letter queue)
        "ssm": "GetParameter",  # node_scaler
        "sts": "GetCallerIdentity",  # the Kubernetes token (a presigned GetCallerIdentity), the account's id
    }.items()
}
SERVICES = frozenset(OPERATIONS)

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
    made.meta.events.register("before-parameter-build", _refuse_undeclared, unique_id="eksops-declared-operations")
    return made


def _refuse_undeclared(model: Any, **_: Any) -> None:
    """Refuse an operation missing from :data:`OPERATIONS` when eksops' own code calls it: it would not exist in
    Lambda. Who calls is told by the nearest frame, up the stack, of either eksops (its package, or a handler's
    ``log_failures`` wrapper, which every handler has: so a call Powertools' idempotency store makes inside a
    handler counts as eksops') or a test or development tool (tests/, eksops_dev), which may call any operation to
    set up and inspect AWS. Frames of anything else (botocore, X-Ray's wrappers, Powertools, the standard library)
    are looked through. A call whose stack holds neither (a client method run by a thread pool) is let through: the
    static test in tests/unit/test_client_services.py covers those lines."""
    service = model.service_model.service_name
    if model.name in OPERATIONS.get(service, ()):
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        top = module.partition(".")[0]
        if top == "eksops":
            raise UndeclaredOperation(service, model.name, module)
        if top in _TOOLS or frame.f_code.co_filename.startswith(_TESTS):
            return
        frame = frame.f_back


_HERE = os.path.dirname(os.path.abspath(__file__))
_TOOLS = frozenset({"eksops_dev", "tests", "conftest"})  # the development package and the test suite's modules
# The repository's tests/ (this file is layers/eksops/eksops/aws/clients.py in it): pytest names test modules after
# their folders, so they are told by their files. In Lambda (/opt/python/eksops/aws) this is /tests/, which nothing is.
_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))), "tests", "")


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
