"""node_scaler under DryRun=true: its own sandbox (the parameter is the whole stack's), so its own module: the
shared sandbox of test_node_scaler.py lives on a moto server this module's fixture empties."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.scaling.conftest import PREFIX, Fleet
from tests.integration.scaling.test_node_scaler import OURS, alarm_name, burst, steady_cluster


def test_dry_run_reports_what_it_would_do_and_changes_nothing(fleet: Callable[..., Fleet]) -> None:
    f, cluster = fleet(DryRun="true"), "shop"
    group = steady_cluster(f, cluster)
    burst(f, cluster)
    calls = f.watch_set_desired()
    run = f.schedule()
    assert run.ok, run.error
    assert run.result["dry_run"] is True and run.result["changed"] == []
    (refusal,) = run.result["refused"]
    assert refusal["reason"].startswith("dry run; would set nodes 2 -> ")
    assert f.desired(group) == 2 and calls == []
    # Not the bookkeeping tags either: only the fingerprint of the refusal it reported.
    assert f.tags(group).keys() == {"eks:cluster-name", *OURS, "eksops:scaling-refused"}
    # The alarm it would create is reported, not created.
    assert run.result["alarms"] == [
        {"cluster": cluster, "kind": "alarm", "name": alarm_name(cluster), "action": "create"}
    ]
    assert f.cloudwatch.describe_alarms(AlarmNamePrefix=PREFIX)["MetricAlarms"] == []
    (report,) = f.messages()
    assert report["details"]["dry_run"] is True and "dry run" in report["summary"]
    # The demand is still recorded: the forecast has a history when the scaler is let act.
    assert f.schedule().result["decisions"][0]["history"]["samples"] >= 21


def test_four_scheduled_runs_under_dry_run_report_the_refusal_once_and_again_when_it_changes(
    fleet: Callable[..., Fleet],
) -> None:
    # Demand has stood at 14 cores for 20 minutes on 2 nodes: every minute the dry run refuses the same change.
    f, cluster = fleet(DryRun="true"), "cart"
    group = f.group(f"{cluster}-ng", cluster, desired=2, tags=OURS)
    first, second = f.nodes(cluster, group)
    f.pod(cluster, 3000, node=first)
    f.pod(cluster, 2000, node=second)
    burst(f, cluster)
    f.history(group, cluster, [14000.0] * 20)
    runs = [f.schedule() for _ in range(4)]
    assert all(run.ok for run in runs), [run.error for run in runs]
    assert [len(run.result["refused"]) for run in runs] == [1, 0, 0, 0]
    assert [run.result["refused_again"] for run in runs] == [[], [group], [group], [group]]
    (report,) = f.messages()
    assert report["details"]["dry_run"] is True
    # A different refusal (more pods: a bigger size proposed) is news: reported once more.
    burst(f, cluster, 12000)
    changed = f.schedule()
    assert changed.ok, changed.error
    (refusal,) = changed.result["refused"]
    assert refusal["reason"] != runs[0].result["decisions"][0]["reason"]
    (news,) = f.messages()  # messages() reads what came since the last read
    assert refusal["reason"] in news["lines"][0]
