"""Hypothesis strategies for bad events: the real samples in events/ mutated, and shapes generated from scratch.

Mutations pick a node of a sample (most often one a parser reads: the envelope, ``detail``'s first level, the
request parameters, a continuation's checkpoint, the SNS record, or a field inside an SNS message's JSON) and
drop it, swap its type, replace it with a huge or hostile string, nest it deeply, turn numbers into strings and
back, put lists where objects were, or add a key such as ``errorCode``. Generated shapes are EventBridge- or
SNS-like objects (CloudTrail calls, schedules, continuations, ECR pushes and scans, CodePipeline stage changes,
SNS records) whose fields come from the values the functions look for and from arbitrary JSON.

Every value is JSON (what Lambda can deliver): no NaN or infinities, strings may hold lone surrogates (JSON
escapes them), nesting stays under the recursion limit of ``json.dumps``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

SOURCES = (
    *("aws.events", "aws.logs", "aws.eks", "eksops", "aws.ec2", "aws.health", "aws.guardduty"),
    *("aws.ecr", "aws.codepipeline", ""),
)
DETAIL_TYPES = (
    "Scheduled Event",
    "AWS API Call via CloudTrail",
    "eksops sweep continuation",
    "AWS Health Event",
    "GuardDuty Finding",
    "ECR Image Action",
    "ECR Image Scan",
    "CodePipeline Stage Execution State Change",
)
EVENT_NAMES = (
    "CreateLogGroup",
    "DeleteLogGroup",
    "DeleteRetentionPolicy",
    "PutRetentionPolicy",
    "CreateCluster",
    "CreateNodegroup",
    "CreateFargateProfile",
    "UpdateClusterVersion",
    "RunInstances",
)
FUNCTIONS = (
    *("log_retention", "error_alarms", "cluster_bootstrap", "node_scaler", "notifier", "image_updater"),
    "compliance_sweep",
)
NAMES = (
    "prod-eu",
    "/aws/containerinsights/prod-eu/application",
    "/aws/containerinsights/prod-eu/host",
    "/aws/containerinsights/-prod/application",
    "/aws/containerinsights/prod eu/application",
    "/aws/eks/prod-eu/cluster",
    "arn:aws:events:us-east-1:123456789012:rule/eksops-Sweep",
)
# ECR and CodePipeline values (image_updater): the samples' (events/image_updater) and near misses of each rule
# its parser checks (ECR's repository name, tag and digest formats, CodePipeline's names and execution ids).
SAMPLE_DIGEST = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd"
SAMPLE_EXECUTION = "4d3f5a1b-9c2e-4f7a-8b6d-1e0c2a3b4c5d"
REPOSITORIES = ("payments-api", "team/payments-api", "ledger", "Payments-API", "payments--api", "payments-api/", "a")
IMAGE_TAGS = ("1.43.0", "1.42.0", "1.44.0", "2.0.0", "1.44.0-rc.1", "latest", "main-1a2b3c4", "v1.43.0", "-1", ".x")
DIGESTS = (
    SAMPLE_DIGEST,
    "sha256:" + "0" * 64,
    "sha256:" + "F" * 64,
    "sha256:7f5b2640",
    "sha512:" + "a" * 128,
    SAMPLE_DIGEST + "\n",
)
PIPELINES = ("payments-api", "checkout", "payments api", "payments-api/Build")
STAGES = ("Build", "Deploy", "build", "Build*")
SEVERITY_NAMES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED", "critical", "SEVERE")
# Keys added to objects: the ones the functions read, so that an added key can change what they decide.
ADDED_KEYS = (
    "errorCode",
    "errorMessage",
    "name",
    "clusterName",
    "logGroupName",
    "requestParameters",
    "checkpoint",
    "resources",
    "Subject",
    "Message",
    "MessageId",
    "links",
    "lines",
    "details",
    "severity",
    "kind",
)
# Depth of generated nesting: json.dumps (the Lambda runtime and the sandbox's dispatcher) recurses per level.
MAX_DEPTH = 300
HUGE = (1_000, 10_000, 100_000)
MUTATIONS = (1, 1, 1, 1, 1, 1, 2, 2, 2, 3)  # how many mutations a sample gets, drawn from these
# Half the mutations put a value of another type in a field the parser reads; the others vary more.
OPERATIONS = ("swap",) * 7 + ("replace", "replace", "drop", "retype", "wrap", "add", "message")
# One value of each JSON type, and a few edge values: what a field of the wrong type most often holds.
TYPE_SWAPS: tuple[Any, ...] = (None, True, False, 0, 5, -1, 1.5, 10**400, "", "x", "5", [], ["x"], [{}], {}, {"a": 1})
# What Lambda receives asynchronously, and EventBridge and SNS carry, is at most 256 KB: larger events cannot arrive.
# JSON with ASCII escapes, as the sandbox's dead-letter queue stores each failed event.
MAX_EVENT_BYTES = 240_000


def _short(build: Callable[[], st.SearchStrategy[Any]]) -> Callable[[], st.SearchStrategy[Any]]:
    """``build``'s strategy, made once, drawn through a composite whose repr is only its name. Hypothesis builds
    strategy reprs (a test's database key, and more), and nested one_of strategies repeat every alternative's
    repr: 20 MB for the SNS shapes without this."""
    made: list[st.SearchStrategy[Any]] = []

    def draw_built(draw: st.DrawFn) -> Any:
        if not made:
            made.append(build())
        return draw(made[0])

    draw_built.__name__ = draw_built.__qualname__ = build.__name__.lstrip("_")
    strategy = st.composite(draw_built)()
    return lambda: strategy


def _hostile_strings() -> st.SearchStrategy[str]:
    """Strings that broke or could break something: huge, lone surrogates, control characters, markup."""
    huge = st.one_of(
        st.builds(lambda size: "x" * size, st.sampled_from(HUGE)),
        st.builds(
            lambda char, size: char * size, st.sampled_from(["é", "\ud800", "[", "{", "\\"]), st.sampled_from(HUGE[:2])
        ),
    )
    return st.one_of(
        st.sampled_from(
            [
                "",
                " ",
                "\ud800",
                "\udfff lone low surrogate",
                "prod-eu\n",
                "prod-eu\x00",
                "../../etc/passwd",
                "<!channel> <https://evil.example|click>",
                "*bold* _it_ `code` ~strike~",
                "${jndi:ldap://127.0.0.1/x}",
                "null",
                "0",
                "-1",
                "1e309",
                "NaN",
                "[" * 1000,
                '{"a":' * 500,
                "\u202e\u200b\ufeff",
            ]
        ),
        st.sampled_from(NAMES),
        huge,
        st.text(max_size=30),
    )


def _numbers() -> st.SearchStrategy[int | float]:
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 2**63, 10**400, -(10**400)]),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), numbers(), hostile_strings())


def _json_values() -> st.SearchStrategy[Any]:
    """Arbitrary JSON, shallow."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(ADDED_KEYS), st.text(max_size=8)), children, max_size=4),
        ),
        max_leaves=12,
    )


def deep(depth: int, kind: str, leaf: Any) -> Any:
    """``leaf`` nested ``depth`` times in lists or objects (built iteratively, no recursion)."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def _deep_values() -> st.SearchStrategy[Any]:
    return st.builds(deep, st.integers(min_value=20, max_value=MAX_DEPTH), st.sampled_from(["list", "dict"]), scalars())


def _replacements() -> st.SearchStrategy[Any]:
    """A value to put where another was: of another type, hostile, empty, or deeply nested."""
    return st.one_of(scalars(), json_values(), deep_values(), st.sampled_from([{}, [], "", [{}], [[]]]))


# -- mutations of samples -------------------------------------------------------------------------------------------

# Keys some parser reads (the envelope, CloudTrail's detail, a continuation, the SNS record), near the root...
READ_KEYS = frozenset(
    {
        *("source", "detail-type", "detail", "id", "account", "region", "resources"),
        *("eventName", "eventSource", "requestParameters", "errorCode", "function", "run_id", "part", "checkpoint"),
        *("Records", "Sns", "MessageId", "TopicArn", "Subject", "Message", "Timestamp"),
        # inside SNS messages: eksops' envelope, CloudWatch alarms, GuardDuty findings, Health events
        *("kind", "severity", "title", "summary", "details", "lines", "links", "cluster"),
        *("AlarmName", "NewStateValue", "NewStateReason", "Trigger", "eventTypeCode", "findings"),
        # ECR and CodePipeline details (image_updater)
        *("repository-name", "image-tag", "image-tags", "image-digest", "action-type", "result", "scan-status"),
        *("finding-severity-counts", "pipeline", "stage", "execution-id", "state"),
        "sweep",  # compliance_sweep's on-demand runs (its "cluster" is read above)
    }
)
# ...and containers whose every child is read.
READ_UNDER: tuple[Path, ...] = (
    ("resources",),
    ("detail", "requestParameters"),
    ("detail", "checkpoint"),
    ("Records",),
    ("Records", 0, "Sns"),
    ("detail", "image-tags"),
    ("detail", "finding-severity-counts"),
)


def paths(value: Any) -> list[Path]:
    """Every node's path, parents before children (the root is ``()``); iterative, for deeply nested events."""
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        found.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, key), child) for key, child in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*path, index), child) for index, child in reversed(list(enumerate(node))))
    return found


def focused(all_paths: Sequence[Path]) -> list[Path]:
    """The paths parsers read: READ_KEYS up to three levels deep, and the children of READ_UNDER."""

    def read(p: Path) -> bool:
        near = bool(p) and len(p) <= 3 and p[-1] in READ_KEYS
        return near or any(len(p) == len(u) + 1 and p[: len(u)] == u for u in READ_UNDER)

    return [p for p in all_paths if read(p)]


def get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def put(root: Any, path: Path, new: Any) -> Any:
    """``root`` with the node at ``path`` replaced (the root itself when ``path`` is empty)."""
    if not path:
        return new
    get(root, path[:-1])[path[-1]] = new
    return root


def drop(root: Any, path: Path) -> Any:
    if not path:
        return root
    parent = get(root, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
        del parent[path[-1]]
    return root


def retyped(value: Any) -> Any:
    """The same content as another type: numbers as strings and back, objects as lists and back."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return [value]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value[0] if len(value) == 1 else {str(i): v for i, v in enumerate(value)}
    return "null"


def mutate(draw: st.DrawFn, sample: Any) -> Any:
    """One mutation applied to (a copy of) ``sample``: returns the mutated event.

    A function of ``draw`` rather than a strategy of its own: a strategy made per sample would carry the sample
    in its repr, which Hypothesis builds (and the samples grow to 200 KB).
    """
    event = copy.deepcopy(sample)
    all_paths = paths(event)
    focus = focused(all_paths) or all_paths
    # Mostly where parsers read: most other nodes (CloudTrail's userIdentity, ...) are read by no function.
    # Indices rather than sampled_from(paths): a strategy made per event would be hashed and repr'd by Hypothesis.
    sns = _sns(event)
    # An SNS record: half the mutations go inside its message, where the notifier's formats read (any message
    # must be delivered); the envelope around it has only four fields that matter.
    inside = sns is not None and isinstance(sns.get("Message"), str) and draw(st.booleans())
    op = "message" if inside else draw(st.sampled_from(OPERATIONS))
    pool = focus if op == "swap" or draw(st.integers(min_value=0, max_value=3)) else all_paths
    path = pool[draw(st.integers(min_value=0, max_value=len(pool) - 1))]
    node = get(event, path)
    if op == "swap":  # the commonest bad event: one field the parser reads, of another type
        return put(event, path, copy.deepcopy(draw(st.sampled_from(TYPE_SWAPS))))
    if op == "drop":
        return drop(event, path)
    if op == "replace":
        return put(event, path, draw(replacements()))
    if op == "retype":
        return put(event, path, retyped(node))
    if op == "wrap":
        return put(event, path, [node])
    if op == "add":
        target = node if isinstance(node, dict) else get(event, path[:-1]) if path else event
        if isinstance(target, dict):
            target[draw(st.sampled_from(ADDED_KEYS))] = draw(st.one_of(hostile_strings(), replacements()))
        return event
    # "message": a mutation inside an SNS message's JSON document
    if sns is None or not isinstance(sns.get("Message"), str):
        return put(event, path, draw(replacements()))
    try:
        document = json.loads(sns["Message"])
    except (ValueError, RecursionError):  # not JSON, or JSON nested deeper than Python's parser goes (defect 1's shape)
        sns["Message"] = draw(st.one_of(hostile_strings(), st.builds(json.dumps, json_values())))
        return event
    inner = mutate(draw, document)
    sns["Message"] = json.dumps(inner, ensure_ascii=draw(st.booleans()))
    return event


def _sns(event: Any) -> dict[str, Any] | None:
    try:
        sns = event["Records"][0]["Sns"]
    except (KeyError, IndexError, TypeError):
        return None
    return sns if isinstance(sns, dict) else None


def mutated(own: Sequence[Any], others: Sequence[Any]) -> st.SearchStrategy[Any]:
    """A sample (mostly the function's own, sometimes another function's) with one to three mutations."""
    samples, mine = [*own, *others], len(own)

    @st.composite
    def mutated_sample(draw: st.DrawFn) -> Any:  # no arguments: a strategy's arguments end up in its repr
        own_only = draw(st.integers(min_value=0, max_value=6)) or mine == len(samples)
        sample = samples[draw(st.integers(min_value=0, max_value=(mine if own_only else len(samples)) - 1))]
        # One mutation most often: a second one tends to break what the parser checks first, hiding the first.
        for _ in range(MUTATIONS[draw(st.integers(min_value=0, max_value=len(MUTATIONS) - 1))]):
            sample = mutate(draw, sample)
        return sample

    return mutated_sample()


# -- generated shapes -----------------------------------------------------------------------------------------------


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: often a plausible one, sometimes any JSON."""
    return st.one_of(strategy, strategy, strategy, replacements())


def _mostly(value: Any, otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` four times in five: the branch of the parser a shape is made for."""
    return st.one_of(st.just(value), st.just(value), st.just(value), st.just(value), otherwise)


def _optional(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required, optional=optional)


def _cloudtrail_details() -> st.SearchStrategy[Any]:
    names = st.one_of(st.sampled_from(NAMES), hostile_strings())
    params = _optional({}, {"logGroupName": _maybe(names), "name": _maybe(names), "clusterName": _maybe(names)})
    return _optional(
        {"eventName": _maybe(st.sampled_from(EVENT_NAMES))},
        {
            "eventSource": _maybe(st.sampled_from(["logs.amazonaws.com", "eks.amazonaws.com", "ec2.amazonaws.com"])),
            "requestParameters": _maybe(st.one_of(st.none(), params)),
            "errorCode": _maybe(st.sampled_from(["AccessDenied", "ResourceInUseException", ""])),
        },
    )


def _tally() -> st.SearchStrategy[Any]:
    counts = st.integers(min_value=-1, max_value=5)
    change = _optional(
        {"group": _maybe(st.sampled_from(NAMES))},
        {"from": _maybe(st.one_of(st.none(), st.integers(1, 3653))), "to": _maybe(st.integers(1, 3653))},
    )
    error = _optional({}, {k: _maybe(st.text(max_size=8)) for k in ("group", "code", "message")})
    return _optional(
        {},
        {
            **{k: _maybe(counts) for k in ("parts", "changed_count", "unchanged", "excluded", "gone_count")},
            "changed": _maybe(st.lists(change, max_size=2)),
            "errors": _maybe(st.lists(error, max_size=2)),
            "gone": _maybe(st.lists(st.sampled_from(NAMES), max_size=2)),
            "excluded_sample": _maybe(st.lists(st.sampled_from(NAMES), max_size=2)),
        },
    )


def _continuation_details() -> st.SearchStrategy[Any]:
    checkpoint = _optional(
        {},
        {
            "page_token": _maybe(st.one_of(st.none(), st.text(max_size=20))),
            "handled": _maybe(st.lists(st.sampled_from(NAMES), max_size=3)),
            "errors": _maybe(st.integers(min_value=-1, max_value=5)),
            "dry_run": _maybe(st.booleans()),
            "cluster": _maybe(st.sampled_from(NAMES)),  # compliance_sweep's checkpoint
            "report": _maybe(_tally()),  # log_retention's tally of the sweep's earlier parts
        },
    )
    return _optional(
        {},
        {
            "function": _maybe(st.sampled_from(FUNCTIONS)),
            "run_id": _maybe(st.uuids().map(str)),
            "part": _maybe(st.integers(min_value=-1, max_value=5)),
            "checkpoint": _maybe(checkpoint),
        },
    )


def _envelope(source: str, detail_type: str, detail: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An EventBridge envelope for one parser branch: its source and detail-type mostly right, the rest anything."""
    return _optional(
        {
            "source": _mostly(source, _maybe(st.sampled_from(SOURCES))),
            "detail-type": _mostly(detail_type, _maybe(st.sampled_from(DETAIL_TYPES))),
            "detail": _maybe(detail),
        },
        {
            "version": _maybe(st.just("0")),
            "id": _maybe(st.uuids().map(str)),
            "account": _maybe(st.just("123456789012")),
            "region": _maybe(st.just("us-east-1")),
            "time": _maybe(st.just("2026-11-25T09:12:44Z")),
            "resources": _maybe(st.lists(st.sampled_from(NAMES), max_size=2)),
        },
    )


def _eventbridge_shapes() -> st.SearchStrategy[Any]:
    """EventBridge-like events for each branch of the parser (schedule, CloudTrail call, continuation)."""
    return st.one_of(
        _envelope("aws.events", "Scheduled Event", st.one_of(st.just({}), json_values())),
        _envelope("aws.logs", "AWS API Call via CloudTrail", cloudtrail_details()),
        _envelope("aws.eks", "AWS API Call via CloudTrail", cloudtrail_details()),
        _envelope("eksops", "eksops sweep continuation", continuation_details()),
    )


def _on_demand_shapes() -> st.SearchStrategy[Any]:
    """compliance_sweep's direct invocations: {"sweep": "all"} or {"sweep": {"cluster": name}}, mostly, with any
    value in their place, extra keys, or another key."""
    what = st.one_of(
        st.just("all"),
        _optional({"cluster": _maybe(st.one_of(st.sampled_from(NAMES), hostile_strings()))}, {"name": json_values()}),
        _maybe(st.sampled_from(["ALL", "", "prod-eu"])),
    )
    return st.one_of(
        _optional({"sweep": what}, {"cluster": _maybe(st.sampled_from(NAMES)), "detail": json_values()}),
        st.dictionaries(st.sampled_from(["sweep", "Sweep", "detail-type", "source"]), json_values(), max_size=3),
    )


def _ecr_push_details() -> st.SearchStrategy[Any]:
    """ECR Image Action details: mostly a successful push to the samples' repository, of any tag and digest (a
    digest the registry does not hold, a tag the image does not carry), sometimes a deletion or anything else."""
    repositories = _maybe(st.one_of(st.sampled_from(REPOSITORIES), hostile_strings()))
    return _optional(
        {
            "result": _mostly("SUCCESS", _maybe(st.sampled_from(["FAILURE", "success", ""]))),
            "repository-name": _mostly(REPOSITORIES[0], repositories),
            "image-digest": _maybe(st.sampled_from(DIGESTS)),
            "action-type": _mostly("PUSH", _maybe(st.sampled_from(["DELETE", "push", ""]))),
            "image-tag": _maybe(st.one_of(st.none(), st.sampled_from(IMAGE_TAGS), hostile_strings())),
        },
        {},
    )


def _ecr_scan_details() -> st.SearchStrategy[Any]:
    """ECR Image Scan details: a basic scan's status, its severity counts and the image's tags."""
    counts = st.dictionaries(
        st.one_of(st.sampled_from(SEVERITY_NAMES), st.text(max_size=8)), _maybe(st.integers(-1, 50)), max_size=3
    )
    repositories = _maybe(st.one_of(st.sampled_from(REPOSITORIES), hostile_strings()))
    return _optional(
        {
            "scan-status": _mostly("COMPLETE", _maybe(st.sampled_from(["FAILED", "IN_PROGRESS", "complete"]))),
            "repository-name": _mostly(REPOSITORIES[0], repositories),
            "image-digest": _maybe(st.sampled_from(DIGESTS)),
        },
        {
            "image-tags": _maybe(st.lists(st.one_of(st.sampled_from(IMAGE_TAGS), hostile_strings()), max_size=3)),
            "finding-severity-counts": _maybe(st.one_of(st.none(), counts)),
        },
    )


def _pipeline_details() -> st.SearchStrategy[Any]:
    """CodePipeline Stage Execution State Change details: mostly the samples' stage succeeding, in any execution
    (one the pipeline never ran, too), sometimes another stage or state."""
    executions = st.one_of(st.just(SAMPLE_EXECUTION), st.uuids().map(str), hostile_strings())
    return _optional(
        {
            "pipeline": _mostly(PIPELINES[0], _maybe(st.one_of(st.sampled_from(PIPELINES), hostile_strings()))),
            "stage": _mostly(STAGES[0], _maybe(st.one_of(st.sampled_from(STAGES), hostile_strings()))),
            "execution-id": _maybe(executions),
            "state": _mostly("SUCCEEDED", _maybe(st.sampled_from(["FAILED", "STARTED", "CANCELED", "succeeded"]))),
        },
        {
            "version": _maybe(st.integers(min_value=-1, max_value=5)),
            "pipeline-execution-attempt": _maybe(st.integers(min_value=-1, max_value=5)),
        },
    )


def _well_formed_image_events() -> st.SearchStrategy[Any]:
    """ECR and CodePipeline events that parse, whose values vary within their formats: a tag the pushed digest
    does not carry, a digest the registry does not hold, an execution the pipeline never ran. They reach the
    service, which must act or decline without failing (the other shapes mostly stop at the parser)."""
    valid_tags = st.sampled_from([tag for tag in IMAGE_TAGS if tag[0].isalnum()])
    digests = st.sampled_from(DIGESTS[:3])
    push = st.fixed_dictionaries(
        {
            "result": st.just("SUCCESS"),
            "repository-name": st.sampled_from(REPOSITORIES[:3]),
            "image-digest": digests,
            "action-type": st.just("PUSH"),
            "image-tag": valid_tags,
        }
    )
    scan = st.fixed_dictionaries(
        {
            "scan-status": st.just("COMPLETE"),
            "repository-name": st.sampled_from(REPOSITORIES[:3]),
            "image-digest": digests,
            "image-tags": st.lists(valid_tags, max_size=2),
            "finding-severity-counts": st.dictionaries(st.sampled_from(SEVERITY_NAMES[:6]), st.integers(0, 5)),
        }
    )
    stage = st.fixed_dictionaries(
        {
            "pipeline": st.sampled_from(PIPELINES[:2]),
            "stage": st.just(STAGES[0]),
            "execution-id": st.one_of(st.just(SAMPLE_EXECUTION), st.uuids().map(str)),
            "state": st.just("SUCCEEDED"),
        }
    )

    def envelope(source: str, detail_type: str, detail: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries(
            {
                "version": st.just("0"),
                "id": st.uuids().map(str),
                "source": st.just(source),
                "detail-type": st.just(detail_type),
                "account": st.just("123456789012"),
                "time": st.just("2026-11-28T10:02:41Z"),
                "region": st.just("us-east-1"),
                "resources": st.just([]),
                "detail": detail,
            }
        )

    return st.one_of(
        envelope("aws.ecr", "ECR Image Action", push),
        envelope("aws.ecr", "ECR Image Scan", scan),
        envelope("aws.codepipeline", "CodePipeline Stage Execution State Change", stage),
    )


def _image_shapes() -> st.SearchStrategy[Any]:
    """What image_updater's rules deliver (ECR pushes and scans, pipeline stages, its schedule), with any field
    possibly wrong or well-formed with unexpected values, and other EventBridge families, which it must refuse."""
    return st.one_of(
        _envelope("aws.ecr", "ECR Image Action", ecr_push_details()),
        _envelope("aws.ecr", "ECR Image Scan", ecr_scan_details()),
        _envelope("aws.codepipeline", "CodePipeline Stage Execution State Change", pipeline_details()),
        well_formed_image_events(),
        well_formed_image_events(),
        eventbridge_shapes(),
    )


def _messages() -> st.SearchStrategy[str]:
    """SNS message bodies: eksops envelopes, alarm-like and finding-like JSON, plain or hostile text."""
    envelope = _optional(
        {"kind": _maybe(st.sampled_from(["retention.changes", "bootstrap.changes", "bootstrap.access-denied", "x"]))},
        {
            "source": _maybe(st.just("eksops")),
            "severity": _maybe(st.sampled_from(["info", "warning", "critical", "ok", "unknown"])),
            "title": _maybe(hostile_strings()),
            "summary": _maybe(hostile_strings()),
            "details": _maybe(json_values()),
            "lines": _maybe(st.lists(hostile_strings(), max_size=3)),
            "links": _maybe(st.dictionaries(hostile_strings(), hostile_strings(), max_size=2)),
            "cluster": _maybe(st.sampled_from(NAMES)),
        },
    )
    alarm = _optional(
        {"AlarmName": _maybe(hostile_strings())},
        {
            "NewStateValue": _maybe(st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA"])),
            "Trigger": _maybe(json_values()),
        },
    )
    finding = _optional(
        {"detail-type": _maybe(st.sampled_from(["GuardDuty Finding", "AWS Health Event", "ECR Image Scan"]))},
        {"source": _maybe(st.sampled_from(SOURCES)), "detail": _maybe(_optional({}, {"severity": _maybe(numbers())}))},
    )
    document = st.one_of(envelope, alarm, finding, json_values(), deep_values())
    return st.one_of(
        st.builds(json.dumps, document),
        st.builds(lambda d: json.dumps(d, ensure_ascii=False), document),
        hostile_strings(),
    )


def _sns_shapes() -> st.SearchStrategy[Any]:
    """Lambda SNS events: well-formed records with any subject and message (half), and malformed envelopes."""
    return st.one_of(sns_records(), sns_envelopes())


def _sns_records() -> st.SearchStrategy[Any]:
    """A well-formed SNS record whose Subject and Message are anything (the notifier must deliver each)."""
    sns = _optional(
        {
            "MessageId": st.one_of(st.uuids().map(str), st.just("")),
            "TopicArn": st.sampled_from(["arn:aws:sns:us-east-1:123456789012:eksops-alerts", "arn:aws:sns:x"]),
            "Message": messages(),
        },
        {
            "Type": st.just("Notification"),
            "Subject": st.one_of(st.none(), hostile_strings(), json_values()),
            "Timestamp": st.one_of(st.just("2026-11-25T10:15:02.873Z"), scalars()),
            "MessageAttributes": json_values(),
        },
    )
    record = st.fixed_dictionaries({"EventSource": st.just("aws:sns"), "Sns": sns})
    return st.fixed_dictionaries({"Records": st.tuples(record).map(list)})


def _sns_envelopes() -> st.SearchStrategy[Any]:
    """SNS-like events with any field possibly wrong."""
    sns = _optional(
        {"Message": _maybe(messages())},
        {
            "Type": _maybe(st.just("Notification")),
            "MessageId": _maybe(st.uuids().map(str)),
            "TopicArn": _maybe(st.sampled_from(["arn:aws:sns:us-east-1:123456789012:eksops-alerts", ""])),
            "Subject": _maybe(st.one_of(st.none(), hostile_strings())),
            "Timestamp": _maybe(st.just("2026-11-25T10:15:02.873Z")),
            "MessageAttributes": _maybe(json_values()),
        },
    )
    record = _optional({"Sns": _maybe(sns)}, {"EventSource": _maybe(st.just("aws:sns"))})
    return _optional({"Records": _maybe(st.lists(record, min_size=1, max_size=2))}, {})


def events(own: Sequence[Any], others: Sequence[Any], shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """What a fuzzed handler receives: mutated samples (most), generated shapes, arbitrary JSON."""
    sampled = mutated(own, others)
    return st.one_of(sampled, sampled, sampled, shapes, json_values()).filter(fits)


def fits(event: Any) -> bool:
    return len(json.dumps(event)) <= MAX_EVENT_BYTES


hostile_strings = _short(_hostile_strings)
numbers = _short(_numbers)
scalars = _short(_scalars)
json_values = _short(_json_values)
deep_values = _short(_deep_values)
replacements = _short(_replacements)
cloudtrail_details = _short(_cloudtrail_details)
continuation_details = _short(_continuation_details)
eventbridge_shapes = _short(_eventbridge_shapes)
on_demand_shapes = _short(_on_demand_shapes)
ecr_push_details = _short(_ecr_push_details)
ecr_scan_details = _short(_ecr_scan_details)
pipeline_details = _short(_pipeline_details)
well_formed_image_events = _short(_well_formed_image_events)
image_shapes = _short(_image_shapes)
messages = _short(_messages)
sns_shapes = _short(_sns_shapes)
sns_records = _short(_sns_records)
sns_envelopes = _short(_sns_envelopes)
