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
    assert f.tags(group).keys() == {"eks:cluster-name", *OURS}  # not even the bookkeeping tags
    # The alarm it would create is reported, not created.
    assert run.result["alarms"] == [
        {"cluster": cluster, "kind": "alarm", "name": alarm_name(cluster), "action": "create"}
    ]
    assert f.cloudwatch.describe_alarms(AlarmNamePrefix=PREFIX)["MetricAlarms"] == []
    (report,) = f.messages()
    assert report["details"]["dry_run"] is True and "dry run" in report["summary"]
    # The demand is still recorded: the forecast has a history when the scaler is let act.
    assert f.schedule().result["decisions"][0]["history"]["samples"] >= 21
