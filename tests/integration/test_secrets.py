"""SecretCache: Secrets Manager values in moto over HTTP, read once per max age."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from eksops.aws import client
from eksops.aws.secrets import SecretCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """The real client, counting GetSecretValue calls."""

    def __init__(self, secretsmanager: Any) -> None:
        self._sm = secretsmanager
        self.reads = 0

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._sm.get_secret_value(**kwargs)


def test_a_value_is_read_once_per_max_age_and_a_rotation_is_picked_up_after_it(aws: str) -> None:
    sm = client("secretsmanager")
    arn = sm.create_secret(Name="eksops/slack/team", SecretString="https://hooks.slack.com/services/T/B/one")["ARN"]
    counting, clock = Counting(sm), Clock()
    cache = SecretCache(counting, max_age_s=300, clock=clock)
    assert cache.get(arn) == "https://hooks.slack.com/services/T/B/one"
    sm.put_secret_value(SecretId=arn, SecretString="https://hooks.slack.com/services/T/B/two")
    clock.now += 299
    assert cache.get(arn) == "https://hooks.slack.com/services/T/B/one" and counting.reads == 1
    clock.now += 1
    assert cache.get(arn) == "https://hooks.slack.com/services/T/B/two" and counting.reads == 2
    cache.clear()
    assert cache.get(arn).endswith("/two") and counting.reads == 3


def test_a_binary_secret_reads_as_empty_for_the_caller_to_refuse(aws: str) -> None:
    arn = client("secretsmanager").create_secret(Name="eksops/slack/binary", SecretBinary=b"\x00\x01")["ARN"]
    assert SecretCache(client("secretsmanager"), max_age_s=300).get(arn) == ""


def test_a_missing_secret_is_secrets_manager_s_error(aws: str) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:eksops/slack/gone-AbCdEf"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        SecretCache(client("secretsmanager"), max_age_s=300).get(arn)


def test_a_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        SecretCache(object(), max_age_s=-1)
