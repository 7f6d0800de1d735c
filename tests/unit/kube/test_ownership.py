"""Who owns an object already on the cluster (eksops.kube.apply.foreign_owner), from the marks that Helm, EKS
add-ons, kubectl and eksops leave on it: labels, annotations and the API server's managedFields."""

from __future__ import annotations

from typing import Any

import pytest

from eksops.kube.apply import Owner, foreign_owner, ref_of

EKSOPS = {"app.kubernetes.io/managed-by": "eksops"}


def obj(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    managers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "metrics-server", "namespace": "kube-system"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    if managers is not None:
        meta["managedFields"] = managers
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}


def entry(manager: str, operation: str = "Update", subresource: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": "apps/v1"}
    if subresource:
        found["subresource"] = subresource
    return found


# What `helm install metrics-server metrics-server/metrics-server -n kube-system` leaves on the Deployment.
HELM_LABELS = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "metrics-server"}
HELM_ANNOTATIONS = {"meta.helm.sh/release-name": "metrics-server", "meta.helm.sh/release-namespace": "kube-system"}


@pytest.mark.parametrize(
    ("found", "who", "sign"),
    [
        pytest.param(
            obj(HELM_LABELS, HELM_ANNOTATIONS, [entry("helm")]),
            "Helm release kube-system/metrics-server",
            "annotation meta.helm.sh/release-name",
            id="helm-release",
        ),
        pytest.param(
            obj({**EKSOPS}, {"meta.helm.sh/release-name": "ms"}),
            "Helm release ms",
            "annotation meta.helm.sh/release-name",
            id="helm-annotation-beats-eksops-label",
        ),
        pytest.param(
            obj({"app.kubernetes.io/managed-by": "Helm"}), "Helm", "label app.kubernetes.io/managed-by=Helm", id="helm"
        ),
        pytest.param(
            obj({"app.kubernetes.io/managed-by": "EKS"}, managers=[entry("eks", "Apply")]),
            "an EKS add-on",
            "label app.kubernetes.io/managed-by=EKS",
            id="eks-addon-label",
        ),
        pytest.param(
            obj({"eks.amazonaws.com/component": "metrics-server"}),
            "an EKS add-on",
            "label eks.amazonaws.com/component=metrics-server",
            id="eks-label",
        ),
        pytest.param(
            obj({**EKSOPS}, managers=[entry("eksops", "Apply"), entry("eks", "Apply")]),
            "an EKS add-on",
            "field manager eks",
            id="eks-applied-over-eksops",
        ),
        pytest.param(
            obj(managers=[entry("helm")]), "Helm", "field manager helm", id="helm-field-manager-without-labels"
        ),
        pytest.param(
            obj({"app.kubernetes.io/managed-by": "eksctl"}),
            "eksctl",
            "label app.kubernetes.io/managed-by=eksctl",
            id="another-tool",
        ),
        pytest.param(
            obj(managers=[entry("kubectl-client-side-apply"), entry("kube-controller-manager")]),
            "field manager kube-controller-manager, kubectl-client-side-apply",
            "no app.kubernetes.io/managed-by=eksops label",
            id="kubectl-apply",
        ),
        pytest.param(
            obj(),
            "an unknown owner",
            "no app.kubernetes.io/managed-by=eksops label, no field manager recorded",
            id="bare",
        ),
    ],
)
def test_others_objects_name_their_owner(found: dict[str, Any], who: str, sign: str) -> None:
    assert foreign_owner(found) == Owner(who, sign)


@pytest.mark.parametrize(
    "found",
    [
        pytest.param(obj({**EKSOPS}), id="eksops-label"),
        pytest.param(obj(managers=[entry("eksops", "Apply")]), id="applied-by-eksops-label-removed-by-hand"),
        # Edits next to eksops' apply are drift a forced apply repairs, not another owner.
        pytest.param(
            obj(
                {**EKSOPS}, managers=[entry("eksops", "Apply"), entry("kubectl-edit"), entry("kube-controller-manager")]
            ),
            id="eksops-edited-by-hand",
        ),
        # A controller writing status only (subresource) owns nothing eksops sets.
        pytest.param(
            obj(managers=[entry("eksops", "Apply"), entry("kube-controller-manager", subresource="status")]),
            id="status-writer",
        ),
        # IRSA: an operator annotates eksops' service account with a role; still eksops'.
        pytest.param(obj({**EKSOPS}, {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}), id="irsa-annotation"),
    ],
)
def test_eksops_objects_are_its_own(found: dict[str, Any]) -> None:
    assert foreign_owner(found) is None


def test_another_field_manager_name_is_eksops_for_that_caller() -> None:
    """node_scaler applies as its own field manager: its objects are its own, eksops' (bootstrap) are not."""
    applied = obj(managers=[entry("eksops-node-scaler", "Apply")])
    assert foreign_owner(applied, "eksops-node-scaler") is None
    assert foreign_owner(applied) == Owner(
        "field manager eksops-node-scaler", "no app.kubernetes.io/managed-by=eksops label"
    )


def test_ref_of_names_objects_as_apply_reports_them() -> None:
    assert ref_of(obj()) == "Deployment/kube-system/metrics-server"
    assert ref_of({"kind": "ClusterRole", "metadata": {"name": "system:metrics-server"}}) == (
        "ClusterRole/system:metrics-server"
    )
