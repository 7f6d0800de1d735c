"""eksops creates clients only for the AWS services it declares (eksops.aws.clients.SERVICES), because the built
layer ships botocore's data for those alone: an undeclared one is refused in every run, and every client the code
asks for, its own or Powertools' stores', is declared."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest

from eksops.aws import clear_client_cache, client
from eksops.aws.clients import SERVICES
from eksops.errors import UndeclaredService

ROOT = Path(__file__).resolve().parents[2]
# The code built into Lambda: the handlers and the layer's package.
DEPLOYED = [*(ROOT / "functions").glob("*/*.py"), *(ROOT / "layers" / "eksops" / "eksops").rglob("*.py")]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clear_client_cache()
    yield
    clear_client_cache()


def test_a_client_for_an_undeclared_service_is_refused(fresh: None) -> None:
    with pytest.raises(UndeclaredService) as refused:
        client("s3")
    assert refused.value.service == "s3"
    assert "add it to eksops.aws.clients.SERVICES" in str(refused.value)
    assert isinstance(refused.value, ValueError)  # a programming error, like a bad argument
    assert client.cache_info().currsize == 0


def test_a_declared_service_gets_its_client(fresh: None) -> None:
    made = client("sts")
    assert made.meta.service_model.service_name == "sts"
    assert client("sts") is made


def test_every_declared_service_is_one_botocore_knows() -> None:
    assert SERVICES.issubset(botocore.session.get_session().get_available_services())


def _calls(path: Path) -> Iterator[ast.Call]:
    yield from (node for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call))


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def test_a_lazy_client_is_checked_at_once_and_made_on_first_use(fresh: None) -> None:
    from eksops.aws import lazy_client

    with pytest.raises(UndeclaredService):
        lazy_client("s3")  # at start-up, as client() would be
    lazy = lazy_client("sts")
    assert client.cache_info().currsize == 0  # nothing made yet
    assert lazy.meta.service_model.service_name == "sts"
    assert client.cache_info().currsize == 1 and lazy.meta is client("sts").meta  # the one cached client


def test_every_client_the_deployed_code_asks_for_is_declared() -> None:
    """A client("...") added to a handler or the package without declaring its service fails here, before any
    test has to reach that line."""
    asked = {
        str(call.args[0].value): f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in DEPLOYED
        for call in _calls(path)
        if _name(call) in {"client", "lazy_client"} and call.args and isinstance(call.args[0], ast.Constant)
    }
    assert {"logs", "sns", "sts", "dynamodb", "secretsmanager"} <= set(asked)  # the scan finds the handlers' clients
    assert {service: where for service, where in asked.items() if service not in SERVICES} == {}


def test_powertools_stores_are_handed_eksops_clients() -> None:
    """Powertools' idempotency store and parameter providers make a boto3 session and a client of their own unless
    handed one (boto3_client=): that client would bypass SERVICES, the retry settings and the call budget."""
    stores = [
        (path, call)
        for path in DEPLOYED
        for call in _calls(path)
        if _name(call).endswith(("PersistenceLayer", "Provider"))
    ]
    assert stores  # notifier's SecretsProvider and the DynamoDB idempotency stores
    for path, call in stores:
        given = {keyword.arg: keyword.value for keyword in call.keywords}
        where = f"{path.relative_to(ROOT)}:{call.lineno}"
        assert "boto3_client" in given, f"{where}: {_name(call)} without boto3_client=client(...)"
        handed = given["boto3_client"]
        assert isinstance(handed, ast.Call) and _name(handed) == "client", where
    # the module-level helpers (get_secret, get_parameter, ...) would make their own default provider
    helpers = {"get_secret", "get_secrets", "get_parameter", "get_parameters", "get_parameters_by_name"}
    used = {
        alias.name
        for path in DEPLOYED
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_lambda_powertools.utilities")
        for alias in node.names
    }
    assert used & helpers == set()
