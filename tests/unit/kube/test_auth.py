"""EKS authentication: token format with fixed credentials and time, CA file and clients against moto."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import importlib
import os
import string
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.session
import pytest

from eksops.aws import client
from eksops.errors import ConfigError, PermanentError, TemporaryError
from eksops.kube import (
    EKSOPS_KUBECONFIG,
    AccessDenied,
    KubeConfig,
    access_denied_message,
    api_client,
    cluster_access,
    eks_token,
    principal_arn,
    raise_for_status,
)
from eksops.kube import auth as kube_auth

FROZEN = datetime.datetime(2024, 5, 1, 12, 0, 0)
URL_SAFE = set(string.ascii_letters + string.digits + "-_")
ROLE = "arn:aws:iam::123456789012:role/eksops-bootstrap"
SESSION = "arn:aws:sts::123456789012:assumed-role/eksops-bootstrap/eksops-ClusterBootstrap-abc"


def _freeze(monkeypatch: pytest.MonkeyPatch, moment: datetime.datetime = FROZEN) -> None:
    # botocore's signers read the clock through get_current_datetime, imported by name into both the
    # pure-Python signers and the CRT ones (used when awscrt is installed, as here; not in the Lambda runtime).
    def now(remove_tzinfo: bool = True) -> datetime.datetime:
        return moment if remove_tzinfo else moment.replace(tzinfo=datetime.UTC)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", now)
    if botocore.auth.HAS_CRT:
        monkeypatch.setattr(importlib.import_module("botocore.crt.auth"), "get_current_datetime", now)


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """An STS client with fixed credentials in eu-west-1, on the real endpoint resolution (no moto, no files)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "secret")
    _freeze(monkeypatch)
    return session.create_client("sts", region_name="eu-west-1")


def _query(token: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(_decode(token)).query)


def _decode(token: str) -> str:
    body = token.removeprefix(kube_auth.TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_format(sts: Any) -> None:
    token = eks_token("prod-eu", sts_client=sts)

    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body
    assert set(body) <= URL_SAFE
    url = _decode(token)
    assert url.startswith(
        "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
    )
    query = _query(token)
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Credential"] == ["AKIDEXAMPLE/20240501/eu-west-1/sts/aws4_request"]
    assert query["X-Amz-Date"] == ["20240501T120000Z"]
    assert len(query["X-Amz-Signature"][0]) == 64
    assert "x-k8s-aws-id" not in query  # signed as a header, never sent as a parameter


def test_signature_is_sigv4_over_host_and_cluster_header(sts: Any) -> None:
    # Recomputed by hand from the SigV4 specification, independently of botocore's signers.
    token = eks_token("prod-eu", sts_client=sts)
    query = {k: v[0] for k, v in _query(token).items()}
    signature = query.pop("X-Amz-Signature")
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            canonical_query,
            "host:sts.eu-west-1.amazonaws.com\nx-k8s-aws-id:prod-eu\n",
            "host;x-k8s-aws-id",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    scope = "20240501/eu-west-1/sts/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n20240501T120000Z\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    key = b"AWS4secret"
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert signature == hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_token_is_deterministic_and_bound_to_the_cluster(sts: Any) -> None:
    first = eks_token("prod-eu", sts_client=sts)
    again = eks_token("prod-eu", sts_client=sts)  # handlers registered twice stay one
    other = eks_token("staging-eu", sts_client=sts)

    assert first == again
    assert _query(other)["X-Amz-Signature"] != _query(first)["X-Amz-Signature"]


@pytest.mark.skipif(not botocore.auth.HAS_CRT, reason="awscrt not installed: only one signer to compare")
def test_pure_python_signer_gives_the_same_token(sts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Lambda runtime has no awscrt, so botocore signs there with its pure-Python SigV4QueryAuth.
    with_crt = eks_token("prod-eu", sts_client=sts)
    monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "v4-query", botocore.auth.SigV4QueryAuth)
    pure = eks_token("prod-eu", sts_client=sts)
    # The two order the query differently; the canonical request sorts it, so the signature is the same.
    assert _query(pure) == _query(with_crt)
    assert _decode(pure).startswith("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&")


def test_other_calls_on_the_client_are_untouched(aws: str) -> None:
    sts = client("sts")
    eks_token("prod-eu", sts_client=sts)
    assert sts.get_caller_identity()["Account"]


def _create_cluster(name: str) -> dict[str, Any]:
    eks = client("eks")
    eks.create_cluster(
        name=name,
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
    )
    return eks.describe_cluster(name=name)["cluster"]  # type: ignore[no-any-return]


@pytest.fixture
def tmpdir_for_ca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_cluster_access_from_describe_cluster(aws: str, tmpdir_for_ca: Path) -> None:
    described = _create_cluster("prod-eu")

    access = cluster_access("prod-eu", eks_client=client("eks"), sts_client=client("sts"))

    assert access.endpoint == described["endpoint"]
    assert access.token.startswith("k8s-aws-v1.")
    ca_file = Path(access.ca_file)
    assert ca_file.parent == tmpdir_for_ca
    assert "prod-eu" in ca_file.name
    assert ca_file.read_bytes() == base64.b64decode(described["certificateAuthority"]["data"])


def test_ca_file_is_content_addressed_and_idempotent(tmpdir_for_ca: Path) -> None:
    first = kube_auth.write_ca_file("prod-eu", b"-----BEGIN CERTIFICATE-----\nA\n")
    mtime = os.stat(first).st_mtime_ns
    assert kube_auth.write_ca_file("prod-eu", b"-----BEGIN CERTIFICATE-----\nA\n") == first
    assert os.stat(first).st_mtime_ns == mtime
    rotated = kube_auth.write_ca_file("prod-eu", b"-----BEGIN CERTIFICATE-----\nB\n")
    assert rotated != first
    assert kube_auth.write_ca_file("other", b"-----BEGIN CERTIFICATE-----\nA\n") != first
    assert sorted(p.name for p in tmpdir_for_ca.iterdir()) == sorted(
        Path(p).name for p in (first, rotated, kube_auth.write_ca_file("other", b"-----BEGIN CERTIFICATE-----\nA\n"))
    )


class _FakeEks:
    def __init__(self, cluster: dict[str, Any]) -> None:
        self.cluster = cluster

    def describe_cluster(self, *, name: str) -> dict[str, Any]:
        return {"cluster": {"name": name, **self.cluster}}


def test_cluster_still_creating_is_temporary(sts: Any) -> None:
    with pytest.raises(TemporaryError, match="CREATING"):
        cluster_access("new", eks_client=_FakeEks({"status": "CREATING"}), sts_client=sts)


def test_corrupt_ca_is_permanent(sts: Any) -> None:
    fake = _FakeEks({"status": "ACTIVE", "endpoint": "https://x.eks", "certificateAuthority": {"data": "!!"}})
    with pytest.raises(PermanentError, match="certificateAuthority"):
        cluster_access("broken", eks_client=fake, sts_client=sts)


def test_api_client_from_eks(aws: str, tmpdir_for_ca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    described = _create_cluster("prod-eu")

    api = api_client("prod-eu", eks_client=client("eks"), sts_client=client("sts"), kubeconfig=None)

    configuration = api.configuration
    assert configuration.host == described["endpoint"]
    assert Path(configuration.ssl_ca_cert).parent == tmpdir_for_ca
    header = configuration.auth_settings()["BearerToken"]["value"]
    assert header.startswith("Bearer k8s-aws-v1.")

    # Past the refresh age, the next request signs a new token.
    later = time.monotonic() + kube_auth.TOKEN_REFRESH_AFTER + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    _freeze(monkeypatch, datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=11))
    refreshed = configuration.auth_settings()["BearerToken"]["value"]
    assert refreshed.startswith("Bearer k8s-aws-v1.")
    assert refreshed != header


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: alpha
  cluster: {server: "https://alpha.example:6443", insecure-skip-tls-verify: true}
- name: beta
  cluster: {server: "http://127.0.0.1:18080"}
users:
- name: sandbox
  user: {token: sandbox-token}
contexts:
- name: alpha
  context: {cluster: alpha, user: sandbox}
- name: beta
  context: {cluster: beta, user: sandbox}
current-context: alpha
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(textwrap.dedent(KUBECONFIG))
    return str(path)


def test_api_client_from_kubeconfig_uses_the_cluster_context(kubeconfig: str) -> None:
    api = api_client("beta", eks_client=None, sts_client=None, kubeconfig=kubeconfig)

    assert api.configuration.host == "http://127.0.0.1:18080"
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer sandbox-token"


def _kubeconfig_for(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig-one"
    path.write_text(textwrap.dedent(KUBECONFIG).replace("https://alpha.example:6443", server))
    return str(path)


def test_api_client_retries_a_refused_connection_twice_then_fails(tmp_path: Path) -> None:
    import socket

    import urllib3

    with socket.socket() as s:  # a port nothing listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = api_client(
        "alpha", eks_client=None, sts_client=None, kubeconfig=_kubeconfig_for(tmp_path, f"http://127.0.0.1:{port}")
    )
    assert api.configuration.retries.total == kube_auth.HTTP_RETRIES
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        api.call_api("GET", f"http://127.0.0.1:{port}/version")
    assert time.monotonic() - started < 10


def test_api_client_times_out_on_a_server_that_never_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import urllib3

    monkeypatch.setattr(kube_auth, "REQUEST_TIMEOUT", (1.0, 0.5))
    monkeypatch.setattr(kube_auth, "HTTP_RETRIES", 1)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        api = api_client("alpha", eks_client=None, sts_client=None, kubeconfig=_kubeconfig_for(tmp_path, url))
        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
            api.call_api("GET", f"{url}/version")  # no _request_timeout: the client's default applies
        elapsed = time.monotonic() - started
    assert isinstance(raised.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert elapsed < 5  # two reads of 0.5 s and a backoff, not forever


def test_missing_context_names_it(kubeconfig: str) -> None:
    with pytest.raises(ConfigError) as raised:
        api_client("gamma", eks_client=None, sts_client=None, kubeconfig=kubeconfig)

    assert raised.value.variable == EKSOPS_KUBECONFIG
    assert "'gamma'" in raised.value.problem
    assert "alpha, beta" in raised.value.problem


def test_kube_config_from_env(kubeconfig: str) -> None:
    assert KubeConfig.from_env({}).kubeconfig is None
    assert KubeConfig.from_env({EKSOPS_KUBECONFIG: kubeconfig}).kubeconfig == kubeconfig
    with pytest.raises(ConfigError, match=EKSOPS_KUBECONFIG):
        KubeConfig.from_env({EKSOPS_KUBECONFIG: kubeconfig + ".missing"})


def test_principal_arn_of_an_assumed_role_session() -> None:
    assert principal_arn(SESSION) == ROLE
    assert principal_arn(ROLE) == ROLE
    assert principal_arn("arn:aws-cn:sts::123456789012:assumed-role/r/s") == "arn:aws-cn:iam::123456789012:role/r"


@pytest.mark.parametrize("status", [401, 403])
def test_access_denied_says_what_to_create(status: int) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(AccessDenied) as raised:
        raise_for_status(ApiException(status=status, reason="Forbidden"), "prod-eu", SESSION)

    error = raised.value
    assert (error.cluster, error.principal_arn, error.status) == ("prod-eu", SESSION, status)
    assert isinstance(error.__cause__, ApiException)
    message = str(error)
    assert f"HTTP {status}" in message
    assert f"aws eks create-access-entry --cluster-name prod-eu --principal-arn {ROLE}" in message
    assert (
        f"aws eks associate-access-policy --cluster-name prod-eu --principal-arn {ROLE}"
        " --policy-arn arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy --access-scope type=cluster"
    ) in message
    assert f"aws-auth ConfigMap under mapRoles: {{rolearn: {ROLE}, username: eksops, groups: [system:masters]}}" in (
        message
    )
    assert message == access_denied_message("prod-eu", SESSION, status)


def test_access_denied_names_the_policy_of_the_principals_partition() -> None:
    session = "arn:aws-cn:sts::123456789012:assumed-role/eksops-bootstrap/eksops-ClusterBootstrap-abc"
    message = access_denied_message("prod-bj", session, 403)
    assert (
        "aws eks associate-access-policy --cluster-name prod-bj --principal-arn "
        "arn:aws-cn:iam::123456789012:role/eksops-bootstrap --policy-arn "
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy --access-scope type=cluster"
    ) in message
    assert "arn:aws:" not in message
    gov = access_denied_message("c", "arn:aws-us-gov:iam::123456789012:role/r", 401)
    assert "--policy-arn arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" in gov


def test_other_statuses_pass_through() -> None:
    class NotFound(Exception):
        status = 404

    raise_for_status(NotFound(), "prod-eu", ROLE)  # returns: the caller re-raises the original
    raise_for_status(ValueError("no status"), "prod-eu", ROLE)


def test_importing_the_package_does_not_import_kubernetes() -> None:
    code = "import sys, eksops.kube; sys.exit('kubernetes' in sys.modules or 'kubernetes.client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr or "eksops.kube imported kubernetes"
