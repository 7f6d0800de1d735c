"""The shipped Kubernetes manifests: strict schema validity per Kubernetes version, pinned images, rendering, docs."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from eksops.kube import manifests as m

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "cluster-bootstrap.md"
CLUSTER = "prod-eu_1"
REGION = "eu-west-1"
OLDEST_VERSION = (1, 29)


def _schema_versions() -> list[str]:
    """Every Kubernetes minor version whose strict schemas kubernetes-validate bundles, from 1.29 on."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    found = set()
    for entry in root.iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+-local-strict", entry.name)
        if match and (int(match[1]), int(match[2])) >= OLDEST_VERSION:
            found.add((int(match[1]), int(match[2])))
    return [f"{major}.{minor}" for major, minor in sorted(found)]


VERSIONS = _schema_versions()


def _all_objects() -> dict[str, dict[str, Any]]:
    """Every object eksops can apply, keyed by a readable id."""
    rendered = {
        "observability": m.render_observability(CLUSTER, REGION),
        "metrics-server": m.render_metrics_server(fargate=False),
        "metrics-server-fargate": m.render_metrics_server(fargate=True),
        "fargate-logging": m.render_fargate_logging(CLUSTER, REGION),
    }
    objects = {
        f"{group}:{obj['kind']}/{obj['metadata']['name']}": obj for group, objs in rendered.items() for obj in objs
    }
    objects["default-deny-ingress"] = m.default_deny("shop", egress=False)
    objects["default-deny-egress"] = m.default_deny("shop", egress=True)
    objects["psa-namespace"] = m.namespace_with_pod_security("shop", m.pod_security_labels())
    return objects


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _by_name(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


# ---- (a) strict schema validation, per Kubernetes version ----


def test_versions_cover_1_29_to_the_newest_known() -> None:
    assert VERSIONS[0] == "1.29"
    newest = ".".join(latest_version().split(".")[:2])
    assert VERSIONS[-1] == newest
    assert len(VERSIONS) == int(newest.split(".")[1]) - 29 + 1


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(version: str) -> None:
    errors = {}
    for ref, obj in _all_objects().items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors[ref] = f"{exc.path}: {exc.message}"
    assert errors == {}


def test_strict_validation_rejects_unknown_fields() -> None:
    """Guards the test above: strict mode must catch a misplaced field, or the per-version test proves nothing."""
    bad = m.default_deny("shop", egress=False)
    bad["spec"]["podSelectors"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_no_pod_security_policy_anywhere() -> None:
    assert not [ref for ref, obj in _all_objects().items() if obj["kind"] == "PodSecurityPolicy"]


# ---- (b) images pinned and listed ----


def test_every_image_is_pinned_and_listed() -> None:
    images = {c["image"] for obj in _all_objects().values() for c in _containers(obj)}
    assert images == set(m.IMAGES.values())
    for image in images:
        name, _, digest = image.partition("@")
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        assert digest.startswith("sha256:") or tag, f"{image} has neither tag nor digest"
        assert tag not in {"latest", "stable", "master", "main"}, f"{image} uses a moving tag"


def test_every_container_has_requests_and_limits() -> None:
    for ref, obj in _all_objects().items():
        for container in _containers(obj):
            resources_ = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources_.get("requests", {})), ref
            assert {"cpu", "memory"} <= set(resources_.get("limits", {})), ref
            assert container.get("imagePullPolicy") == "IfNotPresent", ref


def test_images_table_names_every_manifest_file_image() -> None:
    text = "".join(
        resources.files("eksops.kube").joinpath("manifests", f"{name}.json").read_text() for name in m.MANIFEST_FILES
    )
    for image in m.IMAGES.values():
        assert f'"{image}"' in text


# ---- (c) docs ----


def _docs_image_rows(text: str) -> dict[str, str]:
    """image -> its table row, for every row of the docs' images table that names an image in backticks."""
    assert "## Images and versions" in text
    section = text.split("## Images and versions", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        images = re.findall(r"`([^`]+:[^`]+)`", line) if line.startswith("|") else []
        for image in images:
            rows[image] = line
    return rows


def test_docs_list_exactly_the_pinned_images_and_versions() -> None:
    rows = _docs_image_rows(DOCS.read_text(encoding="utf-8"))
    # Both ways: every pinned image is listed, and the table lists no image the manifests do not pin.
    assert set(rows) == set(m.IMAGES.values())
    for name, image in m.IMAGES.items():
        version = image.rpartition(":")[2]
        cells = [c.strip() for c in rows[image].strip("|").split("|")]
        assert cells == [name, f"`{image}`", version], rows[image]
    assert m.MANIFEST_VERSION in DOCS.read_text(encoding="utf-8")


def test_the_docs_image_check_sees_an_extra_or_stale_row() -> None:
    """Guards the test above: a row for an image the manifests no longer pin must show up as a difference."""
    text = DOCS.read_text(encoding="utf-8")
    stale = "| old-agent | `public.ecr.aws/x/old-agent:1.0` | 1.0 |\n"
    extra = text.replace("| metrics-server |", stale + "| metrics-server |", 1)
    assert set(_docs_image_rows(extra)) - set(m.IMAGES.values()) == {"public.ecr.aws/x/old-agent:1.0"}
    image = m.IMAGES["metrics-server"]
    older = text.replace(f"`{image}`", f"`{image[:-1]}0`")
    assert image not in _docs_image_rows(older)


# ---- (d) rendering ----


def test_no_cluster_or_region_placeholder_remains() -> None:
    dumped = json.dumps(list(_all_objects().values()))
    assert "${cluster}" not in dumped
    assert "${region}" not in dumped
    # Fluent Bit resolves its own ${...} variables from the environment at run time: they must survive rendering.
    assert "/aws/containerinsights/${CLUSTER_NAME}/application" in dumped


def test_observability_puts_cluster_and_region_where_the_agents_read_them() -> None:
    objects = m.render_observability(CLUSTER, REGION)
    cwagent = json.loads(_by_name(objects, "ConfigMap", "cwagentconfig")["data"]["cwagentconfig.json"])
    assert cwagent["agent"]["region"] == REGION
    assert cwagent["logs"]["metrics_collected"]["kubernetes"]["cluster_name"] == CLUSTER
    info = _by_name(objects, "ConfigMap", "fluent-bit-cluster-info")["data"]
    assert info["cluster.name"] == CLUSTER
    assert info["logs.region"] == REGION
    assert set(info) == {"cluster.name", "logs.region", "http.server", "http.port", "read.head", "read.tail"}
    config = _by_name(objects, "ConfigMap", "fluent-bit-config")["data"]
    for stream in ("application", "dataplane", "host"):
        assert f"/aws/containerinsights/${{CLUSTER_NAME}}/{stream}" in config[f"{stream}-log.conf"]
    assert _by_name(objects, "DaemonSet", "cloudwatch-agent")["metadata"]["namespace"] == "amazon-cloudwatch"
    assert _by_name(objects, "DaemonSet", "fluent-bit")["metadata"]["namespace"] == "amazon-cloudwatch"


def test_amazon_cloudwatch_namespace_is_privileged() -> None:
    namespace = _by_name(m.render_observability(CLUSTER, REGION), "Namespace", "amazon-cloudwatch")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_fargate_logging_writes_to_the_application_group() -> None:
    objects = m.render_fargate_logging(CLUSTER, REGION)
    namespace = _by_name(objects, "Namespace", "aws-observability")
    assert namespace["metadata"]["labels"]["aws-observability"] == "enabled"
    data = _by_name(objects, "ConfigMap", "aws-logging")["data"]
    assert data["flb_log_cw"] == "false"
    output = data["output.conf"]
    assert f"log_group_name      /aws/containerinsights/{CLUSTER}/application" in output
    assert f"region              {REGION}" in output
    assert "log_stream_prefix   fargate-" in output


def test_fargate_logging_keeps_the_line_and_nests_json_under_log_processed() -> None:
    """The error metric filters read $.log and $.log_processed.level, on nodes and on Fargate alike."""
    data = _by_name(m.render_fargate_logging(CLUSTER, REGION), "ConfigMap", "aws-logging")["data"]
    kubernetes_filter = next(block for block in data["filters.conf"].split("[FILTER]") if "kubernetes" in block)
    settings = dict(line.split(None, 1) for line in kubernetes_filter.strip().splitlines())
    assert settings["Merge_Log"] == "On"
    assert settings["Merge_Log_Key"] == "log_processed"
    assert settings.get("Keep_Log", "On") == "On"
    node_config = _by_name(m.render_observability(CLUSTER, REGION), "ConfigMap", "fluent-bit-config")["data"]
    assert "Merge_Log_Key       log_processed" in node_config["application-log.conf"]
    # Fargate reads at most 5300 characters of the ConfigMap.
    assert sum(len(k) + len(v) for k, v in data.items()) < 5300


@pytest.mark.parametrize(("fargate", "port"), [(False, 10250), (True, 10251)])
def test_metrics_server_port(fargate: bool, port: int) -> None:
    objects = m.render_metrics_server(fargate=fargate)
    (container,) = _by_name(objects, "Deployment", "metrics-server")["spec"]["template"]["spec"]["containers"]
    assert f"--secure-port={port}" in container["args"]
    assert [p["containerPort"] for p in container["ports"]] == [port]
    service = _by_name(objects, "Service", "metrics-server")
    assert service["spec"]["ports"][0]["targetPort"] == "https"  # follows the named container port
    assert {"APIService", "RoleBinding", "ServiceAccount"} <= {o["kind"] for o in objects}
    assert _by_name(objects, "ClusterRole", "system:aggregated-metrics-reader")
    binding = _by_name(objects, "RoleBinding", "metrics-server-auth-reader")
    assert binding["metadata"]["namespace"] == "kube-system"
    assert binding["roleRef"]["name"] == "extension-apiserver-authentication-reader"


def test_rendering_returns_fresh_objects() -> None:
    first = m.render_metrics_server(fargate=True)
    first[0]["metadata"]["name"] = "changed"
    assert m.render_metrics_server(fargate=False)[0]["metadata"]["name"] == "metrics-server"
    assert m.render_observability(CLUSTER, REGION) == m.render_observability(CLUSTER, REGION)


@pytest.mark.parametrize(
    ("cluster", "region"),
    [('a"b', REGION), ("-lead", REGION), ("x" * 101, REGION), ("ok", "eu-west-1\n"), ("ok", "${region}"), ("", REGION)],
)
def test_invalid_cluster_or_region_is_refused(cluster: str, region: str) -> None:
    with pytest.raises(m.InvalidManifestInput):
        m.render_observability(cluster, region)
    with pytest.raises(m.InvalidManifestInput):
        m.render_fargate_logging(cluster, region)


# ---- default deny and Pod Security ----


def test_default_deny_ingress_only_by_default_shape() -> None:
    policy = m.default_deny("shop", egress=False)
    assert policy["metadata"] == {
        "name": "eksops-default-deny",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "eksops"},
    }
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_default_deny_egress_allows_only_dns() -> None:
    spec = m.default_deny("shop", egress=True)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec
    (rule,) = spec["egress"]
    assert {p["port"] for p in rule["ports"]} == {53}
    assert rule["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}


@pytest.mark.parametrize("namespace", sorted(m.PROTECTED_NAMESPACES))
def test_protected_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(m.InvalidManifestInput):
        m.default_deny(namespace, egress=False)
    with pytest.raises(m.InvalidManifestInput):
        m.namespace_with_pod_security(namespace, m.pod_security_labels())


def test_protected_namespaces_include_system_and_eksops_own() -> None:
    assert {"kube-system", "amazon-cloudwatch", "aws-observability"} <= m.PROTECTED_NAMESPACES
    installed = {o["metadata"].get("namespace") for o in _all_objects().values()} - {None, "shop"}
    assert installed <= m.PROTECTED_NAMESPACES


def test_deny_namespaces_matches_globs_and_skips_protected() -> None:
    names = ["kube-system", "amazon-cloudwatch", "shop", "shop-dev", "billing", "default"]
    assert m.deny_namespaces(names, ["*"]) == ["billing", "default", "shop", "shop-dev"]
    assert m.deny_namespaces(names, ["shop*", "kube-*"]) == ["shop", "shop-dev"]
    assert m.deny_namespaces(names, []) == []


def test_invalid_namespace_is_refused() -> None:
    with pytest.raises(m.InvalidManifestInput):
        m.default_deny("Shop_1", egress=False)


def test_pod_security_label_defaults() -> None:
    assert m.pod_security_labels() == {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
    }
    labels = m.pod_security_labels("restricted", "restricted", "restricted", version="v1.31")
    assert set(labels.values()) == {"restricted", "v1.31"}


@pytest.mark.parametrize(("kwargs"), [{"enforce": "strict"}, {"warn": ""}, {"audit": "Baseline"}, {"version": "1.31"}])
def test_pod_security_rejects_unknown_values(kwargs: dict[str, str]) -> None:
    with pytest.raises(m.InvalidManifestInput):
        m.pod_security_labels(**kwargs)


def test_manifest_version_is_calendar_style() -> None:
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", m.MANIFEST_VERSION)


def test_pod_security_namespace_records_the_levels_it_sets() -> None:
    namespace = m.namespace_with_pod_security("shop", m.pod_security_labels())
    assert namespace["metadata"]["annotations"] == {
        m.PSA_ANNOTATION: "enforce=baseline,warn=restricted,audit=restricted"
    }
    assert m.may_set_pod_security(namespace["metadata"])  # its own labels: eksops may update them


@pytest.mark.parametrize(
    ("metadata", "allowed"),
    [
        ({"name": "new"}, True),
        ({"name": "x", "labels": {"team": "a"}}, True),
        ({"name": "x", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}, False),
        ({"name": "x", "labels": {"pod-security.kubernetes.io/warn": "baseline"}}, False),
        (  # eksops set baseline; its owner changed enforce since: left alone
            {
                "name": "x",
                "labels": {
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
                "annotations": {m.PSA_ANNOTATION: "enforce=baseline,warn=restricted,audit=restricted"},
            },
            False,
        ),
    ],
)
def test_may_set_pod_security_never_overrides_an_owners_level(metadata: dict[str, Any], allowed: bool) -> None:
    assert m.may_set_pod_security(metadata) is allowed


def test_metrics_server_pod_labels() -> None:
    assert m.metrics_server_pod_labels() == {"k8s-app": "metrics-server"}
