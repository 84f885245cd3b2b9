"""The `tailsam` command. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys

from tailsam import __version__
from tailsam.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (exit status 2, like every user error)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_data(args: argparse.Namespace) -> int:
    from tailsam.data import describe_split

    summary = describe_split(
        args.dataset, root=args.root, profile=args.profile, ratio=args.ratio,
        seed=args.seed, download=not args.no_download,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['dataset']}  profile={args.profile}  ratio={args.ratio:g}  seed={args.seed}")
        print(f"training images: {summary['n_train']}  (test: {summary['n_test']})")
        for c, n in enumerate(summary["counts"]):
            print(f"  class {c:4d}: {n:6d}")
        print(f"indices sha256: {summary['indices_sha256']}")
    return 0


def _add_data_command(sub: argparse._SubParsersAction) -> None:
    from tailsam.data import DATASETS, PROFILES, default_data_root

    p = sub.add_parser(
        "data", help="build a long-tailed split and print its class counts",
        description="Build a long-tailed training split exactly as Cao et al. (2019) and print "
        "its class counts and the sha256 of the selected indices.",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS.names())
    p.add_argument("--root", default=None,
                   help=f"data folder (default: $TAILSAM_DATA_ROOT, else {default_data_root()})")
    p.add_argument("--profile", default="exp", choices=PROFILES)
    p.add_argument("--ratio", type=float, default=100.0, help="imbalance ratio n_max/n_min (>= 1)")
    p.add_argument("--seed", type=int, default=0, help="data seed of the selection protocol")
    p.add_argument("--no-download", action="store_true", help="never download missing files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_data)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tailsam",
        description="Long-tailed classification with Sharpness-Aware Minimization.",
    )
    parser.add_argument("--version", action="version", version=f"tailsam {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _add_data_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except UserError as err:
        print(f"tailsam: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tailsam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
