"""Node scaling policies on every built-in trace: the `eksops simulate` table per trace, and acceptance 1 of
issue 10 (predictive: >= 90 % less pending CPU than reactive, >= 75 % less than karpenter, node hours within
1.15x the oracle's) on diurnal, ramp and sawtooth. Spike is reported only: no forecast sees a step coming.

Exits 1 when acceptance fails on one of the three traces.
"""

from __future__ import annotations

import argparse
import sys
import time

from eksops_dev.simulate import ACCEPTANCE_TRACES, BUILT_IN, Cluster, acceptance, scaler_config, simulate, table


def _less(reduction: float) -> str:
    return f"{reduction:.1%} less" if reduction >= 0 else f"{-reduction:.1%} more"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-cpu", type=float, default=4.0)
    parser.add_argument("--ready-seconds", type=float, default=150.0)
    parser.add_argument("--min-nodes", type=int, default=2)
    parser.add_argument("--max-nodes", type=int, default=100)
    parser.add_argument("--seed", type=int, help="noise seed for every trace (default: each trace's own)")
    args = parser.parse_args(argv)
    cluster = Cluster(args.node_cpu, args.ready_seconds, args.min_nodes, args.max_nodes)
    cfg = scaler_config(cluster)
    print(
        f"predictive: SCALER_TARGET_PERCENT={cfg.target_percent} (fluid packing) SCALER_LEAD_SECONDS={cfg.lead_seconds}"
        f" SCALER_MAX_STEP={cfg.max_step} cooldown {cfg.scale_out_cooldown} s, scale-in window"
        f" {cfg.scale_in_window} s, headroom quantile {cfg.headroom_quantile} of the last {cfg.history_seconds} s\n"
    )
    failed = []
    for name, make in BUILT_IN.items():
        trace = make() if args.seed is None else make(args.seed)
        started = time.perf_counter()
        results = simulate(trace, cluster, cfg=cfg)
        elapsed = time.perf_counter() - started
        print(table(trace, cluster, results))
        check = acceptance(results)
        verdict = "reported only" if name not in ACCEPTANCE_TRACES else ("holds" if check["holds"] else "FAILS")
        print(
            f"acceptance 1: {verdict}: pending {_less(check['pending_reduction_vs_reactive'])} than reactive,"
            f" {_less(check['pending_reduction_vs_karpenter'])} than karpenter;"
            f" node hours {check['node_hours_vs_oracle']:.3f}x the oracle's  ({elapsed:.1f} s)\n"
        )
        if name in ACCEPTANCE_TRACES and not check["holds"]:
            failed.append(name)
    if failed:
        print(f"acceptance 1 fails on: {', '.join(failed)}")
        return 1
    print(f"acceptance 1 holds on {', '.join(ACCEPTANCE_TRACES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
