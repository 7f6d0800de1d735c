"""eksops creates clients only for the AWS services it declares (eksops.aws.clients.SERVICES), because the built
layer ships botocore's data for those alone: an undeclared one is refused in every run, and every client the code
asks for, its own or Powertools' stores', is declared. Likewise the operations: the layer's models have the declared
ones only (eksops.aws.clients.OPERATIONS), so eksops' code is refused any other, and every one it names is declared."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from eksops.aws import clear_client_cache, client
from eksops.aws.clients import OPERATIONS, SERVICES
from eksops.errors import UndeclaredOperation, UndeclaredService

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


# -- operations: the layer ships each declared service's model cut to eksops.aws.clients.OPERATIONS ---------------


def test_every_declared_operation_is_one_its_service_has() -> None:
    session = botocore.session.get_session()
    missing = {
        service: sorted(operations - set(session.get_service_model(service).operation_names))
        for service, operations in OPERATIONS.items()
    }
    assert {service: names for service, names in missing.items() if names} == {}
    assert set(OPERATIONS) == SERVICES


def _operation_names() -> dict[str, set[str]]:
    """Each Python operation name (describe_log_groups) of the declared services, with the services that have it."""
    session = botocore.session.get_session()
    names: dict[str, set[str]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            names.setdefault(xform_name(operation), set()).add(service)
    return names


# What the code calls its clients (``self._logs``, ``eks_client``): the service, when the name does not say it alone
_RECEIVERS = {"ddb": "dynamodb", "sm": "secretsmanager", "tagging": "resourcegroupstaggingapi"}
# Names in the deployed code that are not clients but have an attribute named like an operation, each with what it is
_NOT_CLIENTS = {
    "definition": "a saved Logs Insights query's definition (its .query text)",
    "current": "a saved Logs Insights query's definition (its .query text)",
    "desired": "a saved Logs Insights query's definition (its .query text)",
    "parts": "a urllib.parse split URL (its .query)",
    "_history": "eksops.scaling's DemandHistory (.publish puts its metric)",
    "_registry": "eksops.images' EcrRegistry (.list_images pages DescribeImages)",
}
# Client methods whose first argument names an operation
_NAMING_METHODS = {"get_paginator", "can_paginate", "generate_presigned_url", "get_waiter"}


def _receiver(receiver: ast.expr) -> str:
    if isinstance(receiver, ast.Attribute | ast.Name):
        return receiver.attr if isinstance(receiver, ast.Attribute) else receiver.id
    return ""


def _service_of(receiver: ast.expr) -> str | None:
    name = _receiver(receiver).strip("_").removesuffix("_client")
    service = _RECEIVERS.get(name, name)
    return service if service in SERVICES else None


def _named_operations(tree: ast.AST, names: dict[str, set[str]]) -> Iterator[tuple[str, str | None, int]]:
    """(operation's Python name, its service, line) for each operation the code uses: ``receiver.operation``
    (called, or handed on as ``functools.partial(self._logs.put_metric_filter, ...)``),
    ``receiver.get_paginator("operation")`` and the like, and eksops' own helpers that take the service and the
    operation as their first two arguments (``ctx.aws("ec2", "describe_instances")``). The service is None when the
    receiver's name does not say it: the test refuses that unless the name is one of :data:`_NOT_CLIENTS`. Other
    strings are not operations (a label "scan" is no DynamoDB Scan)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names and _receiver(node.value) not in _NOT_CLIENTS:
            yield node.attr, _service_of(node.value), node.lineno
        if not isinstance(node, ast.Call):
            continue
        literal = [arg.value for arg in node.args[:2] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        if len(literal) == 2 and literal[0] in SERVICES and literal[1] in names:
            yield literal[1], literal[0], node.lineno
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in _NAMING_METHODS
            and literal
            and literal[0] in names
        ):
            yield literal[0], _service_of(node.func.value), node.lineno


def test_every_operation_the_deployed_code_calls_is_declared_for_its_service() -> None:
    """Each operation the deployed code calls must be declared for its service: the one the call names
    (``ctx.aws("ec2", ...)``) or the receiver's name says (``self._logs``, ``eks_client``), else for some service
    that has it. The calls eksops' code makes at run time are checked by the clients themselves (the next tests);
    this scan also covers lines no test reaches. An operation named by a variable cannot be seen here."""
    names = _operation_names()
    found: dict[tuple[str, str | None], str] = {}
    for path in DEPLOYED:
        for operation, service, line in _named_operations(ast.parse(path.read_text(), str(path)), names):
            found.setdefault((operation, service), f"{path.relative_to(ROOT)}:{line}")
    # the scan sees each kind of call
    assert {("put_retention_policy", "logs"), ("describe_instances", "ec2"), ("get_caller_identity", "sts")} <= set(
        found
    )
    assert ("describe_log_groups", "logs") in found and ("query", "dynamodb") in found  # paginators
    unknown = {f"{operation}: {where}" for (operation, service), where in found.items() if service is None}
    assert unknown == set(), (
        f"operations called on a client whose name does not say its service: {sorted(unknown)} (name the client "
        "for its service, e.g. self._logs, or list a name that is no client in _NOT_CLIENTS)"
    )
    declared = {(xform_name(operation), service) for service, ops in OPERATIONS.items() for operation in ops}
    undeclared = {f"{service} {op}": where for (op, service), where in found.items() if (op, service) not in declared}
    assert undeclared == {}, f"operations called in the code but not in OPERATIONS: {undeclared}"
    # and nothing is declared that the code never calls (it would only make the layer's models bigger)
    unused = {f"{service} {operation}" for operation, service in declared if (operation, service) not in found}
    assert unused <= _CALLED_BY_LIBRARIES, f"declared but never called: {sorted(unused - _CALLED_BY_LIBRARIES)}"


# Operations a library calls on a client eksops hands it: Powertools' idempotency store (node_scaler, image_updater)
_CALLED_BY_LIBRARIES = {f"dynamodb {name}" for name in ("delete_item", "get_item", "put_item", "update_item")}


def test_the_scan_tells_services_apart() -> None:
    """The scan is no weaker than it says: a call on a client named for one service is checked against that one."""
    names = _operation_names()
    code = (
        'self._logs.tag_resource(x)\nctx.aws("ec2", "describe_images")\nscan = "scan"\nself._queue.publish(m)\n'
        "self._history.publish(m)\n"
    )
    assert sorted(_named_operations(ast.parse(code), names), key=lambda found: found[2]) == [
        ("tag_resource", "logs", 1),
        ("describe_images", "ec2", 2),
        ("publish", None, 4),  # a receiver whose name says no service: refused by the test above
    ]  # and line 5's receiver is listed as no client


def _call_from(module: str, code: str, filename: str = "", **names: Any) -> Any:
    """Run ``code`` as if it were a line of ``module`` (what the clients look at to tell eksops' calls apart)."""
    namespace = {"__name__": module, **names}
    exec(compile(code, filename or f"<{module}>", "exec"), namespace)
    return namespace.get("result")


def _answering(made: Any, parsed: dict[str, Any]) -> list[str]:
    """Answer every call of ``made`` with ``parsed`` instead of sending it; returns the operations answered."""
    answered: list[str] = []

    def answer(model: Any, **_: Any) -> tuple[Any, dict[str, Any]]:
        answered.append(model.name)
        return SimpleNamespace(status_code=200, headers={}), parsed

    made.meta.events.register("before-call", answer)
    return answered


def test_eksops_code_is_refused_an_undeclared_operation(fresh: None) -> None:
    sts = client("sts")
    answered = _answering(sts, {"Account": "123456789012"})
    # a declared operation, from eksops' code: the call goes through
    assert _call_from("eksops.probe", "result = sts.get_caller_identity()", sts=sts)["Account"] == "123456789012"
    with pytest.raises(UndeclaredOperation) as refused:
        _call_from("eksops.probe", "sts.get_session_token()", sts=sts)
    # eksops' code is eksops' wherever the checkout is, even under a folder named tests
    with pytest.raises(UndeclaredOperation):
        _call_from("eksops.probe", "sts.get_session_token()", "/srv/tests/eksops/layers/eksops/eksops/x.py", sts=sts)
    assert answered == ["GetCallerIdentity"]  # the undeclared one never reached the wire
    assert (refused.value.service, refused.value.operation) == ("sts", "GetSessionToken")
    assert str(refused.value) == (
        "eksops.probe called sts GetSessionToken, which is not in eksops.aws.clients.OPERATIONS: declare it there "
        "(the layer's sts client has only the declared operations)"
    )
    assert isinstance(refused.value, AttributeError)  # what the layer's client, without the method, would raise


def test_a_library_calling_for_eksops_is_refused_too_but_tests_and_tools_are_not(fresh: None) -> None:
    """Powertools' idempotency store calls the DynamoDB client eksops hands it: its frames are looked through to
    eksops' code. Tests and the development tools (eksops_dev) set up and inspect AWS with any operation."""
    dynamodb = client("dynamodb")
    answered = _answering(dynamodb, {"TableNames": []})
    library = _call_from(
        "aws_lambda_powertools.utilities.probe",
        "def result():\n    return dynamodb.list_tables()\n",
        dynamodb=dynamodb,
    )
    with pytest.raises(UndeclaredOperation):
        _call_from("eksops.probe", "library()", library=library)
    # a handler module (app.py, loaded under any name) between them: every handler runs inside eksops'
    # log_failures wrapper, which is what the clients find
    handler = _call_from("app", "def result():\n    return library()\n", library=library)
    with pytest.raises(UndeclaredOperation):
        _call_from("eksops.observability", "wrapped()", wrapped=handler)
    assert answered == []
    for caller in ("eksops_dev.sandbox", "tests.integration.probe"):
        assert _call_from(caller, "result = library()", library=library) == {"TableNames": []}
    assert library() == {"TableNames": []}  # called from this test module
    assert answered == ["ListTables"] * 3
