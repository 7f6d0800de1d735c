"""`eksops simulate`: the engine's arithmetic, the CLI's output, and acceptance 1 of issue 10 on the built-in traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eksops.scaling import decision
from eksops_dev import simulate
from eksops_dev.cli import main
from eksops_dev.simulate import ACCEPTANCE_TRACES, BUILT_IN, Cluster, Karpenter, Reactive, run_oracle, run_policy


@pytest.mark.parametrize("name", ACCEPTANCE_TRACES)
def test_predictive_beats_reactive_scaling_within_the_oracle_s_node_hours(name: str) -> None:
    """Acceptance 1: >= 90 % less pending CPU than reactive, >= 75 % less than karpenter, node hours <= 1.15x the
    oracle's, with the node_scaler's defaults on a 4-core node that is ready 150 s after launch."""
    results = simulate.simulate(BUILT_IN[name](), Cluster(), policies=("reactive", "karpenter", "predictive", "oracle"))
    predictive = results["predictive"]
    assert results["oracle"].pending_core_seconds == 0
    assert results["reactive"].pending_core_seconds > 1000  # the trace does make a reactive scaler wait
    assert predictive.pending_core_seconds <= 0.10 * results["reactive"].pending_core_seconds
    assert predictive.pending_core_seconds <= 0.25 * results["karpenter"].pending_core_seconds
    assert predictive.node_hours <= 1.15 * results["oracle"].node_hours
    assert simulate.acceptance(results)["holds"]


def test_the_simulator_runs_the_lambda_s_own_decision() -> None:
    assert simulate.decide is decision.decide


def _csv(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text("seconds,cpu_millicores\n" + rows)
    return path


def test_pending_and_node_hours_are_integrated_exactly(tmp_path: Path) -> None:
    # One node's worth (3920 m on 4 cores) until 100 s, two from 105 s; nodes are ready 150 s after launch.
    trace = simulate.load_trace(_csv(tmp_path, "0,3920\n100,3920\n105,7840\n600,7840\n"))
    cluster = Cluster(node_cpu=4, ready_seconds=150, min_nodes=1, max_nodes=10)
    karpenter = run_policy(trace, Karpenter(cluster), cluster)
    # Karpenter launches at 105 s; the node is ready at 255 s: 3.92 cores wait 150 s.
    assert karpenter.pending_core_seconds == pytest.approx(3.92 * 150)
    assert karpenter.max_pending_seconds == 150
    assert karpenter.node_hours == pytest.approx((121 + 100) * 5 / 3600)  # 1 node 0..600 s, 1 more 105..600 s
    reactive = run_policy(trace, Reactive(cluster), cluster)
    # Cluster Autoscaler notices at its next 10 s scan (110 s): 5 s more.
    assert reactive.pending_core_seconds == pytest.approx(3.92 * 155)
    oracle = run_oracle(trace, cluster)
    assert oracle.pending_core_seconds == 0 and oracle.max_pending_seconds == 0
    assert oracle.node_hours == pytest.approx((121 + 121) * 5 / 3600)  # launched 150 s early: from 0 s on


@pytest.mark.parametrize(("cores", "allocatable"), [(2, 1930), (4, 3920), (8, 7910), (16, 15890)])
def test_allocatable_follows_the_eks_ami_reservation(cores: int, allocatable: int) -> None:
    assert simulate.allocatable_millicores(cores) == allocatable


def test_json_output_is_exactly_the_documented_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _csv(tmp_path, "0,8000\n1800,40000\n3600,12000\n")
    assert main(["simulate", "--trace", str(trace), "--json", "--ready-seconds", "120", "--min-nodes", "1"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert list(document) == ["policies"]
    assert list(document["policies"]) == list(simulate.POLICIES)
    for figures in document["policies"].values():
        assert list(figures) == ["pending_core_seconds", "max_pending_seconds", "node_hours"]
        assert all(isinstance(v, int | float) and v >= 0 for v in figures.values())
    assert out.count("\n") == 1  # nothing else on stdout


def test_a_trace_exported_with_a_byte_order_mark_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffseconds,cpu_millicores\r\n0,8000\r\n1800,40000\r\n".encode())
    assert main(["simulate", "--trace", str(path), "--json", "--policies", "oracle"]) == 0
    assert json.loads(capsys.readouterr().out)["policies"]["oracle"]["node_hours"] > 0


def test_the_table_names_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "spike", "--policies", "reactive,oracle", "--node-cpu", "8"]) == 0
    out = capsys.readouterr().out
    assert "trace spike" in out and "7910 m allocatable" in out
    lines = out.splitlines()
    assert lines[2].split() == ["policy", "pending_core_seconds", "max_pending_seconds", "node_hours"]
    assert [line.split()[0] for line in lines[3:]] == ["reactive", "oracle"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,cpu\n0,1\n", "header must be seconds,cpu_millicores"),
        ("seconds,cpu_millicores\n0,1\n", "at least two rows"),
        ("seconds,cpu_millicores\n0,1\n60,2\n60,3\n", "increase"),
        ("seconds,cpu_millicores\n10,1\n60,2\n", "start at 0"),
        ("seconds,cpu_millicores\n0,1\n60,-2\n", "must not be negative"),
        ("seconds,cpu_millicores\n0,1\n60,two\n", ":3: not numbers"),
        ("seconds,cpu_millicores\n0,1,2\n", ":2: expected 2 columns"),
    ],
)
def test_bad_trace_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["simulate", "--trace", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "ramp", "--policies", "reactive,hpa"]) == 2
    assert "unknown policy 'hpa'" in capsys.readouterr().err
    assert main(["simulate", "ramp", "--min-nodes", "5", "--max-nodes", "2"]) == 2
    assert main(["simulate", "--trace", "/nonexistent/trace.csv"]) == 2


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    trace = _csv(tmp_path, "0,8000\n1200,40000\n2400,12000\n")
    target = tmp_path / "plot.png"
    assert main(["simulate", "--trace", str(trace), "--plot", str(target), "--json"]) == 0
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
