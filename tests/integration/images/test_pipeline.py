"""Which image a succeeded stage built: CodePipeline through the sandbox's shim in front of the moto server."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from eksops.images.pipeline import BuiltImage, parse_image_reference, stage_output
from eksops_dev.shims import CodePipelineShim

EXECUTION = "4d3f5a1b-9c2e-4f7a-8b6d-1e0c2a3b4c5d"
DIGEST = "sha256:" + "ab" * 32
URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments-api"


@pytest.fixture
def shim(aws: str) -> Iterator[CodePipelineShim]:
    proxy = CodePipelineShim(aws)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def codepipeline(shim: CodePipelineShim) -> object:
    return boto3.client("codepipeline", endpoint_url=shim.url, region_name="us-east-1")


def test_an_image_uri_in_any_output_variable_is_found_with_the_source_revision(
    shim: CodePipelineShim, codepipeline: object
) -> None:
    shim.record(
        "payments-api",
        EXECUTION,
        stage="Build",
        action="BuildImage",
        variables={"IMAGE_URI": f"{URI}:1.43.0@{DIGEST}", "COMMIT": "not an image"},
        revision="0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        revision_summary="Fix rounding",
    )
    shim.record("payments-api", EXECUTION, stage="Test", action="Smoke", variables={"IMAGE_URI": f"{URI}:other"})
    out = stage_output(codepipeline, pipeline="payments-api", stage="Build", execution_id=EXECUTION)
    assert out.images == (BuiltImage("payments-api", "1.43.0", DIGEST, "BuildImage.IMAGE_URI"),)
    assert (out.source_revision, out.revision_summary) == ("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c", "Fix rounding")


def test_codebuild_sample_variable_names_name_the_image(shim: CodePipelineShim, codepipeline: object) -> None:
    shim.record(
        "payments-api",
        EXECUTION,
        stage="Build",
        action="Build",
        variables={"IMAGE_REPO_NAME": "payments-api", "IMAGE_TAG": "1.43.0", "IMAGE_DIGEST": DIGEST},
    )
    shim.record(
        "payments-api",
        EXECUTION,
        stage="Build",
        action="Build2",
        variables={"REPOSITORY_URI": URI, "IMAGE_TAG": "1.44.0"},
    )
    out = stage_output(codepipeline, pipeline="payments-api", stage="Build", execution_id=EXECUTION)
    assert [(i.repository, i.tag, i.digest) for i in out.images] == [
        ("payments-api", "1.43.0", DIGEST),
        ("payments-api", "1.44.0", None),
    ]
    assert out.source_revision == ""


def test_a_stage_that_exported_no_image_yields_none(shim: CodePipelineShim, codepipeline: object) -> None:
    shim.record("payments-api", EXECUTION, stage="Build", action="Build", variables={"IMAGE_TAG": "not a tag!"})
    out = stage_output(codepipeline, pipeline="payments-api", stage="Build", execution_id=EXECUTION)
    assert out.images == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{URI}:1.0", ("payments-api", "1.0", None)),
        (f"{URI}@{DIGEST}", ("payments-api", None, DIGEST)),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/app:v2", ("team/app", "v2", None)),
        (URI, None),  # a repository, not an image
        ("docker.io/library/nginx:1.27", None),  # not ECR
        (f"{URI}:1.0; rm -rf /", None),
    ],
)
def test_image_references(value: str, expected: tuple[str, str | None, str | None] | None) -> None:
    image = parse_image_reference(value)
    assert (None if image is None else (image.repository, image.tag, image.digest)) == expected
