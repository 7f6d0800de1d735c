"""COMPLIANCE_ACCEPT entries and eksops.io/accept-<rule-id> annotations: parsing, validation, and judging."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from eksops.compliance.accept import Acceptances, AcceptEntry, parse_annotation, parse_entries
from eksops.compliance.model import Violation
from eksops.errors import ConfigError

KNOWN = {"pod-privileged", "cluster-endpoint-public"}
TODAY = date(2026, 6, 15)


def entries(*items: Any) -> tuple[AcceptEntry, ...]:
    return parse_entries(json.dumps(list(items)), KNOWN)


def test_an_empty_value_accepts_nothing() -> None:
    assert parse_entries("", KNOWN) == ()
    assert parse_entries("  ", KNOWN) == ()
    assert parse_entries("[]", KNOWN) == ()


def test_entries_parse_with_their_optional_fields() -> None:
    parsed = entries(
        {"rule": "pod-privileged", "resource": "daemonset/kube-system/*", "reason": "CNI needs it"},
        {
            "rule": "cluster-endpoint-public",
            "resource": "cluster/*",
            "cluster": "dev-*",
            "reason": "lab",
            "expires": "2026-12-31",
        },
    )
    assert parsed[0] == AcceptEntry(0, "pod-privileged", "daemonset/kube-system/*", "CNI needs it")
    assert parsed[1].cluster == "dev-*"
    assert parsed[1].expires == date(2026, 12, 31)
    assert parsed[1].source == "config COMPLIANCE_ACCEPT[1]"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{", "not valid JSON"),
        ('{"rule": "pod-privileged"}', "must be a JSON list"),
        ('["pod-privileged"]', "entry 0: must be a JSON object"),
        ('[{"rule": "pod-privileged", "resource": "x", "reason": "r", "why": "?"}]', "entry 0: unknown field(s) why"),
        ('[{"rule": "pod-privileged", "resource": "x"}]', 'entry 0: "reason" is missing'),
        ('[{"rule": "pod-privileged", "resource": "", "reason": "r"}]', 'entry 0: "resource" is missing'),
        ('[{"rule": "pod-privileged", "resource": "x", "reason": "r", "cluster": 3}]', 'entry 0: "cluster" must be'),
        (
            '[{"rule": "no-such-rule", "resource": "x", "reason": "r"}]',
            "entry 0: \"rule\": unknown rule id 'no-such-rule'",
        ),
        (
            '[{"rule": "pod-privileged", "resource": "x", "reason": "r"},'
            ' {"rule": "pod-privileged", "resource": "x", "reason": "r", "expires": "31/12/2026"}]',
            "entry 1: \"expires\": '31/12/2026' is not a date of the form YYYY-MM-DD",
        ),
        ('[{"rule": "pod-privileged", "resource": "x", "reason": "r", "expires": "20261231"}]', "is not a date"),
        (
            '[{"rule": "pod-privileged", "resource": "x", "reason": "r", "expires": "2026-02-30"}]',
            "is not a valid date",
        ),
    ],
)
def test_a_bad_entry_is_a_config_error_naming_the_variable_and_entry(raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_entries(raw, KNOWN)
    assert caught.value.variable == "COMPLIANCE_ACCEPT"
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("value", "reason", "expires"),
    [
        ("CNI needs host networking", "CNI needs host networking", None),
        ("legacy app; expires=2026-09-30", "legacy app", date(2026, 9, 30)),
        ("legacy; still; expires = 2026-09-30 ", "legacy; still", date(2026, 9, 30)),
        ("a; b", "a; b", None),  # a semicolon without expires= is part of the reason
        ("ticket OPS-1; EXPIRES=2027-01-01", "ticket OPS-1", date(2027, 1, 1)),
    ],
)
def test_annotation_values(value: str, reason: str, expires: date | None) -> None:
    assert parse_annotation(value) == (reason, expires)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "no reason"), ("; expires=2026-01-01", "no reason"), ("x; expires=tomorrow", "not a date")],
)
def test_malformed_annotations_say_why(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_annotation(value)


def violation(
    resource: str = "deployment/shop/cart", *, annotations: dict[str, str] | None = None, namespace: str | None = "shop"
) -> Violation:
    return Violation(resource=resource, evidence="privileged: true", annotations=annotations or {}, namespace=namespace)


def test_an_annotation_on_the_object_accepts_with_its_reason_and_source() -> None:
    judge = Acceptances((), cluster="prod", today=TODAY)
    verdict = judge.judge(
        "pod-privileged",
        violation(annotations={"eksops.io/accept-pod-privileged": "vendor agent; expires=2026-06-15"}),
        None,
    )
    assert verdict.accepted is not None
    assert verdict.accepted.reason == "vendor agent"
    assert verdict.accepted.expires == "2026-06-15"  # holds through its expiry date
    assert verdict.accepted.source == "annotation eksops.io/accept-pod-privileged on deployment/shop/cart"
    assert verdict.note is None


def test_an_annotation_on_the_namespace_accepts_the_objects_in_it() -> None:
    judge = Acceptances((), cluster="prod", today=TODAY)
    verdict = judge.judge("pod-privileged", violation(), {"eksops.io/accept-pod-privileged": "sandbox namespace"})
    assert verdict.accepted is not None
    assert verdict.accepted.source == "annotation eksops.io/accept-pod-privileged on namespace/shop"


def test_an_annotation_for_another_rule_accepts_nothing() -> None:
    judge = Acceptances((), cluster="prod", today=TODAY)
    verdict = judge.judge(
        "pod-privileged",
        violation(annotations={"eksops.io/accept-pod-host-path": "x"}),
        {"eksops.io/accept-pod-run-as-root": "y"},
    )
    assert verdict.accepted is None
    assert verdict.note is None


def test_an_expired_acceptance_leaves_the_finding_open_and_says_so() -> None:
    judge = Acceptances((), cluster="prod", today=TODAY)
    verdict = judge.judge(
        "pod-privileged",
        violation(annotations={"eksops.io/accept-pod-privileged": "until June; expires=2026-06-14"}),
        None,
    )
    assert verdict.accepted is None
    assert verdict.note is not None
    assert "expired on 2026-06-14" in verdict.note
    assert "until June" in verdict.note


def test_a_valid_acceptance_wins_over_an_expired_one() -> None:
    config = entries({"rule": "pod-privileged", "resource": "deployment/shop/*", "reason": "approved in OPS-7"})
    judge = Acceptances(config, cluster="prod", today=TODAY)
    verdict = judge.judge(
        "pod-privileged", violation(annotations={"eksops.io/accept-pod-privileged": "old; expires=2020-01-01"}), None
    )
    assert verdict.accepted is not None
    assert verdict.accepted.reason == "approved in OPS-7"
    assert verdict.accepted.source == "config COMPLIANCE_ACCEPT[0]"


def test_a_malformed_annotation_is_ignored_with_a_note() -> None:
    judge = Acceptances((), cluster="prod", today=TODAY)
    verdict = judge.judge("pod-privileged", violation(), {"eksops.io/accept-pod-privileged": "x; expires=someday"})
    assert verdict.accepted is None
    assert verdict.note is not None
    assert "on namespace/shop ignored" in verdict.note


@pytest.mark.parametrize(
    ("cluster", "resource", "accepted"),
    [
        ("dev-1", "cluster/dev-1", True),
        ("prod-1", "cluster/prod-1", False),  # the entry's cluster glob does not match
    ],
)
def test_config_entries_match_rule_resource_and_cluster_globs(cluster: str, resource: str, accepted: bool) -> None:
    config = entries({"rule": "cluster-endpoint-public", "resource": "cluster/*", "cluster": "dev-*", "reason": "lab"})
    judge = Acceptances(config, cluster=cluster, today=TODAY)
    verdict = judge.judge("cluster-endpoint-public", violation(resource, namespace=None), None)
    assert (verdict.accepted is not None) is accepted
    assert judge.judge("pod-privileged", violation(resource, namespace=None), None).accepted is None
