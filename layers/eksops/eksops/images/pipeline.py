"""Which image a succeeded CodePipeline stage built, and from which source revision.

The stage's action executions (ListActionExecutions, filtered to the execution) carry the output variables the
build exported. An image is found in them two ways:

- any variable whose value is a full ECR image reference, ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repo>``
  with ``:<tag>`` and/or ``@sha256:<digest>`` (for example ``IMAGE_URI`` exported by the build);
- the names CodeBuild's ECR samples use: ``IMAGE_TAG`` (and optionally ``IMAGE_DIGEST``) with ``IMAGE_REPO_NAME``
  (or ``REPOSITORY_NAME``, or ``REPOSITORY_URI`` holding the repository's URI).

When the stage exported nothing recognisable, the caller falls back to the registry (the reconcile of the entries
in IMAGE_MAP), so a pipeline without output variables still converges. So it does when CodePipeline does not know
the pipeline or the execution (deleted since, or another account's pipeline whose events reach this bus):
``StageOutput.missing`` says which, rather than a failure retried in vain. The source revision (the commit the
pipeline built) comes from GetPipelineExecution's artifact revisions, for the commit message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from eksops.aws import error_code

__all__ = ["BuiltImage", "StageOutput", "parse_image_reference", "stage_output"]

_IMAGE_REFERENCE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*")
MAX_ACTIONS = 500  # action executions read per stage execution: more is no build stage
_NOT_FOUND = frozenset({"PipelineNotFoundException", "PipelineExecutionNotFoundException"})


@dataclass(frozen=True)
class BuiltImage:
    repository: str
    tag: str | None
    digest: str | None
    variable: str  # where it was found, for the report


@dataclass(frozen=True)
class StageOutput:
    images: tuple[BuiltImage, ...]
    source_revision: str  # the commit (or other revision) the pipeline built; "" when unknown
    revision_summary: str
    missing: str = ""  # why nothing could be read: CodePipeline does not know the pipeline or execution


def parse_image_reference(value: str) -> BuiltImage | None:
    """A full ECR image reference with a tag or digest, or None."""
    match = _IMAGE_REFERENCE.fullmatch(value.strip())
    if match is None or not (match["tag"] or match["digest"]):
        return None
    return BuiltImage(match["repository"], match["tag"], match["digest"], variable="")


def stage_output(codepipeline: Any, *, pipeline: str, stage: str, execution_id: str) -> StageOutput:
    """Images the stage's succeeded actions exported, and the execution's source revision."""
    images: dict[tuple[str, str | None, str | None], BuiltImage] = {}
    try:
        for action in _action_executions(codepipeline, pipeline, execution_id):
            if action.get("stageName") != stage or action.get("status") != "Succeeded":
                continue
            variables = (action.get("output") or {}).get("outputVariables") or {}
            for image in _images_in(variables, action.get("actionName", "")):
                images.setdefault((image.repository, image.tag, image.digest), image)
        revision, summary = _source_revision(codepipeline, pipeline, execution_id)
    except ClientError as exc:
        if (code := error_code(exc)) not in _NOT_FOUND:
            raise
        return StageOutput((), "", "", missing=f"{code}: pipeline {pipeline}, execution {execution_id}")
    return StageOutput(tuple(images.values()), revision, summary)


def _action_executions(codepipeline: Any, pipeline: str, execution_id: str) -> Iterator[Mapping[str, Any]]:
    kwargs: dict[str, Any] = {"pipelineName": pipeline, "filter": {"pipelineExecutionId": execution_id}}
    seen = 0
    while True:
        page = codepipeline.list_action_executions(**kwargs)
        for action in page.get("actionExecutionDetails", []):
            seen += 1
            yield action
        token = page.get("nextToken")
        if not token or seen >= MAX_ACTIONS:
            return
        kwargs["nextToken"] = token


def _images_in(variables: Mapping[str, Any], action: str) -> Iterator[BuiltImage]:
    texts = {str(k): v for k, v in variables.items() if isinstance(v, str)}
    for name, value in sorted(texts.items()):
        image = parse_image_reference(value)
        if image is not None:
            yield BuiltImage(image.repository, image.tag, image.digest, variable=f"{action}.{name}")
    tag = texts.get("IMAGE_TAG", "").strip()
    digest = texts.get("IMAGE_DIGEST", "").strip()
    repository = (texts.get("IMAGE_REPO_NAME") or texts.get("REPOSITORY_NAME") or "").strip()
    uri = texts.get("REPOSITORY_URI", "").strip()
    if not repository and uri:
        match = _IMAGE_REFERENCE.fullmatch(uri + ":x")  # the repository's URI has no tag: lend it one to parse
        repository = match["repository"] if match else ""
    if repository and _REPOSITORY.fullmatch(repository) and (_TAG.fullmatch(tag) or _DIGEST.fullmatch(digest)):
        yield BuiltImage(
            repository,
            tag if _TAG.fullmatch(tag) else None,
            digest if _DIGEST.fullmatch(digest) else None,
            variable=f"{action}.IMAGE_TAG",
        )


def _source_revision(codepipeline: Any, pipeline: str, execution_id: str) -> tuple[str, str]:
    execution = codepipeline.get_pipeline_execution(pipelineName=pipeline, pipelineExecutionId=execution_id)
    revisions = execution.get("pipelineExecution", {}).get("artifactRevisions") or []
    for revision in revisions:
        if revision.get("revisionId"):
            return str(revision["revisionId"]), str(revision.get("revisionSummary") or "")[:200]
    return "", ""
