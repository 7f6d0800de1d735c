"""`eksops sweep`: the compliance report of the sandbox's seeded cluster, or (``--aws``) of your own clusters.

It runs the compliance_sweep handler itself, so the report is exactly what the function produces: on the sandbox
(a seeded cluster with typical drift, eksops_dev.seed) by default; with ``--aws`` on your account and region with
your credentials, read-only unless ``--remediate`` names rules to fix (and then only those, and not under
``--dry-run``). Nothing is published unless you set ALERTS_TOPIC_ARN / REPORTS_TOPIC_ARN, and no state is kept
unless COMPLIANCE_TABLE names a table. The report goes to stdout (table, JSON or SARIF), logs to stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any, TextIO, cast

from eksops_dev.cli import UsageError
from eksops_dev.template import Template

FUNCTION = "compliance_sweep"
SANDBOX_CLUSTER = "demo"


def run(
    template: Template,
    *,
    cluster: str | None,
    fmt: str,
    aws: bool,
    dry_run: bool,
    remediate: list[str] | None,
    params: list[str],
) -> int:
    from eksops.compliance.model import rules
    from eksops.compliance.report import ClusterReport, render
    from eksops_dev.invoke import parse_params

    overrides = parse_params(template, params)
    known = rules()
    if remediate:
        unknown = sorted(set(remediate) - set(known))
        if unknown:
            raise UsageError(f"--remediate: unknown rule id(s) {', '.join(unknown)}; docs/compliance.md lists them")
    # Read-only unless remediation is asked for: --remediate (or --param ComplianceRemediate) decides, never a
    # template default or a value from your environment.
    overrides.setdefault("ComplianceRemediate", json.dumps(sorted(remediate or [])))
    # --dry-run (or --param DryRun) decides, not the template's default (a dry run, for a first deploy's safety).
    overrides.setdefault("DryRun", "false")
    if dry_run:
        overrides["DryRun"] = "true"
    event: dict[str, Any] = {"sweep": {"cluster": cluster}} if cluster else {"sweep": "all"}
    results, failures = _on_aws(template, event, overrides) if aws else _on_sandbox(template, event, overrides, cluster)
    reports = [ClusterReport.from_dict(c) for r in results for c in r.get("clusters", [])]
    if reports or not failures:
        sys.stdout.write(render(reports, fmt, rules=known).rstrip("\n") + "\n")
    for failure in failures:
        sys.stderr.write(f"eksops: sweep failed: {failure}\n")
    return 1 if failures else 0


def _on_sandbox(
    template: Template, event: dict[str, Any], overrides: dict[str, str], cluster: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    from eksops_dev.dispatch import Dispatcher
    from eksops_dev.invoke import _Tee
    from eksops_dev.sandbox import Sandbox
    from eksops_dev.seed import seed_cluster

    if cluster and cluster != SANDBOX_CLUSTER:
        raise UsageError(f"--cluster {cluster}: the sandbox has one cluster, {SANDBOX_CLUSTER!r} (use --aws for yours)")
    with Sandbox(template, parameters=overrides) as sandbox:
        for line in seed_cluster(sandbox, SANDBOX_CLUSTER):
            sys.stderr.write(f"sandbox: seeded {line}\n")
        log_path = sandbox.workdir / "functions.log"
        # the function logs go to stderr and the sandbox's functions.log, as with `eksops invoke`
        dispatcher = Dispatcher(sandbox, log=cast(TextIO, _Tee(open(log_path, "a", encoding="utf-8"), sys.stderr)))  # noqa: SIM115
        try:
            first = dispatcher.invoke(FUNCTION, event, "eksops sweep", retries=0)
            runs = [first, *dispatcher.drain()]
        finally:
            dispatcher.close()
    sweeps = [i for i in runs if i.function == FUNCTION]
    results = [i.result for i in sweeps if i.ok and isinstance(i.result, dict)]
    # A sweep that failed in part (a rule or a fix failed) reported first: its report is shown too.
    results += [s for i in sweeps if not i.ok and (s := getattr(i.extra.get("exception"), "summary", None))]
    failures = [f"{i.error_type}: {i.error}" for i in sweeps if not i.ok]
    return results, failures


def _on_aws(
    template: Template, event: dict[str, Any], overrides: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    from eksops_dev import invoke

    fn = invoke.resolve_function(template, FUNCTION)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = invoke._on_aws(template, fn, event, overrides)  # the same run as `eksops invoke --aws`
    payload = json.loads(out.getvalue())
    if code != 0 or not payload.get("ok"):
        partial = [r for r in payload.get("results") or [payload.get("result")] if isinstance(r, dict)]
        return partial, [f"{payload.get('errorType')}: {payload.get('error')}"]
    return list(payload.get("results") or [payload["result"]]), []
