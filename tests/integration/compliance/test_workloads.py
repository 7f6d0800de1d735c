"""The workload walk against the Kubernetes emulator over HTTP: every pod is checked through exactly one workload.

Pods of Deployments (through their ReplicaSets), DaemonSets, StatefulSets and CronJobs (through their Jobs) are judged
on their controller's template, once; stand-alone Jobs and ReplicaSets are workloads themselves; an Argo Rollout is
judged on its newest running ReplicaSet; pods of controllers the walk does not read (operators' custom resources) are
judged one by one. pod-privileged stands for every workload rule (they share the walk).
"""

from __future__ import annotations

from typing import Any

from eksops.compliance.model import Violation
from tests.integration.compliance.conftest import ClusterUnderTest
from tests.integration.compliance.kube_objects import (
    container,
    cron_job,
    job,
    owner,
    pod,
    pod_spec,
    replica_set,
    workload,
)

BAD = pod_spec(container(securityContext={"privileged": True, "allowPrivilegeEscalation": False}))
GOOD = pod_spec()
ROLLOUT = "argoproj.io/v1alpha1"


def found(cluster: ClusterUnderTest, rule_id: str, *objects: dict[str, Any]) -> dict[str, Violation]:
    """Create ``objects``, run the rule; its violations by resource (each resource at most once)."""
    for obj in objects:
        cluster.kube_create(obj)
    violations = cluster.violations(rule_id)
    by_resource = {v.resource: v for v in violations}
    assert len(by_resource) == len(violations), f"a resource reported twice: {violations}"
    return by_resource


def test_a_deployment_s_replica_sets_and_pods_are_judged_on_the_deployment_only(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "pod-privileged",
        workload("Deployment", "shop", "cart", BAD),
        replica_set("shop", "cart-7d9f", BAD, by=owner("Deployment", "cart"), replicas=2),
        replica_set("shop", "cart-5c4b", BAD, by=owner("Deployment", "cart"), replicas=0),  # an old revision
        pod("shop", "cart-7d9f-abcde", BAD, owner=owner("ReplicaSet", "cart-7d9f")),
        pod("shop", "cart-7d9f-fghij", BAD, owner=owner("ReplicaSet", "cart-7d9f")),
    )
    assert set(violations) == {"deployment/shop/cart"}


def test_a_cronjob_is_reported_once_for_all_its_runs(cluster: ClusterUnderTest) -> None:
    runs = []
    for n in (28_000_001, 28_000_002):
        runs += [
            job("shop", f"nightly-{n}", BAD, by=owner("CronJob", "nightly", "batch/v1")),
            pod("shop", f"nightly-{n}-x7k2p", BAD, owner=owner("Job", f"nightly-{n}", "batch/v1")),
        ]
    violations = found(cluster, "pod-privileged", cron_job("shop", "nightly", BAD), *runs)
    assert set(violations) == {"cronjob/shop/nightly"}
    assert violations["cronjob/shop/nightly"].evidence == "container app: privileged"
    assert violations["cronjob/shop/nightly"].namespace == "shop"


def test_a_compliant_cronjob_and_its_runs_are_not_reported(cluster: ClusterUnderTest) -> None:
    assert (
        found(
            cluster,
            "pod-privileged",
            cron_job("shop", "nightly", GOOD),
            job("shop", "nightly-1", GOOD, by=owner("CronJob", "nightly", "batch/v1")),
            pod("shop", "nightly-1-x7k2p", GOOD, owner=owner("Job", "nightly-1", "batch/v1")),
            cron_job("kube-system", "etcd-defrag", BAD),  # system namespaces are left out
        )
        == {}
    )


def test_a_stand_alone_job_is_reported_on_the_job(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "pod-privileged",
        job("shop", "migrate", BAD),
        pod("shop", "migrate-q8w2e", BAD, owner=owner("Job", "migrate", "batch/v1")),
        # a run whose CronJob was deleted with its Jobs orphaned: nothing else stands for it
        job("shop", "report-28000001", BAD, by=owner("CronJob", "report", "batch/v1")),
        pod("shop", "report-28000001-z1", BAD, owner=owner("Job", "report-28000001", "batch/v1")),
        job("shop", "seed", GOOD),
    )
    assert set(violations) == {"job/shop/migrate", "job/shop/report-28000001"}


def test_pods_of_controllers_the_walk_does_not_read_are_each_checked_and_reported_on_the_controller(
    cluster: ClusterUnderTest,
) -> None:
    """Their names change on every run (an Argo Workflow's, a ScaledJob's): reported on the controller, so a finding
    keeps its identity across sweeps; every pod is still judged (one bad pod among good ones is found)."""
    strimzi = owner("StrimziPodSet", "events-kafka", "core.strimzi.io/v1beta2")
    for obj in (
        pod("kafka", "events-kafka-0", GOOD, owner=strimzi),
        pod("kafka", "events-kafka-1", BAD, owner=strimzi),
        pod("kafka", "events-kafka-2", GOOD, owner=strimzi),
        pod("ci", "build-7f3a", BAD, owner=owner("Workflow", "build", "argoproj.io/v1alpha1")),
        pod("ci", "build-9c2e", BAD, owner=owner("Workflow", "build", "argoproj.io/v1alpha1")),
        pod("ci", "lint-1b2c", GOOD, owner=owner("Workflow", "lint", "argoproj.io/v1alpha1")),
        # controllers of known kinds that are not there (being deleted, or their pods orphaned by hand)
        pod("shop", "cart-7d9f-abcde", BAD, owner=owner("ReplicaSet", "cart-7d9f")),
        pod("shop", "db-0", BAD, owner=owner("StatefulSet", "db")),
        pod("shop", "etl-x1", BAD, owner=owner("Job", "etl", "batch/v1")),
    ):
        cluster.kube_create(obj)
    assert {v.resource for v in cluster.violations("pod-privileged")} == {
        "strimzipodset/kafka/events-kafka",
        "workflow/ci/build",
        "pod/shop/cart-7d9f-abcde",
        "pod/shop/db-0",
        "pod/shop/etl-x1",
    }


def test_a_replica_set_without_its_deployment_is_a_workload_itself(cluster: ClusterUnderTest) -> None:
    violations = found(
        cluster,
        "pod-privileged",
        replica_set("shop", "legacy", BAD, replicas=2),  # created by hand
        pod("shop", "legacy-abcde", BAD, owner=owner("ReplicaSet", "legacy")),
        replica_set("shop", "gone-5c4b", BAD, by=owner("Deployment", "gone")),  # its Deployment is not there
        pod("shop", "gone-5c4b-abcde", BAD, owner=owner("ReplicaSet", "gone-5c4b")),
        replica_set("shop", "fine", GOOD),
    )
    assert set(violations) == {"replicaset/shop/legacy", "replicaset/shop/gone-5c4b"}


def test_an_argo_rollout_is_judged_once_on_its_newest_running_replica_set(cluster: ClusterUnderTest) -> None:
    api, web = owner("Rollout", "api", ROLLOUT), owner("Rollout", "web", ROLLOUT)
    violations = found(
        cluster,
        "pod-privileged",
        replica_set("shop", "api-6d8f", GOOD, by=api, replicas=0),  # the previous revision, scaled down
        replica_set("shop", "api-7c9d", BAD, by=api, replicas=2),
        pod("shop", "api-7c9d-abcde", BAD, owner=owner("ReplicaSet", "api-7c9d")),
        pod("shop", "api-7c9d-fghij", BAD, owner=owner("ReplicaSet", "api-7c9d")),
        replica_set("shop", "web-1a2b", BAD, by=web, replicas=0),  # fixed in the running revision
        replica_set("shop", "web-3c4d", GOOD, by=web, replicas=3),
        pod("shop", "web-3c4d-abcde", GOOD, owner=owner("ReplicaSet", "web-3c4d")),
    )
    assert set(violations) == {"rollout/shop/api"}
    assert violations["rollout/shop/api"].namespace == "shop"


def test_batch_workloads_are_checked_for_requests_but_not_for_probes(cluster: ClusterUnderTest) -> None:
    """Jobs run to completion and serve no traffic: readiness and liveness probes are not asked of them."""
    no_probes = pod_spec(container(readinessProbe=None, livenessProbe=None, resources={}))
    objects = (cron_job("shop", "nightly", no_probes), job("shop", "migrate", no_probes))
    missing = found(cluster, "workload-missing-requests", *objects)
    assert set(missing) == {"cronjob/shop/nightly", "job/shop/migrate"}
    assert missing["job/shop/migrate"].evidence == "container app: no cpu or memory request"
    assert cluster.violations("workload-no-probes") == []
