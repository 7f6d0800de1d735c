"""A service model cut to the declared operations: what they reach, every error shape, no documentation; and on the
real models, a botocore that resolves every shape the kept operations use."""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel, Shape

from eksops.aws.clients import OPERATIONS
from eksops_dev.sdkmodels import UnknownOperations, cut_model, cut_paginators, cut_waiters, digest


def _model() -> dict[str, Any]:
    def ref(shape: str) -> dict[str, Any]:
        return {"shape": shape, "documentation": "<p>a reference</p>"}

    return {
        "version": "2.0",
        "metadata": {"protocol": "json", "serviceId": "Probe"},
        "documentation": "<p>the service</p>",
        "operations": {
            "Get": {
                "name": "Get",
                "input": ref("GetInput"),
                "output": ref("GetOutput"),
                "errors": [ref("NotFound")],
                "documentation": "<p>get</p>",
                "documentationUrl": "https://docs.example",
            },
            "Put": {"name": "Put", "input": ref("PutInput")},
            "DescribeEndpoints": {"name": "DescribeEndpoints", "output": ref("Endpoints"), "endpointoperation": True},
        },
        "shapes": {
            "GetInput": {"type": "structure", "members": {"Id": ref("Id")}, "documentation": "<p>in</p>"},
            # a member may be called "documentation": a name, not documentation
            "GetOutput": {"type": "structure", "members": {"Items": ref("Items"), "documentation": ref("Id")}},
            "Items": {"type": "list", "member": ref("Tags")},
            "Tags": {"type": "map", "key": ref("Id"), "value": ref("Count")},
            "Id": {"type": "string", "documentation": "<p>an id</p>"},
            "Count": {"type": "integer"},
            "NotFound": {"type": "structure", "members": {}, "exception": True},
            "Throttled": {"type": "structure", "members": {"Retry": ref("Seconds")}, "exception": True},
            "Seconds": {"type": "integer"},
            "PutInput": {"type": "structure", "members": {"Blob": ref("Blob")}},
            "Blob": {"type": "blob"},
            "Endpoints": {"type": "structure", "members": {}},
        },
    }


def test_the_cut_keeps_the_operations_what_they_reach_and_every_error() -> None:
    model = _model()
    before = copy.deepcopy(model)
    cut = cut_model(model, "probe", ["Get"])
    assert model == before  # a copy: the loaded model is left as it was
    # endpoint discovery's operation stays: botocore calls it itself when a service requires discovery
    assert list(cut["operations"]) == ["Get", "DescribeEndpoints"]
    assert set(cut["shapes"]) == {
        "GetInput", "GetOutput", "Items", "Tags", "Id", "Count", "NotFound", "Throttled", "Seconds", "Endpoints"
    }  # fmt: skip
    assert cut["metadata"] == model["metadata"] and cut["version"] == "2.0"


def test_the_cut_drops_documentation_but_not_a_member_of_that_name() -> None:
    cut = cut_model(_model(), "probe", ["Get", "Put"])
    text = json.dumps(cut)
    assert "<p>" not in text and "docs.example" not in text
    assert cut["shapes"]["GetOutput"]["members"] == {"Items": {"shape": "Items"}, "documentation": {"shape": "Id"}}
    assert cut["operations"]["Get"]["errors"] == [{"shape": "NotFound"}]


def test_the_cut_of_a_cut_model_is_the_same() -> None:
    once = cut_model(_model(), "probe", ["Get"])
    assert cut_model(once, "probe", ["Get"]) == once
    assert digest(cut_model(once, "probe", ["Get"])) == digest(once)
    assert digest(cut_model(once, "probe", [])) != digest(once)


def test_an_operation_the_model_lacks_is_refused() -> None:
    with pytest.raises(UnknownOperations) as refused:
        cut_model(_model(), "probe", ["Get", "Delete", "Gett"])
    assert str(refused.value) == "probe has no operation Delete, Gett (eksops.aws.clients.OPERATIONS)"
    assert refused.value.unknown == ["Delete", "Gett"]


def _shapes_reached(shape: Shape | None, seen: set[str]) -> None:
    """Resolve every shape under ``shape`` as botocore does at call time (a missing one raises)."""
    if shape is None or shape.name in seen:
        return
    seen.add(shape.name)
    for part in ("member", "key", "value"):
        _shapes_reached(getattr(shape, part, None), seen)
    for member in getattr(shape, "members", {}).values():
        _shapes_reached(member, seen)


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_botocore_resolves_everything_the_declared_operations_use_in_the_cut_model(service: str) -> None:
    full = botocore.session.get_session().get_service_data(service)
    cut = ServiceModel(cut_model(full, service, OPERATIONS[service]), service_name=service)
    assert set(cut.operation_names) >= OPERATIONS[service]
    for name in OPERATIONS[service]:
        operation = cut.operation_model(name)
        seen: set[str] = set()
        for shape in (operation.input_shape, operation.output_shape, *operation.error_shapes):
            _shapes_reached(shape, seen)
    # every error shape stays (a client's exceptions are made from all of them), and the cut is far smaller
    assert {shape.name for shape in cut.error_shapes} == {
        shape.name for shape in ServiceModel(full, service_name=service).error_shapes
    }
    assert len(json.dumps(cut_model(full, service, OPERATIONS[service]))) < len(json.dumps(full)) / 2


def test_paginators_and_waiters_are_cut_to_the_operations() -> None:
    pages = {"pagination": {"Get": {"input_token": "Next"}, "List": {"input_token": "Next"}}}
    assert cut_paginators(pages, "probe", ["Get"]) == {"pagination": {"Get": {"input_token": "Next"}}}
    waiters = {
        "version": 2,
        "waiters": {
            "Ready": {"operation": "Get", "delay": 5, "documentation": "<p>waits</p>", "acceptors": []},
            "Gone": {"operation": "List", "delay": 5, "acceptors": []},
        },
    }
    assert cut_waiters(waiters, "probe", ["Get"]) == {
        "version": 2,
        "waiters": {"Ready": {"operation": "Get", "delay": 5, "acceptors": []}},
    }
