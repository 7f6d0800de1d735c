"""The vocabulary of compliance sweeps: severities, rules, what a check finds, and the registry of rules.

A rule is a small class: its metadata (id, title, severity, why, how to fix, the IAM actions and Kubernetes
permissions it needs, and the EKS Best Practices / hardeneks item it corresponds to) and a ``check`` that yields
:class:`Violation` s. A rule that can fix what it finds also has ``remediate``; it runs only when its id is listed in
``REMEDIATE`` and never under dry-run (it then says what it would do). ``register`` adds a rule to ``REGISTRY``;
every rule module is imported by ``eksops.compliance.rules``, so importing that package fills the registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from eksops.errors import EksopsError

if TYPE_CHECKING:
    from eksops.compliance.context import ClusterContext

# Rule ids are lowercase kebab-case: the annotation eksops.io/accept-<rule-id> must stay a valid annotation name
# (a name part of at most 63 characters), so ids are at most 56 characters.
RULE_ID = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_RULE_ID = 56


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 4 ... info 0."""
        return _RANKS[self]


_RANKS = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


class Category(StrEnum):
    CLUSTER = "cluster"
    NODES = "nodes"  # node groups and their IAM
    LOGS = "logs"
    OBSERVABILITY = "observability"
    SECURITY = "security"  # Kubernetes security
    RELIABILITY = "reliability"  # workload reliability
    IMAGES = "images"
    FARGATE = "fargate"


@dataclass(frozen=True)
class KubePermission:
    """What a rule needs on the Kubernetes API: the RBAC rule an operator grants (docs/compliance.md)."""

    api_group: str  # "" for the core group
    resource: str  # plural, e.g. "pods"
    verbs: tuple[str, ...] = ("get", "list")


@dataclass(frozen=True)
class Violation:
    """One thing a check found wrong: which resource, and the evidence (what it saw)."""

    resource: str  # e.g. "cluster/prod", "namespace/shop", "deployment/shop/cart", "log-group/<name>"
    evidence: str  # what was seen, short and specific (no secrets: values are never copied, only names)
    annotations: Mapping[str, str] = field(default_factory=dict)  # the object's, for eksops.io/accept-<rule-id>
    namespace: str | None = None  # a namespaced object's namespace: its annotations may accept the finding too
    data: Mapping[str, Any] = field(default_factory=dict)  # what remediate needs (not reported)
    severity: Severity | None = None  # overrides the rule's severity for this finding


class Rule:
    """Base class of compliance rules. Subclasses set the class attributes and implement ``check``."""

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    category: ClassVar[Category]
    why: ClassVar[str]  # why it matters, one or two sentences
    fix: ClassVar[str]  # how to fix it by hand (and what REMEDIATE does, if the rule can)
    reference: ClassVar[str]  # the hardeneks rule or EKS Best Practices Guide section it corresponds to
    adds: ClassVar[str] = ""  # what eksops adds over that reference ("" when nothing)
    iam_actions: ClassVar[tuple[str, ...]] = ()  # AWS actions the check needs
    kube_permissions: ClassVar[tuple[KubePermission, ...]] = ()  # Kubernetes permissions the check needs
    remediation_iam_actions: ClassVar[tuple[str, ...]] = ()  # and remediate, when it is allowed
    remediation_kube_permissions: ClassVar[tuple[KubePermission, ...]] = ()

    @property
    def needs_kube(self) -> bool:
        return bool(self.kube_permissions)

    @property
    def remediable(self) -> bool:
        return type(self).remediate is not Rule.remediate

    def check(self, ctx: ClusterContext) -> Iterable[Violation]:
        raise NotImplementedError

    def remediate(self, ctx: ClusterContext, violation: Violation) -> str:
        """Fix ``violation`` (or, with ``ctx.dry_run``, change nothing); return what was (or would be) done.

        Raise an EksopsError with a clear message when it cannot be fixed; never change access to the cluster.
        """
        raise NotImplementedError(f"rule {self.id} has no remediation")


class NotRemediated(EksopsError):
    """Raised by ``remediate`` for a finding it deliberately leaves as it is (e.g. a namespace the operator did not
    opt in to a change that can cut traffic): the finding stays open with this reason; not an error."""


REGISTRY: dict[str, Rule] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: check the rule's metadata and add one instance of it to REGISTRY."""
    rule_id = getattr(cls, "id", "")
    if not RULE_ID.fullmatch(rule_id) or len(rule_id) > MAX_RULE_ID:
        raise ValueError(f"rule id {rule_id!r} must be lowercase kebab-case of at most {MAX_RULE_ID} characters")
    if rule_id in REGISTRY:
        raise ValueError(f"rule id {rule_id!r} is registered twice")
    for attr in ("title", "severity", "category", "why", "fix", "reference"):
        if not getattr(cls, attr, None):
            raise ValueError(f"rule {rule_id} has no {attr}")
    REGISTRY[rule_id] = cls()
    return cls


def rules() -> dict[str, Rule]:
    """Every registered rule by id (importing eksops.compliance.rules registers them)."""
    import eksops.compliance.rules  # noqa: F401  # registers every rule

    return dict(REGISTRY)


@dataclass(frozen=True)
class Acceptance:
    """A finding accepted as it is: why, until when (None: no expiry), and where that was said."""

    reason: str
    expires: str | None  # ISO date, YYYY-MM-DD
    source: str  # "config" or "annotation <object>"


@dataclass
class Finding:
    """A violation as reported: with its rule's metadata, and what happened to it in this sweep."""

    rule: str
    title: str
    severity: Severity
    category: Category
    cluster: str
    resource: str
    evidence: str
    fix: str
    status: str = "open"  # open, accepted, remediated, would-remediate (dry run), remediation-failed
    accepted: Acceptance | None = None
    remediation: str | None = None  # what was done (or would be, or why it failed)
    new: bool = False  # not in the previous sweep's state
    acceptance_note: str | None = None  # why an acceptance that applies did not hold (expired, malformed)
    reopened: bool = False  # accepted in the previous sweep's state, not now: its acceptance expired or was removed

    @property
    def key(self) -> str:
        """Identity of a finding across sweeps (state, Security Hub)."""
        return f"{self.rule}|{self.resource}"

    def as_dict(self) -> dict[str, Any]:
        body = {
            "rule": self.rule,
            "title": self.title,
            "severity": str(self.severity),
            "category": str(self.category),
            "cluster": self.cluster,
            "resource": self.resource,
            "evidence": self.evidence,
            "fix": self.fix,
            "status": self.status,
            "new": self.new,
        }
        if self.accepted:
            body["accepted"] = {
                "reason": self.accepted.reason,
                "expires": self.accepted.expires,
                "source": self.accepted.source,
            }
        if self.remediation:
            body["remediation"] = self.remediation
        if self.acceptance_note:
            body["acceptance_note"] = self.acceptance_note
        if self.reopened:
            body["reopened"] = True
        return body
