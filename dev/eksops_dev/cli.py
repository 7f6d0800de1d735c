"""The `eksops` command: `eksops demo`, `eksops invoke FUNCTION --event FILE [--aws] [--dry-run]`, `eksops simulate`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from eksops import __version__

    parser = argparse.ArgumentParser(prog="eksops", description="EKS operations automation (AWS SAM app)")
    parser.add_argument("--version", action="version", version=f"eksops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the main job end to end on the local sandbox (no AWS account)")
    invoke = sub.add_parser("invoke", help="run one handler on an event, like `sam local invoke`")
    invoke.add_argument("function", help="function name, the folder under functions/ (e.g. log_retention)")
    invoke.add_argument("--event", required=True, help="event JSON file (see events/<function>/)")
    invoke.add_argument("--aws", action="store_true", help="use your own AWS account (credentials, region)")
    invoke.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    invoke.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a template parameter (repeatable)"
    )
    from eksops_dev import simulate

    simulate.add_arguments(sub.add_parser("simulate", help="compare node scaling policies on a demand trace"))
    args = parser.parse_args(argv)

    if args.command == "simulate":
        return simulate.run(args)
    if args.command == "demo":
        from eksops_dev import demo

        return demo.run()
    from eksops_dev import invoke as invoke_mod

    return invoke_mod.run(args.function, args.event, aws=args.aws, dry_run=args.dry_run, params=args.param)


if __name__ == "__main__":
    sys.exit(main())
