"""Server-side apply of Kubernetes manifests, reporting per object whether it was created, configured or unchanged,
and who owns an object already there (eksops, or Helm, an EKS add-on, another tool): `foreign_owner`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eksops.errors import PermanentError, TemporaryError

# "conflict": an apply without force (the object is not eksops' own) that the server refused with 409 Conflict,
# because another field manager owns a field eksops sets to another value; the object was left as it is.
Outcome = Literal["created", "configured", "unchanged", "conflict"]

# Apply order by kind: what others live in or refer to goes first (namespaces, then cluster-scoped RBAC), the
# APIService last since it points at a Service backed by a workload. Unknown kinds go after the known ones;
# the input order is kept within a kind.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "NetworkPolicy",
    "DaemonSet",
    "Deployment",
)
LAST_KINDS: tuple[str, ...] = ("APIService",)

# Fields the server changes on any write; ignored when comparing contents (dry runs keep the old resourceVersion).
_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")

MANAGED_BY = ("app.kubernetes.io/managed-by", "eksops")
# Marks of the installers eksops gives way to. Helm 3 annotates every object of a release (and labels it
# app.kubernetes.io/managed-by=Helm); EKS add-ons label theirs app.kubernetes.io/managed-by=EKS (Auto Mode: eks),
# some eks.amazonaws.com/<x>, and apply them server-side as field manager "eks".
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
EKS_LABEL_PREFIX = "eks.amazonaws.com/"
INSTALLER_MANAGERS: dict[str, str] = {"helm": "Helm", "eks": "an EKS add-on"}
MAX_CONFLICT_MESSAGE = 300


@dataclass(frozen=True)
class AppliedObject:
    """One applied object and what the apply did to it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    outcome: Outcome
    message: str = ""  # for a conflict: the server's answer (which manager owns which field)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Owner:
    """Who, other than eksops, manages an object: ``who`` ("Helm release monitoring/metrics-server") and the
    ``sign`` that says so ("annotation meta.helm.sh/release-name")."""

    who: str
    sign: str


@dataclass(frozen=True)
class ApplySummary:
    """The per-object outcomes of one `apply_manifests` call, in apply order."""

    objects: tuple[AppliedObject, ...]
    dry_run: bool

    def count(self, outcome: Outcome) -> int:
        return sum(1 for obj in self.objects if obj.outcome == outcome)

    @property
    def changed(self) -> bool:
        return any(obj.outcome in ("created", "configured") for obj in self.objects)

    @property
    def conflicts(self) -> tuple[AppliedObject, ...]:
        return tuple(obj for obj in self.objects if obj.outcome == "conflict")


def ref_of(doc: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` without a namespace) as the document names its object."""
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{doc.get('kind')}/{namespace}/{meta.get('name')}" if namespace else f"{doc.get('kind')}/{meta.get('name')}"


def foreign_owner(obj: Mapping[str, Any], field_manager: str = "eksops") -> Owner | None:
    """Who else manages ``obj`` (an object as read from the cluster); None when it is eksops' own to force-apply.

    Another installer's marks come first, whatever else the object carries: Helm's release annotation, an
    app.kubernetes.io/managed-by label other than eksops (Helm, EKS, eksctl, ...), an eks.amazonaws.com/ label, or
    the field manager helm or eks. Then the object is eksops' when it is labelled app.kubernetes.io/managed-by=eksops
    or when ``field_manager`` applied it (managedFields, operation Apply): other managers next to it are edits
    (kubectl edit, controllers) that a forced apply is meant to undo. Anything else belongs to whoever wrote it: the
    field managers the server recorded are named (status subresource writers left out).
    """
    meta = obj.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    annotations = meta.get("annotations") or {}
    entries = [e for e in meta.get("managedFields") or [] if isinstance(e, Mapping) and not e.get("subresource")]
    managers = {str(e.get("manager")) for e in entries if e.get("manager")}
    key, value = MANAGED_BY
    release = annotations.get(HELM_RELEASE_ANNOTATION)
    if release:
        namespace = annotations.get(HELM_NAMESPACE_ANNOTATION)
        return Owner(
            f"Helm release {namespace}/{release}" if namespace else f"Helm release {release}",
            f"annotation {HELM_RELEASE_ANNOTATION}",
        )
    managed_by = labels.get(key)
    if managed_by and managed_by != value:
        who = INSTALLER_MANAGERS.get(managed_by.lower(), managed_by)
        return Owner(who, f"label {key}={managed_by}")
    eks_labels = sorted(k for k in labels if k.startswith(EKS_LABEL_PREFIX))
    if eks_labels:
        return Owner("an EKS add-on", f"label {eks_labels[0]}={labels[eks_labels[0]]}")
    for manager, who in INSTALLER_MANAGERS.items():
        if manager in managers and manager != field_manager:
            return Owner(who, f"field manager {manager}")
    applied = any(e.get("manager") == field_manager and e.get("operation") == "Apply" for e in entries)
    if managed_by == value or applied:
        return None
    others = sorted(managers - {field_manager})
    if others:
        return Owner(f"field manager {', '.join(others)}", f"no {key}={value} label")
    return Owner("an unknown owner", f"no {key}={value} label, no field manager recorded")


def read_objects(
    api_client: Any, docs: list[dict[str, Any]], *, deadline: float | None = None
) -> dict[str, dict[str, Any] | None]:
    """The live object of each document, keyed by `ref_of(doc)`; None where there is none (or the cluster does not
    serve the kind: applying it then fails with that reason). Reads only: one GET per document."""
    from kubernetes.dynamic import DynamicClient  # cold start: only when reading
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    client = DynamicClient(api_client)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
    found: dict[str, dict[str, Any] | None] = {}
    for doc in docs:
        check_deadline(deadline, "reading the cluster's objects")
        ref = ref_of(doc)
        found[ref] = None
        try:
            resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            namespace = doc["metadata"].get("namespace") if resource.namespaced else None
            found[ref] = resource.get(name=doc["metadata"]["name"], namespace=namespace).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            continue
    return found


def order_manifests(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents in apply order (see KIND_ORDER); stable within a kind."""

    def rank(doc: Mapping[str, Any]) -> int:
        kind = doc.get("kind", "")
        if kind in KIND_ORDER:
            return KIND_ORDER.index(kind)
        return len(KIND_ORDER) + (1 if kind in LAST_KINDS else 0)

    return sorted(docs, key=rank)


def check_deadline(deadline: float | None, what: str) -> None:
    """Raise TemporaryError once ``time.monotonic()`` has passed ``deadline`` (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise TemporaryError(f"{what}: out of time for this cluster; the next run goes on")


def apply_manifests(
    api_client: Any,
    docs: list[dict[str, Any]],
    *,
    field_manager: str = "eksops",
    dry_run: bool = False,
    deadline: float | None = None,
    force: bool | Literal["owned"] = True,
) -> ApplySummary:
    """Server-side apply `docs` with a `kubernetes.client.ApiClient`; with dry_run nothing is stored.

    ``force``: True forces conflicts on every object; "owned" only on objects that do not exist yet or that
    `foreign_owner` finds to be eksops' own, the others are applied without force; False never forces. An apply
    without force that the server refuses with 409 Conflict leaves the object as it is: outcome "conflict", with
    the server's message. Raises PermanentError for an invalid manifest, an unknown kind or another 4xx answer,
    TemporaryError for 429/5xx and when ``time.monotonic()`` passes ``deadline`` before every object was applied.
    """
    from kubernetes.dynamic import DynamicClient  # cold start: only when applying

    client = DynamicClient(api_client)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
    applied: list[AppliedObject] = []
    dry_created_namespaces: set[str] = set()
    for doc in order_manifests(docs):
        check_deadline(deadline, f"server-side apply stopped after {len(applied)} of {len(docs)} objects")
        obj = _apply_one(client, doc, field_manager, dry_run, dry_created_namespaces, force=force)
        if dry_run and obj.kind == "Namespace" and obj.outcome == "created":
            dry_created_namespaces.add(obj.name)
        applied.append(obj)
    return ApplySummary(objects=tuple(applied), dry_run=dry_run)


def _apply_one(
    client: Any,
    doc: dict[str, Any],
    field_manager: str,
    dry_run: bool,
    dry_created_namespaces: set[str],
    *,
    force: bool | Literal["owned"],
) -> AppliedObject:
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

    api_version, kind, name = doc.get("apiVersion"), doc.get("kind"), doc.get("metadata", {}).get("name")
    if not (api_version and kind and name):
        raise PermanentError(f"manifest lacks apiVersion, kind or metadata.name: {api_version}/{kind}/{name}")
    try:
        resource = client.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError as exc:
        raise PermanentError(f"the cluster does not serve {api_version} {kind} (for {name})") from exc

    namespace: str | None = None
    if resource.namespaced:
        namespace = doc["metadata"].get("namespace") or "default"
        doc = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    ref = f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"

    forced = False
    try:
        try:
            before: dict[str, Any] | None = resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            before = None
        forced = force is True or (
            force == "owned" and (before is None or foreign_owner(before, field_manager) is None)
        )
        if before is None and namespace in dry_created_namespaces:
            # A dry run cannot create into a namespace it only pretended to create (the server answers 404).
            outcome: Outcome = "created"
        else:
            after = resource.server_side_apply(
                body=doc,
                name=name,
                namespace=namespace,
                field_manager=field_manager,
                force_conflicts=True if forced else None,  # None: no force parameter at all
                dry_run="All" if dry_run else None,
            ).to_dict()
            outcome = _outcome(before, after, dry_run=dry_run)
    except DynamicApiError as exc:
        status = exc.status or 0
        if status == 409 and not forced:
            return AppliedObject(api_version, kind, name, namespace, "conflict", _status_message(exc))
        error = TemporaryError if status == 429 or status >= 500 else PermanentError
        raise error(f"server-side apply of {ref} failed: HTTP {status} {exc.reason}") from exc
    return AppliedObject(api_version=api_version, kind=kind, name=name, namespace=namespace, outcome=outcome)


def _status_message(exc: Any) -> str:
    """The message of a Kubernetes Status answer (it names the conflicting managers and fields), bounded."""
    try:
        text = str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        text = str(exc.reason)
    return text if len(text) <= MAX_CONFLICT_MESSAGE else text[: MAX_CONFLICT_MESSAGE - 3] + "..."


def _outcome(before: Mapping[str, Any] | None, after: Mapping[str, Any], *, dry_run: bool) -> Outcome:
    if before is None:
        return "created"
    old_version = before.get("metadata", {}).get("resourceVersion")
    new_version = after.get("metadata", {}).get("resourceVersion")
    if not dry_run and old_version and new_version:
        # The server bumps resourceVersion only when the write changed the object.
        return "unchanged" if old_version == new_version else "configured"
    return "unchanged" if _content(before) == _content(after) else "configured"


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in _VOLATILE_METADATA}
    return {**obj, "metadata": metadata}


def delete_managed(
    api_client: Any,
    docs: list[dict[str, Any]],
    *,
    field_manager: str = "eksops",
    dry_run: bool = False,
    deadline: float | None = None,
) -> tuple[list[str], list[str]]:
    """Delete the objects of ``docs`` that eksops applied: (deleted refs, refs left in place with the reason).

    An object is deleted only when it carries the label app.kubernetes.io/managed-by=eksops and no other field
    manager writes it (status updates by controllers aside): an object that someone else took over, such as an
    EKS add-on applying over an object of the same name, is left in place and reported. Reverse apply order, so
    the workloads go first. With ``dry_run`` the server is asked with dryRun=All and nothing is deleted.
    """
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

    client = DynamicClient(api_client)  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
    deleted: list[str] = []
    kept: list[str] = []
    for doc in reversed(order_manifests(docs)):
        check_deadline(deadline, "removing eksops' objects")
        meta = doc["metadata"]
        try:
            resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        except ResourceNotFoundError:
            continue  # the cluster does not serve the kind: nothing of it to delete
        namespace = (meta.get("namespace") or "default") if resource.namespaced else None
        ref = f"{doc['kind']}/{namespace}/{meta['name']}" if namespace else f"{doc['kind']}/{meta['name']}"
        try:
            found = resource.get(name=meta["name"], namespace=namespace).to_dict()
            reason = _foreign(found, field_manager)
            if reason:
                kept.append(f"{ref} ({reason})")
                continue
            resource.delete(name=meta["name"], namespace=namespace, dry_run="All" if dry_run else None)
        except NotFoundError:
            continue
        except DynamicApiError as exc:
            status = exc.status or 0
            error = TemporaryError if status == 429 or status >= 500 else PermanentError
            raise error(f"delete of {ref} failed: HTTP {status} {exc.reason}") from exc
        deleted.append(ref)
    return deleted, kept


def _foreign(obj: Mapping[str, Any], field_manager: str) -> str | None:
    """Why ``obj`` is not eksops' own to delete, or None when it is."""
    meta = obj.get("metadata") or {}
    key, value = MANAGED_BY
    if (meta.get("labels") or {}).get(key) != value:
        return f"not labelled {key}={value}"
    others = sorted(
        {
            str(entry.get("manager"))
            for entry in meta.get("managedFields") or []
            if entry.get("manager") != field_manager and not entry.get("subresource")
        }
    )
    return f"also managed by {', '.join(others)}" if others else None
