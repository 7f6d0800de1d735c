"""The filter pattern emulation, and the default ERROR_FILTER_PATTERN on real-shaped Fluent Bit records.

Records have the shapes Fluent Bit writes to /aws/containerinsights/<cluster>/application, with the
configurations eksops installs (eksops/kube/manifests/):

* nodes (Container Insights' Fluent Bit DaemonSet, fluent-bit.json): the cri multiline parser gives time,
  stream, _p and the container line in `log`; the kubernetes filter (Labels and Annotations Off, Merge_Log On,
  Merge_Log_Key log_processed) adds `kubernetes` and, for a line that is JSON, its fields under `log_processed`;
* Fargate (the built-in log router, fargate-logging.json): the crio parser gives stream, logtag and `log` (the
  time becomes the event's timestamp); the kubernetes filter (Merge_Log On, Merge_Log_Key log_processed, the
  line kept in `log`, labels and annotations left on) adds `kubernetes`, with Fargate's `fargate-ip-...` host
  and its CapacityProvisioned and Logging annotations, and `log_processed`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import eksops.kube
from eksops.logs.error_alarms_config import DEFAULT_FILTER_PATTERN, DEFAULT_INSIGHTS_FILTER
from eksops_dev.filter_pattern import PatternError, count, parse


def record(
    line: str,
    *,
    pod: str = "orders-api-6d5f8b7c9d-x2k4p",
    namespace: str = "shop",
    container: str = "orders-api",
    image: str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders-api:1.4.2",
    stream: str = "stdout",
    processed: dict[str, Any] | None = None,
) -> str:
    body: dict[str, Any] = {
        "time": "2026-11-25T09:14:02.412345678Z",
        "stream": stream,
        "_p": "F",
        "log": line,
        "kubernetes": {
            "pod_name": pod,
            "namespace_name": namespace,
            "pod_id": "8f1f3c2e-4b7a-4d0e-9a61-2f5c7d9e0b13",
            "host": "ip-10-0-12-34.eu-west-1.compute.internal",
            "container_name": container,
            "docker_id": "3b9c1e0f7a2d4c6b8e5f1a3c7d9b2e4f6a8c0d1e3f5a7b9c2d4e6f8a0b1c3d5e",
            "container_hash": f"{image.rsplit(':', 1)[0]}@sha256:{'9f8e7d6c5b4a3928' * 4}",
            "container_image": image,
        },
    }
    if processed is not None:
        body["log_processed"] = processed
    return json.dumps(body)


def json_line(fields: dict[str, Any], **kwargs: Any) -> str:
    """A container line that is itself JSON: Fluent Bit keeps it in `log` and merges it into `log_processed`."""
    return record(json.dumps(fields), processed=fields, **kwargs)


def fargate(
    line: str,
    *,
    pod: str = "checkout-5b7d9c6f4-7hx2m",
    namespace: str = "shop",
    container: str = "checkout",
    stream: str = "stdout",
    processed: dict[str, Any] | None = None,
) -> str:
    """A record from a Fargate pod, as the Fargate log router ships it with eksops' aws-logging ConfigMap: the
    node record's shape with the crio parser's fields, labels and annotations, and a fargate-ip host."""
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{container}:2.0.1"
    body = json.loads(
        record(line, pod=pod, namespace=namespace, container=container, image=image, stream=stream, processed=processed)
    )
    del body["time"], body["_p"]
    body["logtag"] = "F"
    body["kubernetes"].update(
        labels={"app": container, "eks.amazonaws.com/fargate-profile": "fp-default", "pod-template-hash": "5b7d9c6f4"},
        annotations={"CapacityProvisioned": "0.25vCPU 0.5GB", "Logging": "LoggingEnabled"},
        host="fargate-ip-10-0-140-27.eu-west-1.compute.internal",
    )
    return json.dumps(body)


def fargate_json(fields: dict[str, Any], **kwargs: Any) -> str:
    return fargate(json.dumps(fields), processed=fields, **kwargs)


JAVA_TRACE = [
    "2026-11-25 09:14:02.412 ERROR 1 --- [nio-8080-exec-3] o.a.c.c.C.[.[.[/].[dispatcherServlet] : "
    "Servlet.service() for servlet [dispatcherServlet] threw exception",
    'java.lang.NullPointerException: Cannot invoke "String.length()" because "sku" is null',
    "\tat com.example.orders.OrderService.price(OrderService.java:88)",
    "\tat com.example.orders.OrderController.create(OrderController.java:42)",
    "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available",
    "\t... 87 common frames omitted",
]
PYTHON_UNCAUGHT = [
    "Traceback (most recent call last):",
    '  File "/app/worker.py", line 31, in <module>',
    "    main()",
    '  File "/app/worker.py", line 27, in main',
    "    qty = int(payload['qty'])",
    "ValueError: invalid literal for int() with base 10: 'abc'",
]
PYTHON_LOGGED = [
    "ERROR:payments.charge:charge failed for order 8812",
    "Traceback (most recent call last):",
    '  File "/app/payments/charge.py", line 54, in charge',
    "    amount = body['amount']",
    "KeyError: 'amount'",
]
GO_PANIC = [
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
    "",
    "goroutine 1 [running]:",
    "main.(*server).handle(0x0, {0x7a3f20, 0xc0001a2000})",
    "\t/src/cmd/api/main.go:88 +0x1d",
]
NODE_UNCAUGHT = [
    "/app/server.js:12",
    "    throw new Error('upstream timeout');",
    "    ^",
    "",
    "Error: upstream timeout",
    "    at Timeout._onTimeout (/app/server.js:12:11)",
    "    at listOnTimeout (node:internal/timers:573:17)",
]

# (case, records, how many the default pattern counts)
TABLE: list[tuple[str, list[str], int]] = [
    # errors in the line
    ("logback ERROR line", [record(JAVA_TRACE[0])], 1),
    ("log4j [ERROR]", [record("[ERROR] 2026-11-25 09:14:02 OrderService - stock check failed")], 1),
    ("python logging ERROR", [record("ERROR:payments.charge:charge failed for order 8812", stream="stderr")], 1),
    ("python CRITICAL", [record("CRITICAL:root:database unreachable, giving up")], 1),
    ("FATAL", [record("2026/11/25 09:14:02 FATAL could not bind :8080: address already in use")], 1),
    ("logfmt level=error (lower-case level)", [record('time=2026-11-25T09:14:02Z level=error msg="db timeout"')], 1),
    ("logfmt level=fatal", [record('level=fatal msg="config invalid" key=DATABASE_URL')], 1),
    ("JSON line, level error", [json_line({"level": "error", "msg": "payment declined", "order": 8812})], 1),
    ("JSON line, level fatal", [json_line({"level": "fatal", "msg": "cannot start"})], 1),
    ("JSON line, level ERROR", [json_line({"level": "ERROR", "message": "retry budget exhausted"})], 1),
    ("JSON line, level Error (Serilog/.NET)", [json_line({"level": "Error", "msg": "order rejected"})], 1),
    ("JSON line, level critical (structlog)", [json_line({"level": "critical", "event": "db unreachable"})], 1),
    ("JSON line, level CRITICAL", [json_line({"level": "CRITICAL", "msg": "disk full"})], 1),
    ("JSON line, level Critical", [json_line({"level": "Critical", "msg": "disk full"})], 1),
    ("JSON line, level FATAL", [json_line({"level": "FATAL", "msg": "cannot start"})], 1),
    ("JSON line, level Fatal", [json_line({"level": "Fatal", "msg": "cannot start"})], 1),
    ("JSON line, level panic (zap/logrus)", [json_line({"level": "panic", "msg": "invariant broken"})], 1),
    ("JSON line, level Panic", [json_line({"level": "Panic", "msg": "invariant broken"})], 1),
    ("JSON line, level PANIC", [json_line({"level": "PANIC", "msg": "invariant broken"})], 1),
    ("Java uncaught", [record('Exception in thread "main" java.lang.IllegalStateException: no config')], 1),
    ("Go panic", [record(GO_PANIC[0], stream="stderr")], 1),
    ("Node/cobra Error:", [record("Error: unknown flag: --verbos")], 1),
    # "error" only in pod, namespace, container or image names
    ("pod named error-*", [record("GET /healthz 200 1ms", pod="error-pages-7c9f5d8b6-q2w4e", namespace="ingress")], 0),
    ("namespace errors", [record("INFO flushed 12 events", pod="error-tracker-0", namespace="errors")], 0),
    ("image and container named error", [record("listening on :8080", container="error", image="nginx/error:1")], 0),
    ("stderr is not an error", [record("INFO Started OrdersApplication in 2.1 seconds", stream="stderr")], 0),
    # lower-case, and words that only look like errors
    ("lower-case free text", [record("retrying after error: connection reset by peer (attempt 2/5)")], 0),
    ("zero errors", [record("processed 120 requests, 0 errors, 3 warnings")], 0),
    ("URL with errors", [record('10.0.3.7 - - "GET /api/errors?page=2 HTTP/1.1" 200 512')], 0),
    ("JSON line, level info mentioning error", [json_line({"level": "info", "msg": "error budget at 93%"})], 0),
    ("Error inside a word", [record("INFO ErrorBoundary mounted for /checkout")], 0),
    # JSON levels the default does not know (docs: "Not counted by default")
    ("JSON line, numeric level (pino)", [json_line({"level": 50, "msg": "payment declined"})], 0),
    ("JSON line, level err", [json_line({"level": "err", "msg": "payment declined"})], 0),
    ("JSON line, levelname error", [json_line({"levelname": "error", "message": "payment declined"})], 0),
    ("JSON line, severity error", [json_line({"severity": "error", "message": "payment declined"})], 0),
    # stack traces, one record per line as Fluent Bit ships them without a multiline parser
    ("Java stack trace", [record(line) for line in JAVA_TRACE], 1),
    ("Python uncaught traceback", [record(line, stream="stderr") for line in PYTHON_UNCAUGHT], 1),
    ("Python logged exception (ERROR line + traceback)", [record(line) for line in PYTHON_LOGGED], 2),
    ("Go panic with goroutines", [record(line, stream="stderr") for line in GO_PANIC], 1),
    ("Node uncaught", [record(line, stream="stderr") for line in NODE_UNCAUGHT], 1),
    ("Java stack trace joined by a multiline parser", [record("\n".join(JAVA_TRACE))], 1),
    # Fargate pods: the same shape (line in `log`, JSON fields under `log_processed`), other metadata
    ("Fargate: logback ERROR line", [fargate(JAVA_TRACE[0])], 1),
    ("Fargate: logfmt level=error", [fargate('time=2026-11-25T09:14:02Z level=error msg="db timeout"')], 1),
    ("Fargate: JSON line, level error", [fargate_json({"level": "error", "msg": "payment declined"})], 1),
    ("Fargate: JSON line, level critical", [fargate_json({"level": "critical", "event": "db unreachable"})], 1),
    ("Fargate: JSON line, level panic", [fargate_json({"level": "panic", "msg": "invariant broken"})], 1),
    ("Fargate: Go panic with goroutines", [fargate(line, stream="stderr") for line in GO_PANIC], 1),
    ("Fargate: Python uncaught traceback", [fargate(line, stream="stderr") for line in PYTHON_UNCAUGHT], 1),
    ("Fargate: pod named error-*", [fargate("GET /healthz 200 1ms", pod="error-pages-6f9d7c5b8-k2m4p")], 0),
    ("Fargate: namespace errors", [fargate("INFO flushed 12 events", pod="error-tracker-0", namespace="errors")], 0),
    ("Fargate: JSON line, level info", [fargate_json({"level": "info", "msg": "error budget at 93%"})], 0),
    ("Fargate: lower-case free text", [fargate("retrying after error: connection reset by peer")], 0),
    # known false positives, documented
    ("ERROR inside another word", [record("INFO grpc status NO_ERROR for /orders.v1.Orders/Get")], 1),
]


@pytest.mark.parametrize(("case", "records", "expected"), TABLE, ids=[case for case, _, _ in TABLE])
def test_default_pattern_counts_errors_in_the_line(case: str, records: list[str], expected: int) -> None:
    assert count(DEFAULT_FILTER_PATTERN, records) == expected


def test_the_whole_table_at_once() -> None:
    everything = [r for _, records, _ in TABLE for r in records]
    assert count(DEFAULT_FILTER_PATTERN, everything) == sum(expected for _, _, expected in TABLE)


def test_a_naive_term_pattern_counts_pod_and_namespace_names() -> None:
    """Why the default is a JSON pattern on $.log: terms match anywhere in the record, metadata included."""
    naive = "?ERROR ?Error ?error"
    metadata_only = [records[0] for case, records, _ in TABLE if case in {"pod named error-*", "namespace errors"}]
    assert count(naive, metadata_only) == 2
    assert count(DEFAULT_FILTER_PATTERN, metadata_only) == 0


def test_the_fargate_records_have_the_node_records_shape() -> None:
    """What the pattern reads (`log`, `log_processed`) is where it is on nodes; only the metadata differs."""
    fields = {"level": "error", "msg": "payment declined"}
    node, on_fargate = json.loads(json_line(fields)), json.loads(fargate_json(fields))
    assert node["log"] == on_fargate["log"] and node["log_processed"] == on_fargate["log_processed"] == fields
    assert on_fargate["kubernetes"]["host"].startswith("fargate-ip-")
    assert set(node) - set(on_fargate) == {"time", "_p"} and set(on_fargate) - set(node) == {"logtag"}


MANIFESTS = Path(eksops.kube.__file__).parent / "manifests"


def _settings(conf: str, name: str) -> dict[str, str]:
    """The settings of the [FILTER] section named ``name`` in a Fluent Bit configuration."""
    for section in conf.split("[FILTER]")[1:]:
        pairs: dict[str, str] = {}
        for line in section.split("\n[")[0].strip().splitlines():  # up to the next section
            key, _, value = line.strip().partition(" ")
            pairs[key] = value.strip()
        if pairs.get("Name") == name:
            return pairs
    raise AssertionError(f"no {name} filter")


def _configs() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and key.endswith(".conf"):
                    found[key] = value
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in ("fluent-bit.json", "fargate-logging.json"):
        walk(json.loads((MANIFESTS / name).read_text()))
    return found


def test_the_records_have_the_shape_of_the_configurations_eksops_installs() -> None:
    """The table's records are right only while both Fluent Bit configurations merge JSON lines this way."""
    confs = _configs()
    node = _settings(confs["application-log.conf"], "kubernetes")
    on_fargate = _settings(confs["filters.conf"], "kubernetes")
    for settings in (node, on_fargate):
        assert settings["Merge_Log"] == "On" and settings["Merge_Log_Key"] == "log_processed"
        assert settings.get("Keep_Log", "On") == "On"  # the line stays in `log`
    crio = re.search(r"Regex\s+(.*)", confs["parsers.conf"])
    assert crio and set(re.findall(r"\?<(\w+)>", crio.group(1))) == {"time", "stream", "logtag", "log"}
    assert set(json.loads(fargate("x"))) == {"stream", "logtag", "log", "kubernetes"}  # time: the event's timestamp


def _insights_selects(message: str) -> bool:
    """DEFAULT_INSIGHTS_FILTER evaluated in Python: `log like /regex/ or log_processed.level in [...]`."""
    regex = re.search(r"log like /(.*)/ or", DEFAULT_INSIGHTS_FILTER)
    levels = re.search(r"log_processed\.level in (\[.*\])", DEFAULT_INSIGHTS_FILTER)
    assert regex and levels
    body = json.loads(message)
    by_line = re.search(regex.group(1), body["log"], re.MULTILINE) is not None
    return by_line or body.get("log_processed", {}).get("level") in json.loads(levels.group(1))


@pytest.mark.parametrize(("case", "records", "expected"), TABLE, ids=[case for case, _, _ in TABLE])
def test_the_insights_query_selects_what_the_filter_counts(case: str, records: list[str], expected: int) -> None:
    compiled = parse(DEFAULT_FILTER_PATTERN)
    for message in records:
        assert _insights_selects(message) == compiled.matches(message), message


# -- the emulation itself, on the user guide's examples --------------------------------------------------------

GUIDE_DOCUMENT = json.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
        "latency": 512,
    }
)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.eventType = "UpdateTrail" }', True),
        ("{ $.eventType = UpdateTrail }", True),
        ('{ $.eventType = "updatetrail" }', False),  # case-sensitive
        ("{ $.sourceIPAddress != 123.123.* }", True),
        ("{ $.sourceIPAddress = 111.111.* }", True),
        ('{ $.eventType = "*Trail" }', True),
        ('{ $.eventType = "Update*" }', True),
        ('{ $.eventType = "*date*" }', True),
        ('{ $.eventType = "Up*Trail" }', False),  # a * inside is a literal *
        ('{ $.arrayKey[0] = "value" }', True),
        ("{ $.objectList[1].id = 2 }", True),
        ("{ $.SomeObject IS NULL }", True),
        ("{ $.SomeOtherObject NOT EXISTS }", True),
        ("{ $.eventType NOT EXISTS }", False),
        ("{ $.ThisFlag IS TRUE }", True),
        ("{ $.ThisFlag IS FALSE }", False),
        ("{ $.arrayKey = 1 }", False),  # a selector on an array never applies
        ("{ $.arrayKey != 1 }", False),
        ('{ $.missing != "x" }', False),  # nor one on nothing
        ("{ $.latency >= 500 }", True),
        ("{ $.latency < 5e2 }", False),
        ("{ $.latency = * }", True),
        ("{ $.missing = * }", False),
        ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
        ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
        (
            '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }',
            True,
        ),
        (
            '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch)'
            " && $.actions[2] = nomatch }",
            False,
        ),
        ("{ $.eventType = %Update[A-Z]rail% }", True),
        ("{ $.eventType = %^Trail% }", False),
    ],
)
def test_json_patterns_follow_the_user_guide(pattern: str, expected: bool) -> None:
    assert parse(pattern).matches(GUIDE_DOCUMENT) is expected


@pytest.mark.parametrize(
    ("pattern", "messages", "expected"),
    [
        ("", ["anything", ""], 2),
        ("ERROR", ["[ERROR] A fatal exception has occurred", "Exiting with ERRORCODE: -1", "error"], 2),
        ('"ERROR" - "Exiting"', ["[ERROR] A fatal exception has occurred", "Exiting with ERRORCODE: -1"], 1),
        ("ERROR Exception", ["[ERROR] Caught IllegalArgumentException", "[ERROR] Unhandled Exception", "ERROR"], 2),
        ('"Failed to process the request"', ["[WARN] Failed to process the request", "Failed to process"], 1),
        ("?ERROR ?WARN", ["ERROR WARN message", "ERROR message", "WARN message", "INFO message"], 3),
        ("ERROR -WARN", ["ERROR WARN message", "ERROR message", "WARN message"], 1),
        ("%AUTHORIZED%", ["[ERROR 401] UNAUTHORIZED REQUEST", "[SUCCESS 200] AUTHORIZED REQUEST", "authorized"], 2),
        ('{ $.log = "*ERROR*" }', ["ERROR but not JSON", '["ERROR"]', '{"log": "ERROR"}'], 1),
    ],
)
def test_term_and_regex_patterns(pattern: str, messages: list[str], expected: int) -> None:
    assert count(pattern, messages) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "[ip, user, ..., status_code = 4*, bytes]",  # space-delimited: not emulated
        '{ $.log = "*ERROR*" ',
        "{ $.log = }",
        "{ log = ERROR }",
        '{ $.log = "unterminated }',
        "{ $.a = 1 } trailing",
        "{ ($.a = 1 }",
        "%has space%",
        "%(group)%",
        "{ $.a > abc }",
        "?ERROR WARN",
        "ERROR-CODE",
    ],
)
def test_malformed_or_unsupported_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PatternError):
        parse(pattern)
