"""Fixtures for the notifier: the sandbox on template.yaml (with the reports queue), and Slack receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksops.aws import client
from eksops_dev.dispatch import Dispatcher
from eksops_dev.sandbox import Sandbox
from eksops_dev.slack import SlackReceiver
from eksops_dev.template import Template


@pytest.fixture
def make_notifier_sandbox(
    aws: str, template: Template, tmp_path: Path
) -> Iterator[Callable[..., tuple[Sandbox, Dispatcher]]]:
    """The sandbox on template.yaml with only the parameters given, and DryRun=false (the template's default is a
    dry run, under which the notifier previews and posts nothing) unless they say otherwise; returns (sandbox,
    dispatcher)."""
    opened: list[tuple[Sandbox, Dispatcher]] = []

    def make(parameters: dict[str, str] | None = None) -> tuple[Sandbox, Dispatcher]:
        parameters = {"DryRun": "false", **(parameters or {})}
        sandbox = Sandbox(template, parameters=parameters, endpoint=aws, workdir=tmp_path / f"sb{len(opened)}")
        sandbox.start()
        dispatcher = Dispatcher(sandbox)
        opened.append((sandbox, dispatcher))
        return sandbox, dispatcher

    yield make
    for sandbox, dispatcher in reversed(opened):
        dispatcher.close()
        sandbox.stop()


IDEMPOTENCY_TABLE = "eksops-idempotency"


@pytest.fixture
def ddb(aws: str) -> Any:
    """eksops' DynamoDB client, with an empty idempotency table (IDEMPOTENCY_TABLE) keyed as the stack's is."""
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


def webhook(sandbox: Sandbox, receiver: SlackReceiver, name: str = "team") -> str:
    """A secret eksops/slack/<name> holding the receiver's URL; returns its ARN."""
    arn: str = sandbox.client("secretsmanager").create_secret(Name=f"eksops/slack/{name}", SecretString=receiver.url)[
        "ARN"
    ]
    return arn
