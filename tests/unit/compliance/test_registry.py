"""Meta-tests over the compliance rule registry: every rule is documented, tested, and granted what it needs (and
the function nothing more), in template.yaml, the Kubernetes RBAC file operators apply, and docs/compliance.md.

Written over whatever the registry holds: a rule added later is checked the same way, and each failure names the
rule and what is missing.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from eksops.compliance.model import MAX_RULE_ID, RULE_ID, Category, KubePermission, Rule, Severity, rules
from eksops_dev import compliance_docs
from eksops_dev.template import Resolver, Template
from tests.unit.kube.test_rbac import allows, granted

ROOT = Path(__file__).resolve().parents[3]
RULE_TESTS = ROOT / "tests" / "integration" / "compliance"
RBAC_FILE = ROOT / "deploy" / "kubernetes" / "eksops-compliance-rbac.yaml"
READ_ROLE, REMEDIATE_ROLE = "eksops-compliance", "eksops-compliance-remediate"
FUNCTION, ROLE = "ComplianceSweepFunction", "ComplianceSweepFunctionRole"
IAM_ACTION = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$")
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
# What the function's role holds besides the rules' actions: its own running (logs, the failure destination, X-Ray
# and the topics through the managed policies), the fan-out (ListClusters, PutEvents), the Kubernetes API's endpoint
# and CA (DescribeCluster; the token is a presigned STS URL), the state table and the Security Hub export.
INFRASTRUCTURE = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "sns:Publish",
    "kms:GenerateDataKey",
    "kms:Decrypt",
    "events:PutEvents",
    "eks:ListClusters",
    "eks:DescribeCluster",
    "securityhub:BatchImportFindings",
    "securityhub:BatchUpdateFindings",
}
STATE_TABLE = {"Fn::GetAtt": ["ComplianceStateTable", "Arn"]}


@cache
def registry() -> dict[str, Rule]:
    found = rules()
    assert found, "no compliance rule is registered (eksops.compliance.rules imports none?)"
    return found


def remediable() -> list[Rule]:
    return [r for r in registry().values() if r.remediable]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- metadata ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", sorted(registry()))
def test_every_rule_has_its_metadata(rule_id: str) -> None:
    rule = registry()[rule_id]
    assert rule.id == rule_id and RULE_ID.fullmatch(rule_id) and len(rule_id) <= MAX_RULE_ID
    assert isinstance(rule.severity, Severity) and isinstance(rule.category, Category)
    for attr in ("title", "why", "fix", "reference"):
        text = getattr(rule, attr)
        assert isinstance(text, str) and len(text.strip()) >= 10, f"{rule_id}: {attr} {text!r}"
    assert isinstance(rule.adds, str)
    assert re.search(r"hardeneks: |EKS BP: |Custodian", rule.reference), (
        f"{rule_id}: reference {rule.reference!r} names neither a hardeneks rule, an EKS Best Practices section"
        ' ("EKS BP: ...") nor a Cloud Custodian filter'
    )
    for action in (*rule.iam_actions, *rule.remediation_iam_actions):
        assert IAM_ACTION.match(action), f"{rule_id}: {action!r} is not an IAM action (service:Action)"
    for permission in (*rule.kube_permissions, *rule.remediation_kube_permissions):
        assert isinstance(permission, KubePermission), f"{rule_id}: {permission!r}"
        assert permission.resource and permission.resource == permission.resource.lower(), (rule_id, permission)
        assert permission.verbs and set(permission.verbs) <= VERBS, (rule_id, permission)
    if not rule.remediable:
        assert not rule.remediation_iam_actions and not rule.remediation_kube_permissions, (
            f"{rule_id} declares remediation permissions but has no remediate()"
        )


def test_the_registry_covers_every_category() -> None:
    assert {r.category for r in registry().values()} == set(Category)
    assert remediable(), "no rule can remediate"


# -- IAM: template.yaml's role ------------------------------------------------------------------------------------


@cache
def template() -> Template:
    return Template(ROOT / "template.yaml")


def resolver(**parameters: str) -> Resolver:
    t = template()
    return Resolver(
        t,
        {**t.parameter_defaults(), **parameters},
        ref=lambda name: {"Ref": name},
        getatt=lambda name, attribute: {"Fn::GetAtt": [name, attribute]},
        stack_name="eksops-test",
    )


def statements(**parameters: str) -> list[dict[str, Any]]:
    """Every statement of the function's role (inline policies and the template's managed policies it attaches),
    with the template's conditions evaluated for ``parameters`` (the defaults otherwise)."""
    t, r = template(), resolver(**parameters)
    assert t.functions["compliance_sweep"].properties["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    props = r.resolve(t.resources[ROLE]["Properties"])
    found = [st for policy in props.get("Policies", []) for st in policy["PolicyDocument"]["Statement"]]
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, dict):
            found += r.resolve(t.resources[arn["Ref"]]["Properties"])["PolicyDocument"]["Statement"]
    return found


def actions(found: Iterable[Mapping[str, Any]]) -> set[str]:
    return {a for st in found for a in as_list(st["Action"])}


def remediating(*rule_ids: str) -> dict[str, str]:
    return {"ComplianceRemediate": json.dumps(list(rule_ids))}


EVERYTHING_ON = {**remediating(*sorted(r.id for r in remediable())), "ComplianceSecurityHub": "true"}


def test_the_role_grants_every_read_action_a_rule_declares_whatever_the_parameters() -> None:
    default = actions(statements())
    missing = {rule.id: sorted(set(rule.iam_actions) - default) for rule in registry().values()}
    missing = {rule: gap for rule, gap in missing.items() if gap}
    assert not missing, f"{ROLE} in template.yaml lacks what these rules read: {missing}"


@pytest.mark.parametrize("rule_id", sorted(r.id for r in remediable()))
def test_a_remediation_s_actions_are_granted_only_while_its_rule_is_listed(rule_id: str) -> None:
    rule = registry()[rule_id]
    reads = actions(statements())
    listed = actions(statements(**remediating(rule_id)))
    assert not set(rule.remediation_iam_actions) - listed, (
        f"{ROLE} lacks {sorted(set(rule.remediation_iam_actions) - listed)} with ComplianceRemediate"
        f' ["{rule_id}"]: add them under a condition on ComplianceRemediate'
    )
    # Listing one rule grants its writes, and no other rule's.
    assert listed - reads <= set(rule.remediation_iam_actions), (
        f'ComplianceRemediate ["{rule_id}"] grants {sorted(listed - reads - set(rule.remediation_iam_actions))}'
    )


def test_a_stack_that_only_reports_holds_no_remediation_write_and_no_security_hub() -> None:
    default = actions(statements())
    writes = set().union(*(set(r.remediation_iam_actions) - set(r.iam_actions) for r in remediable()))
    reads = set().union(*(r.iam_actions for r in registry().values()))
    assert not (default & (writes - reads)), f"granted with ComplianceRemediate []: {sorted(default & writes)}"
    hub = {"securityhub:BatchImportFindings", "securityhub:BatchUpdateFindings"}
    assert not default & hub
    assert hub <= actions(statements(ComplianceSecurityHub="true"))


def test_the_role_grants_nothing_the_rules_and_the_function_do_not_need() -> None:
    declared = set().union(*(set(r.iam_actions) | set(r.remediation_iam_actions) for r in registry().values()))
    found = statements(**EVERYTHING_ON)
    state = [st for st in found if STATE_TABLE in as_list(st["Resource"])]
    assert state and all(a.startswith("dynamodb:") for a in actions(state)), "the state table's statement"
    extra = actions(found) - declared - INFRASTRUCTURE - actions(state)
    assert not extra, f"{ROLE} grants what no rule declares: {sorted(extra)} (remove, or declare it on the rule)"
    # The table's own operations, on the table alone.
    for statement in found:
        if any(a.startswith("dynamodb:") for a in as_list(statement["Action"])):
            assert as_list(statement["Resource"]) == [STATE_TABLE], statement


def test_the_iam_checks_can_fail() -> None:
    default = actions(statements())
    assert "eks:DeleteCluster" not in default and "iam:AttachRolePolicy" not in default
    assert "eks:DescribeCluster" in default  # the helper reads the role at all


# -- Kubernetes: the RBAC file ---------------------------------------------------------------------------------


def rbac_docs() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(RBAC_FILE.read_text()))


def cluster_role(name: str) -> list[dict[str, Any]]:
    (role,) = [d for d in rbac_docs() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name]
    return list(role["rules"])


def needs(permissions: Iterable[KubePermission]) -> set[tuple[str, str, str]]:
    return {(p.api_group, p.resource, verb) for p in permissions for verb in p.verbs}


def test_the_rbac_file_is_valid_and_binds_each_role_to_its_group_only() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    docs = rbac_docs()
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        (kind, name) for kind in ("ClusterRole", "ClusterRoleBinding") for name in (READ_ROLE, REMEDIATE_ROLE)
    )
    for doc in docs:
        kubernetes_validate.validate(doc, latest_version(), strict=True)
        if doc["kind"] == "ClusterRoleBinding":
            name = doc["metadata"]["name"]
            assert doc["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
            assert doc["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}]
        else:
            for rule in doc["rules"]:
                assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule
                values = [*rule["apiGroups"], *rule["resources"], *rule["verbs"], *rule.get("resourceNames", [])]
                assert not [v for v in values if "*" in v], f"wildcard in {rule}"


def test_the_read_role_allows_every_kubernetes_read_a_rule_declares_and_nothing_else() -> None:
    rules_ = cluster_role(READ_ROLE)
    grants = {g[:3] for g in granted(rules_)}
    missing = {rule.id: sorted(needs(rule.kube_permissions) - grants) for rule in registry().values()}
    missing = {rule: gap for rule, gap in missing.items() if gap}
    assert not missing, f"{RBAC_FILE.name} ({READ_ROLE}) lacks what these rules read: {missing}"
    declared = set().union(*(needs(r.kube_permissions) for r in registry().values()))
    extra = sorted(grants - declared)
    assert not extra, f"{READ_ROLE} grants what no rule reads: {extra}"
    assert not {g[2] for g in granted(rules_)} - {"get", "list", "watch"}, f"{READ_ROLE} must only read"
    # A list is of objects of any name (resourceNames cannot narrow it); a get may be narrowed to the objects a rule
    # reads by name (tests/integration/compliance/test_permissions.py checks the names against real requests).
    for rule in rules_:
        assert not (rule.get("resourceNames") and "list" in rule["verbs"]), rule


def test_the_remediate_role_allows_every_remediation_write_and_nothing_else() -> None:
    rules_ = cluster_role(REMEDIATE_ROLE)
    grants = {g[:3] for g in granted(rules_)}
    missing = {r.id: sorted(needs(r.remediation_kube_permissions) - grants) for r in remediable()}
    missing = {rule: gap for rule, gap in missing.items() if gap}
    assert not missing, f"{RBAC_FILE.name} ({REMEDIATE_ROLE}) lacks what these remediations write: {missing}"
    declared = set().union(*(needs(r.remediation_kube_permissions) for r in remediable()))
    extra = sorted(grants - declared)
    assert not extra, f"{REMEDIATE_ROLE} grants what no remediation needs: {extra}"
    # Narrowed by name where eksops' object has one (tests/integration/compliance/test_permissions.py checks the
    # names against the requests the remediations really send).


def test_the_kubernetes_checks_can_fail() -> None:
    rules_ = cluster_role(READ_ROLE)
    assert not allows(rules_, "", "secrets", "list", "any-name")  # never the secrets' values
    assert not allows(rules_, "", "namespaces", "patch", "shop")  # reads only
    assert not allows(rules_, "", "configmaps", "get", "someone-elses")  # by name only
    assert allows(rules_, "", "pods", "list", "any-name")
    assert needs([KubePermission("", "pods", ("list", "get"))]) == {("", "pods", "list"), ("", "pods", "get")}


# -- tests and docs ---------------------------------------------------------------------------------------------


def _test_function_names() -> set[str]:
    names = set()
    for path in sorted(RULE_TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_rule_has_a_compliant_and_a_non_compliant_test() -> None:
    found = _test_function_names()
    missing = [
        name
        for rule_id in sorted(registry())
        for name in (f"test_{rule_id.replace('-', '_')}_compliant", f"test_{rule_id.replace('-', '_')}_non_compliant")
        if name not in found
    ]
    assert not missing, f"tests/integration/compliance/ lacks {missing}"


def test_every_remediable_rule_has_a_remediation_test() -> None:
    found = _test_function_names()
    missing = [
        rule.id
        for rule in remediable()
        if not any(n.startswith(f"test_{rule.id.replace('-', '_')}_") and "remediat" in n for n in found)
    ]
    assert not missing, f"no test_<rule>_...remediat... test in tests/integration/compliance/ for {missing}"


def test_docs_list_every_rule_with_its_reference_and_are_current() -> None:
    doc = compliance_docs.DOC.read_text()
    for rule in registry().values():
        assert f"`{rule.id}`" in doc, f"docs/compliance.md does not list {rule.id}"
        assert compliance_docs._cell(rule.reference) in doc, f"docs/compliance.md lacks {rule.id}'s reference"
    assert compliance_docs.render(doc, registry()) == doc, (
        f"docs/compliance.md is out of date: run {compliance_docs.COMMAND}"
    )


def test_the_docs_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "compliance.md"
    page.write_text(compliance_docs.DOC.read_text().replace(f"`{next(iter(sorted(registry())))}`", "`gone`", 1))
    assert compliance_docs.main(["--check", "--doc", str(page)]) == 1
    assert compliance_docs.main(["--doc", str(page)]) == 0
    assert compliance_docs.main(["--check", "--doc", str(page)]) == 0
