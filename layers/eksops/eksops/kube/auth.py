"""EKS authentication without kubectl or awscli: the STS bearer token, the cluster's endpoint and CA file."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eksops import config
from eksops.errors import ConfigError, PermanentError, TemporaryError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

EKSOPS_KUBECONFIG = "EKSOPS_KUBECONFIG"

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
K8S_AWS_ID_HEADER = "x-k8s-aws-id"
TOKEN_EXPIRES_IN = 60  # seconds; what aws-iam-authenticator and `aws eks get-token` sign with
# The API server accepts a token for 15 minutes after signing; renew well before that on long-lived clients.
TOKEN_REFRESH_AFTER = 10 * 60
# Every request to a cluster's API is bounded: an endpoint that cannot be reached (a private-only endpoint from
# outside its VPC, a deleted cluster) fails in seconds instead of hanging the sweep. (connect, read) seconds.
REQUEST_TIMEOUT: tuple[float, float] = (5.0, 20.0)
# urllib3 retries per request: connection errors and reads of idempotent requests, with a short backoff.
HTTP_RETRIES = 2

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class KubeConfig:
    """Where cluster credentials come from: a kubeconfig file (operators' clusters, the sandbox) or EKS."""

    kubeconfig: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubeConfig:
        raw = config.read(EKSOPS_KUBECONFIG, environ)
        if raw and not os.path.isfile(raw):
            raise ConfigError(EKSOPS_KUBECONFIG, f"{raw!r} is not a file; set a kubeconfig path or leave it empty")
        return cls(kubeconfig=raw or None)


@dataclass(frozen=True)
class ClusterAccess:
    """What a Kubernetes client needs for one EKS cluster."""

    endpoint: str
    ca_file: str
    token: str


def _take_k8s_aws_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # The header is not a GetCallerIdentity parameter: move it out of the params before validation...
    if K8S_AWS_ID_HEADER in params:
        context[K8S_AWS_ID_HEADER] = params.pop(K8S_AWS_ID_HEADER)


def _sign_k8s_aws_id(request: Any, **_: Any) -> None:
    # ...and into the request just before signing, so it is listed in X-Amz-SignedHeaders. The API server's
    # authenticator rejects a token whose signed x-k8s-aws-id is not its own cluster name.
    if K8S_AWS_ID_HEADER in request.context:
        request.headers[K8S_AWS_ID_HEADER] = request.context[K8S_AWS_ID_HEADER]


def eks_token(cluster_name: str, *, sts_client: Any) -> str:
    """A bearer token for ``cluster_name``: a presigned STS GetCallerIdentity URL, as `aws eks get-token` makes.

    ``sts_client`` must use the regional STS endpoint (botocore's default since sts_regional_endpoints
    became ``regional``); the handlers are registered once per client.
    """
    events = sts_client.meta.events
    events.register(
        "provide-client-params.sts.GetCallerIdentity", _take_k8s_aws_id, unique_id="eksops-k8s-aws-id-params"
    )
    events.register("before-sign.sts.GetCallerIdentity", _sign_k8s_aws_id, unique_id="eksops-k8s-aws-id-sign")
    url: str = sts_client.generate_presigned_url(
        "get_caller_identity",
        Params={K8S_AWS_ID_HEADER: cluster_name},
        ExpiresIn=TOKEN_EXPIRES_IN,
        HttpMethod="GET",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def write_ca_file(cluster_name: str, ca_data: bytes) -> str:
    """The path of a file under the temp directory holding ``ca_data``, written once per distinct content."""
    digest = hashlib.sha256(ca_data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"eksops-ca-{_UNSAFE_FILE_CHARS.sub('_', cluster_name)}-{digest}.crt"
    if path.is_file() and path.read_bytes() == ca_data:
        return str(path)
    # Write then rename: concurrent invocations sharing /tmp never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(ca_data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def cluster_access(name: str, *, eks_client: Any, sts_client: Any) -> ClusterAccess:
    """Endpoint, CA file and a fresh token for EKS cluster ``name``, from DescribeCluster."""
    cluster = eks_client.describe_cluster(name=name)["cluster"]
    endpoint = cluster.get("endpoint")
    ca_b64 = cluster.get("certificateAuthority", {}).get("data")
    if not endpoint or not ca_b64:
        # A cluster still CREATING has neither yet; the scheduled sweep comes back to it.
        status = cluster.get("status", "unknown")
        raise TemporaryError(f"EKS cluster {name!r} has no API endpoint or CA yet (status {status})")
    try:
        ca_data = base64.b64decode(ca_b64, validate=True)
    except binascii.Error as exc:
        raise PermanentError(f"EKS cluster {name!r}: certificateAuthority.data is not base64") from exc
    return ClusterAccess(
        endpoint=endpoint,
        ca_file=write_ca_file(name, ca_data),
        token=eks_token(name, sts_client=sts_client),
    )


def api_client(name: str, *, eks_client: Any, sts_client: Any, kubeconfig: str | None) -> ApiClient:
    """A Kubernetes ApiClient for cluster ``name``: from the kubeconfig context ``name`` if set, else from EKS.

    kubernetes is imported here only: importing eksops must stay cheap for functions that never use it.
    """
    import kubernetes

    if kubeconfig is not None:
        return _from_kubeconfig(name, kubeconfig)
    access = cluster_access(name, eks_client=eks_client, sts_client=sts_client)
    configuration = kubernetes.client.Configuration()
    configuration.host = access.endpoint
    configuration.ssl_ca_cert = access.ca_file
    configuration.api_key = {"BearerToken": access.token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    configuration.refresh_api_key_hook = _token_refresher(name, sts_client)
    return _bounded(configuration)


def _from_kubeconfig(name: str, kubeconfig: str) -> ApiClient:
    import kubernetes

    try:
        contexts, _ = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (OSError, kubernetes.config.ConfigException) as exc:
        raise ConfigError(EKSOPS_KUBECONFIG, f"cannot read kubeconfig {kubeconfig!r}: {exc}") from exc
    names = sorted(str(c.get("name")) for c in contexts or [])
    if name not in names:
        raise ConfigError(
            EKSOPS_KUBECONFIG,
            f"kubeconfig {kubeconfig!r} has no context named {name!r} (contexts: {', '.join(names) or 'none'})",
        )
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=name, client_configuration=configuration
    )
    return _bounded(configuration)


def _bounded(configuration: Any) -> ApiClient:
    """An ApiClient whose every request has REQUEST_TIMEOUT and at most HTTP_RETRIES retries.

    The kubernetes client has no default timeout (a request without ``_request_timeout`` waits forever) and
    urllib3 retries three times by default. The retries are set on the configuration, before the client makes
    its connection pool; the timeout is filled in on each request that does not set its own, which covers the
    dynamic client's discovery requests too.
    """
    import kubernetes
    import urllib3

    configuration.retries = urllib3.Retry(
        total=HTTP_RETRIES, connect=HTTP_RETRIES, read=HTTP_RETRIES, redirect=0, status=0, backoff_factor=0.5
    )
    client: ApiClient = kubernetes.client.ApiClient(configuration)
    rest = client.rest_client
    send: Any = rest.request

    def request(*args: Any, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or REQUEST_TIMEOUT
        return send(*args, **kwargs)

    rest.request = request  # type: ignore[method-assign]
    return client


def _token_refresher(name: str, sts_client: Any) -> Any:
    # A warm Lambda may reuse the client past the token's 15-minute life: sign a new one before then.
    issued = time.monotonic()

    def refresh(configuration: Any) -> None:
        nonlocal issued
        if time.monotonic() - issued >= TOKEN_REFRESH_AFTER:
            configuration.api_key["BearerToken"] = eks_token(name, sts_client=sts_client)
            issued = time.monotonic()

    return refresh
