"""A stage event whose pipeline or execution CodePipeline does not know (deleted since, or another account's pipeline
routed to this bus): botocore's Stubber on a real codepipeline client checks every call against the service model.

Found by the fuzz test (eksops_dev.fuzz): a well-formed stage event for an execution the pipeline never ran made
image_updater fail with PipelineNotFoundException, retried and dead-lettered, instead of falling back to the registry.
"""

from __future__ import annotations

from collections.abc import Iterator

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from eksops.images.pipeline import stage_output

EXECUTION = "4d3f5a1b-9c2e-4f7a-8b6d-1e0c2a3b4c5d"
LIST = {"pipelineName": "payments-api", "filter": {"pipelineExecutionId": EXECUTION}}
GET = {"pipelineName": "payments-api", "pipelineExecutionId": EXECUTION}


@pytest.fixture
def stubbed() -> Iterator[tuple[object, Stubber]]:
    client = botocore.session.get_session().create_client(
        "codepipeline", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("failing", "code"),
    [
        ("list_action_executions", "PipelineNotFoundException"),
        ("list_action_executions", "PipelineExecutionNotFoundException"),
        ("get_pipeline_execution", "PipelineExecutionNotFoundException"),
    ],
)
def test_an_execution_codepipeline_does_not_know_yields_no_image_and_says_why(
    stubbed: tuple[object, Stubber], failing: str, code: str
) -> None:
    client, stubber = stubbed
    if failing == "list_action_executions":
        stubber.add_client_error("list_action_executions", code, expected_params=LIST)
    else:
        stubber.add_response("list_action_executions", {"actionExecutionDetails": []}, LIST)
        stubber.add_client_error("get_pipeline_execution", code, expected_params=GET)
    out = stage_output(client, pipeline="payments-api", stage="Build", execution_id=EXECUTION)
    assert (out.images, out.source_revision) == ((), "")
    assert code in out.missing and "payments-api" in out.missing


def test_other_failures_still_raise(stubbed: tuple[object, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("list_action_executions", "ThrottlingException", expected_params=LIST)
    with pytest.raises(ClientError):
        stage_output(client, pipeline="payments-api", stage="Build", execution_id=EXECUTION)
