"""botocore service models cut to what eksops calls: the declared operations, the shapes they reach, and no
documentation; the paginators and waiters likewise.

A client's creation parses its service's whole model (botocore decodes it into ordered dicts and builds a method
per operation): the logs model is 574 KB of JSON with 118 operations, for the nine eksops calls. `make build`
writes each declared service's model cut with :func:`cut_model` in the layer, and the build check proves the layer's
model is exactly the venv's full one cut the same way. Measured with callgrind (benchmarks/cold_start.py): a first
client (logs) costs 54 million instructions instead of 114, a second (cloudwatch) 23 instead of 49.

Only the standard library here: the build check's probe imports this module in a bare interpreter beside either
botocore.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Keys that only feed docstrings and generated documentation; botocore's runtime reads none of them.
_DOCUMENTATION = ("documentation", "documentationUrl")


class UnknownOperations(ValueError):
    """Operations declared for a service whose model has no such operation (a misspelling, or a rename)."""

    def __init__(self, service: str, unknown: Iterable[str]) -> None:
        self.unknown = sorted(unknown)
        super().__init__(f"{service} has no operation {', '.join(self.unknown)} (eksops.aws.clients.OPERATIONS)")


def cut_model(model: Mapping[str, Any], service: str, operations: Iterable[str]) -> dict[str, Any]:
    """A copy of ``model`` (a service-2 model as botocore loads it, extras merged) with only ``operations``, the
    operations botocore itself needs (endpoint discovery's), the shapes they reach and every error shape (a client's
    ``exceptions`` are built from all of them), and no documentation. Raises :class:`UnknownOperations`."""
    every = model["operations"]
    wanted = set(operations)
    if unknown := wanted - every.keys():
        raise UnknownOperations(service, unknown)
    kept = {name: op for name, op in every.items() if name in wanted or op.get("endpointoperation")}
    shapes = model["shapes"]
    roots = [name for name, shape in shapes.items() if shape.get("exception")]
    for op in kept.values():
        roots += [op[part]["shape"] for part in ("input", "output") if part in op]
        roots += [error["shape"] for error in op.get("errors", ())]
    reached = _reach(shapes, roots)
    cut = {key: value for key, value in model.items() if key not in _DOCUMENTATION}
    cut["operations"] = {name: _operation(op) for name, op in kept.items()}
    cut["shapes"] = {name: _shape(shape) for name, shape in shapes.items() if name in reached}
    return cut


def cut_paginators(config: Mapping[str, Any], _service: str, operations: Iterable[str]) -> dict[str, Any]:
    """A service's paginators (paginators-1, extras merged) for ``operations`` only."""
    wanted = set(operations)
    return {**config, "pagination": {name: page for name, page in config["pagination"].items() if name in wanted}}


def cut_waiters(config: Mapping[str, Any], _service: str, operations: Iterable[str]) -> dict[str, Any]:
    """A service's waiters (waiters-2) that poll one of ``operations``, without documentation."""
    wanted = set(operations)
    waiters = {
        name: {key: value for key, value in waiter.items() if key not in _DOCUMENTATION}
        for name, waiter in config["waiters"].items()
        if waiter["operation"] in wanted
    }
    return {**config, "waiters": waiters}


# botocore's data types a client reads for a service, and how each is cut to the declared operations (the model
# first: it refuses an operation the service lacks)
CUTS: dict[str, Callable[[Mapping[str, Any], str, Iterable[str]], dict[str, Any]]] = {
    "service-2": cut_model,
    "paginators-1": cut_paginators,
    "waiters-2": cut_waiters,
}


def digest(model: Mapping[str, Any]) -> str:
    """A fingerprint of a model's content (key order aside)."""
    return hashlib.sha256(json.dumps(model, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _reach(shapes: Mapping[str, Any], roots: Iterable[str]) -> set[str]:
    reached: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        shape = shapes[name]
        pending += [shape[part]["shape"] for part in ("member", "key", "value") if part in shape]
        pending += [member["shape"] for member in shape.get("members", {}).values()]
    return reached


def _undocumented(ref: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in ref.items() if key not in _DOCUMENTATION}


def _operation(op: Mapping[str, Any]) -> dict[str, Any]:
    cut = _undocumented(op)
    for part in ("input", "output"):
        if part in cut:
            cut[part] = _undocumented(cut[part])
    if "errors" in cut:
        cut["errors"] = [_undocumented(error) for error in cut["errors"]]
    return cut


def _shape(shape: Mapping[str, Any]) -> dict[str, Any]:
    # A structure's "members" maps member names to references: a member may well be called "documentation", so
    # only the references' own keys are cut, never the names.
    cut = _undocumented(shape)
    for part in ("member", "key", "value"):
        if part in cut:
            cut[part] = _undocumented(cut[part])
    if "members" in cut:
        cut["members"] = {name: _undocumented(ref) for name, ref in cut["members"].items()}
    return cut
