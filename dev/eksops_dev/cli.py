"""The `eksops` command: `demo`, `invoke`, `validate`, `sweep`, `status`, `uninstall` and `simulate`, with one
error handler for all of them.

A mistake of the user's (a wrong name, a missing file, a bad value) prints one line, ``eksops: error: <what and how
to fix it>``, on stderr and exits 2, as argparse does; anything else prints one line too and exits 1. ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from eksops_dev.template import Template

USAGE_ERROR = 2  # argparse's exit code for a command line it refuses
FAILURE = 1


class UsageError(Exception):
    """A mistake the user can fix (name, file, value, credentials, folder): one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals on one line in the same form as every other eksops error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"eksops: error: {message} (see `{self.prog} --help`)\n")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest known names, or ''."""
    options = list(known)
    folded = {k.lower().replace("-", "_"): k for k in options}
    near = [folded[name.lower().replace("-", "_")]] if name.lower().replace("-", "_") in folded else []
    near += [n for n in difflib.get_close_matches(name, options, n=3, cutoff=0.6) if n not in near]
    return f" (did you mean {' or '.join(near[:3])}?)" if near else ""


def find_template() -> Template:
    """The project's template.yaml, found from the working directory up."""
    from eksops_dev.template import Template

    try:
        return Template.find()
    except FileNotFoundError as exc:
        raise UsageError(f"{exc}: run eksops inside the eksops project (the folder with template.yaml)") from None


def _parser() -> argparse.ArgumentParser:
    from eksops import __version__
    from eksops_dev import simulate

    parser = _Parser(prog="eksops", description="EKS operations automation (AWS SAM app)")
    parser.add_argument("--version", action="version", version=f"eksops {__version__}")
    debug = "show the Python traceback of an error"
    parser.add_argument("--debug", action="store_true", help=debug)
    # --debug also after the command; SUPPRESS keeps a subcommand from resetting the global one.
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("demo", parents=[common], help="run the main job end to end on the local sandbox (no AWS account)")

    invoke = sub.add_parser(
        "invoke",
        parents=[common],
        help="run one handler on an event, like `sam local invoke`",
        description="Run one handler on an event, on the local sandbox or (--aws) with your AWS account. The JSON "
        "result is printed on stdout; log lines on stderr. A function variable is set, first match wins, by "
        "--param (through the template parameter it comes from), then by your environment, then by the template "
        "default; in the sandbox, variables naming the stack's own resources stay the sandbox's.",
    )
    invoke.add_argument("function", help="the folder under functions/ (log_retention) or the logical ID")
    invoke.add_argument(
        "--event", required=True, metavar="FILE", help="event JSON file (events/<function>/), - for stdin"
    )
    invoke.add_argument("--aws", action="store_true", help="use your own AWS account (credentials, region)")
    invoke.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    invoke.add_argument(
        "--no-seed",
        action="store_true",
        help="start the sandbox empty (by default it is seeded with what the event names, and a Slack webhook)",
    )
    invoke.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="set a template parameter (repeatable)"
    )

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check parameter values before a deploy",
        description="Check parameter values as CloudFormation (each parameter's constraints) and each function's "
        "start-up (its configuration code) would, and print every problem with its fix. Without --params or "
        "--config-env, the template defaults are checked.",
    )
    source = validate.add_mutually_exclusive_group()
    source.add_argument(
        "--params",
        metavar="FILE",
        help='JSON {"Name": "value"}, or parameter_overrides as in samconfig.toml (Name=value Name2="a b")',
    )
    source.add_argument("--config-env", metavar="ENV", help="the parameter_overrides of a samconfig.toml environment")
    validate.add_argument(
        "--config-file", metavar="FILE", help="samconfig file (default: samconfig.toml of the project)"
    )
    validate.add_argument("--region", help="deploy region (default: the samconfig environment's, else AWS_REGION)")

    sweep = sub.add_parser(
        "sweep",
        parents=[common],
        help="the compliance report of the sandbox cluster or (--aws) of yours",
        description="Run the compliance_sweep function and print its report: on the sandbox (a seeded cluster) by "
        "default, on your account and region with --aws. Read-only unless --remediate names rules to fix. The "
        "report goes to stdout, logs to stderr.",
    )
    sweep.add_argument("--cluster", metavar="NAME", help="sweep this cluster only (default: every cluster)")
    sweep.add_argument("--format", choices=("table", "json", "sarif"), default="table", help="report format")
    sweep.add_argument("--aws", action="store_true", help="use your own AWS account (credentials, region)")
    sweep.add_argument("--dry-run", action="store_true", help="with --remediate: say what would be fixed, fix nothing")
    sweep.add_argument(
        "--remediate", action="append", metavar="RULE_ID", help="fix what this rule finds (repeatable; default none)"
    )
    sweep.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="set a template parameter (repeatable)"
    )

    status = sub.add_parser(
        "status",
        parents=[common],
        help="what eksops manages, per capability: counts and drift",
        description="Per capability, what eksops manages and where it differs from what its rules want: on the "
        "sandbox (a seeded cluster) by default, on your account and region with --aws (read-only). The table or "
        "JSON goes to stdout, notes to stderr.",
    )
    status.add_argument("--aws", action="store_true", help="use your own AWS account (credentials, region)")
    status.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    status.add_argument(
        "--stack-name", default="eksops", help="with --aws: the deployed stack whose parameters apply (default eksops)"
    )

    uninstall = sub.add_parser(
        "uninstall",
        parents=[common],
        help="remove what eksops created at run time (before `sam delete`)",
        description="Remove everything eksops' functions created while running that carries eksops' ownership "
        "marks (alarms, dashboards, metric filters, saved queries, Kubernetes objects and labels, tags), and list "
        "what is left in place and why. On the sandbox by default (seeded and run first); --aws on your account and "
        "region, then run `sam delete` (docs/uninstall.md). The JSON result goes to stdout.",
    )
    uninstall.add_argument("--aws", action="store_true", help="use your own AWS account (credentials, region)")
    uninstall.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    uninstall.add_argument("--yes", action="store_true", help="with --aws: remove without asking")

    simulate.add_arguments(
        sub.add_parser("simulate", parents=[common], help="compare node scaling policies on a demand trace")
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "simulate":
        from eksops_dev import simulate

        return simulate.run(args)
    template = find_template()
    if args.command == "demo":
        from eksops_dev import demo

        return demo.run(root=template.root)
    if args.command == "validate":
        from eksops_dev import validate

        return validate.run(
            template,
            params_file=args.params,
            config_env=args.config_env,
            config_file=args.config_file,
            region=args.region,
        )
    if args.command == "sweep":
        from eksops_dev import sweep

        return sweep.run(
            template,
            cluster=args.cluster,
            fmt=args.format,
            aws=args.aws,
            dry_run=args.dry_run,
            remediate=args.remediate,
            params=args.param,
        )
    if args.command == "status":
        from eksops_dev import status

        return status.run(template, aws=args.aws, fmt=args.format, stack_name=args.stack_name)
    if args.command == "uninstall":
        from eksops_dev import uninstall

        return uninstall.run(template, aws=args.aws, dry_run=args.dry_run, yes=args.yes)
    from eksops_dev import invoke

    return invoke.run(
        args.function, args.event, aws=args.aws, dry_run=args.dry_run, params=args.param, seed=not args.no_seed
    )


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _one_line(text: object, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """The entry point: returns the exit code (0 done, 1 failed, 2 a mistake in the command or its inputs)."""
    from eksops.errors import ConfigError

    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse refusing the command line
        return done.code if isinstance(done.code, int) else USAGE_ERROR
    debug = bool(getattr(args, "debug", False))
    try:
        return _run(args)
    except (UsageError, ConfigError) as exc:
        if debug:
            traceback.print_exc()
        prefix = "configuration: " if isinstance(exc, ConfigError) else ""
        _say(f"eksops: error: {prefix}{_one_line(exc, limit=2000)}")
        return USAGE_ERROR
    except KeyboardInterrupt:
        _say("eksops: interrupted")
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        _say(f"eksops: error: unexpected {type(exc).__name__}: {_one_line(exc)}{hint}")
        return FAILURE


if __name__ == "__main__":
    sys.exit(main())
