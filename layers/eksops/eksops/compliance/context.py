"""What a rule sees of one cluster: memoised AWS reads, Kubernetes lists, and a bound on calls and time.

Rules never make clients of their own. They read through the context, which memoises every read (ten rules that
need the node groups cost one ListNodegroups and one DescribeNodegroup each), counts the calls against
``max_calls`` and checks the cluster's deadline before each one: a cluster's sweep is bounded in time and API calls
(:class:`SweepBudgetSpent` stops it at a clean point; the rules not run yet are reported as not run).

Kubernetes objects are read as plain JSON dicts, page by page (``kube_list``); nothing imports the kubernetes
package here, so the model stays cheap to import. A 404 for a whole resource type means the cluster does not serve
it (no such objects); 401/403 is :class:`eksops.kube.errors.AccessDenied`; a connection failure is
:class:`ClusterUnreachable`, which the service turns into one finding for the cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from eksops.aws import error_code
from eksops.errors import ConfigError, TemporaryError
from eksops.kube.errors import AccessDenied, principal_arn

if TYPE_CHECKING:
    from eksops.bootstrap.config import BootstrapConfig
    from eksops.compliance.config import ComplianceConfig
    from eksops.config import CommonConfig
    from eksops.logs.error_alarms import ErrorAlarmsService
    from eksops.logs.retention_config import RetentionConfig

PAGE_LIMIT = 500
NOT_FOUND = 404


class SweepBudgetSpent(TemporaryError):
    """The cluster's call or time budget is spent: the sweep stops here and reports the rules it did not run."""


class ClusterUnreachable(TemporaryError):
    """The cluster's Kubernetes API cannot be reached (private endpoint, network, DNS)."""


@dataclass
class Tools:
    """What the function gives the rules: client factories and the other capabilities' settings (reused, not
    copied: retention decisions, the error_alarms blueprint, the bootstrap manifests)."""

    aws: Callable[[str], Any]  # service name -> boto3 client (eksops.aws.client)
    api_client: Callable[[str], Any]  # cluster name -> kubernetes ApiClient (eksops.kube.auth.api_client)
    settings: ComplianceConfig
    common: CommonConfig
    bootstrap: BootstrapConfig | None = None
    retention: RetentionConfig | None = None
    error_alarms: Callable[[], ErrorAlarmsService] | None = None
    clock: Callable[[], float] = time.monotonic


@dataclass
class ClusterContext:
    """One cluster's sweep: its name, memoised reads, the budget. ``dry_run`` and ``remediate`` come from config."""

    name: str
    tools: Tools
    deadline: float  # tools.clock() value at which the cluster's sweep stops
    max_calls: int
    calls: int = 0
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _api: Any = field(default=None, repr=False)

    # -- settings -----------------------------------------------------------------------------------------------

    @property
    def settings(self) -> ComplianceConfig:
        return self.tools.settings

    @property
    def dry_run(self) -> bool:
        return self.tools.common.dry_run

    # -- budget -------------------------------------------------------------------------------------------------

    def spend(self, what: str) -> None:
        """Count one API call, or raise SweepBudgetSpent when the cluster's calls or time are used up."""
        if self.calls >= self.max_calls:
            raise SweepBudgetSpent(f"cluster {self.name}: {self.max_calls} API calls spent before {what}")
        if self.tools.clock() >= self.deadline:
            raise SweepBudgetSpent(f"cluster {self.name}: out of time before {what}")
        self.calls += 1

    # -- AWS ----------------------------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A client for remediation (writes are counted by the caller with ``spend``)."""
        return self.tools.aws(service)

    def aws(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """One AWS read, memoised by service, operation and parameters."""
        key = ("aws", service, operation, json.dumps(params, sort_keys=True, default=str))
        if key not in self._memo:
            self.spend(f"{service}:{operation}")
            self._memo[key] = getattr(self.tools.aws(service), operation)(**params)
        return self._memo[key]  # type: ignore[no-any-return]

    def aws_pages(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        """Every item under ``key`` of a paginated AWS read, memoised; each page counts as one call."""
        memo = ("pages", service, operation, key, json.dumps(params, sort_keys=True, default=str))
        if memo not in self._memo:
            items: list[Any] = []
            pages = self.tools.aws(service).get_paginator(operation).paginate(**params)
            for page in _counted(pages, lambda: self.spend(f"{service}:{operation}")):
                items += page.get(key) or []
            self._memo[memo] = items
        return self._memo[memo]  # type: ignore[no-any-return]

    def aws_or_none(self, service: str, operation: str, *not_found: str, **params: Any) -> dict[str, Any] | None:
        """``aws``, with None for the error codes in ``not_found`` (e.g. ResourceNotFoundException)."""
        try:
            return self.aws(service, operation, **params)
        except ClientError as exc:
            if error_code(exc) in not_found:
                return None
            raise

    @property
    def cluster(self) -> dict[str, Any]:
        """DescribeCluster's ``cluster``."""
        return self.aws("eks", "describe_cluster", name=self.name)["cluster"]  # type: ignore[no-any-return]

    @property
    def region(self) -> str:
        arn = str(self.cluster.get("arn", ""))
        parts = arn.split(":")
        return parts[3] if len(parts) > 3 and parts[3] else str(self.tools.aws("eks").meta.region_name)

    @property
    def account(self) -> str:
        parts = str(self.cluster.get("arn", "")).split(":")
        return parts[4] if len(parts) > 4 else ""

    @property
    def partition(self) -> str:
        parts = str(self.cluster.get("arn", "")).split(":")
        return parts[1] if len(parts) > 1 and parts[1] else "aws"

    def nodegroups(self) -> list[dict[str, Any]]:
        """DescribeNodegroup's ``nodegroup`` for every managed node group of the cluster."""
        names = self.aws_pages("eks", "list_nodegroups", "nodegroups", clusterName=self.name)
        return [
            self.aws("eks", "describe_nodegroup", clusterName=self.name, nodegroupName=n)["nodegroup"] for n in names
        ]

    def fargate_profiles(self) -> list[dict[str, Any]]:
        names = self.aws_pages("eks", "list_fargate_profiles", "fargateProfileNames", clusterName=self.name)
        return [
            self.aws("eks", "describe_fargate_profile", clusterName=self.name, fargateProfileName=n)["fargateProfile"]
            for n in names
        ]

    def addons(self) -> list[str]:
        """Names of the cluster's EKS add-ons ([] where the API does not answer, as in the sandbox)."""
        try:
            return [str(a) for a in self.aws_pages("eks", "list_addons", "addons", clusterName=self.name)]
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == NOT_FOUND:
                return []
            raise

    def principal(self) -> str:
        """The IAM role eksops runs as (the role ARN of its assumed-role session)."""
        return principal_arn(str(self.aws("sts", "get_caller_identity")["Arn"]))

    # -- Kubernetes ---------------------------------------------------------------------------------------------

    def api(self) -> Any:
        if self._api is None:
            try:
                self._api = self.tools.api_client(self.name)
            except ConfigError as exc:  # e.g. a kubeconfig (outside Lambda) without a context for this cluster
                raise ClusterUnreachable(f"no Kubernetes client for cluster {self.name}: {exc}") from exc
        return self._api

    def kube_list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a resource type, as JSON dicts, memoised: ``kube_list("apps/v1", "deployments")``."""
        key = ("kube", api_version, plural, namespace)
        if key not in self._memo:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
            self._memo[key] = list(self._pages(path))
        return self._memo[key]  # type: ignore[no-any-return]

    def kube_get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        key = ("kube-get", api_version, plural, name, namespace)
        if key not in self._memo:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            path = f"{base}/namespaces/{namespace}/{plural}/{name}" if namespace else f"{base}/{plural}/{name}"
            self._memo[key] = self._get(path, {})
        return self._memo[key]  # type: ignore[no-any-return]

    def namespaces(self) -> list[dict[str, Any]]:
        return self.kube_list("v1", "namespaces")

    def pods(self) -> list[dict[str, Any]]:
        return self.kube_list("v1", "pods")

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE_LIMIT}
            if token:
                query["continue"] = token
            page = self._get(path, query)
            if page is None:
                return  # the cluster does not serve this resource type: it has none of it
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def _get(self, path: str, query: Mapping[str, Any]) -> dict[str, Any] | None:
        self.spend(f"GET {path}")
        try:
            status, body = kube_request(self.api(), "GET", path, query=query)
        except Exception as exc:
            if _is_connection_error(exc) or getattr(exc, "status", None) == 0:
                endpoint = self.cluster.get("endpoint") or "its kubeconfig server"
                raise ClusterUnreachable(
                    f"cannot reach the Kubernetes API of {self.name} at {endpoint}: {type(exc).__name__}"
                ) from exc
            raise
        if status == NOT_FOUND:
            return None
        if status in (401, 403):
            raise AccessDenied(self.name, self.principal(), status)
        if status >= 300:
            raise TemporaryError(f"cluster {self.name}: GET {path} answered HTTP {status}")
        return body  # type: ignore[no-any-return]


def kube_request(
    api: Any,
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """One raw request through a kubernetes ApiClient (its auth, timeouts and retries); (HTTP status, JSON body)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, post = api.param_serialize(
        method,
        path,
        query_params=list((query or {}).items()),
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    data = response.data
    try:
        return int(response.status), json.loads(data) if data else None
    except ValueError:
        return int(response.status), None


def _counted(pages: Any, spend: Callable[[], None]) -> Iterator[Mapping[str, Any]]:
    spend()
    for page in pages:
        yield page
        if (page.get("NextToken") or page.get("nextToken") or page.get("Marker")) is not None:
            spend()


def _is_connection_error(exc: BaseException) -> bool:
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)
