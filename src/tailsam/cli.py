"""The `tailsam` command. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from tailsam import __version__
from tailsam.errors import TailsamWarning, UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (exit status 2, like every user error)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_data(args: argparse.Namespace) -> int:
    from tailsam.data import describe_split

    summary = describe_split(
        args.dataset, root=args.data_root, profile=args.profile, ratio=args.ratio,
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
    from tailsam.data import PROFILES, default_data_root, memory_datasets

    p = sub.add_parser(
        "data", help="build a long-tailed split and print its class counts",
        description="Build a long-tailed training split exactly as Cao et al. (2019) and print "
        "its class counts and the sha256 of the selected indices.",
    )
    p.add_argument("--dataset", required=True, choices=memory_datasets())
    p.add_argument("--data-root", "--root", dest="data_root", default=None,   # --root: the old name
                   help=f"data folder (default: $TAILSAM_DATA_ROOT, else {default_data_root()})")
    p.add_argument("--profile", default="exp", choices=PROFILES)
    p.add_argument("--ratio", type=float, default=100.0, help="imbalance ratio n_max/n_min (>= 1)")
    p.add_argument("--seed", type=int, default=0, help="data seed of the selection protocol")
    p.add_argument("--no-download", action="store_true", help="never download missing files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_data)


def _cmd_recipes(args: argparse.Namespace) -> int:
    from tailsam.recipes import recipe_table

    print(recipe_table())
    return 0


def _add_recipes_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list the paper recipes with the paper's accuracy")
    p.set_defaults(handler=_cmd_recipes)


def _train_config(args: argparse.Namespace):
    """The run's config, and the milestones that moved with an overridden train.epochs (recipe_with_overrides)."""
    from tailsam.config import apply_overrides, load_config
    from tailsam.errors import ConfigError
    from tailsam.recipes import recipe_with_overrides

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe:   # `--config FILE key=value`: argparse took the first override
        recipe, overrides = None, [recipe, *overrides]
    if (recipe is None) == (args.config is None):
        raise ConfigError("give a recipe name (see `tailsam recipes`) or --config RUN/config.json, not both")
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    if args.config:   # a replayed config.json is taken as written: its milestones are already its own
        return apply_overrides(load_config(args.config), overrides), []
    return recipe_with_overrides(recipe, overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    from tailsam.train import train
    from tailsam.run.processes import processes_from_environment

    config, moved = _train_config(args)
    notes = [f"train.epochs={config.train.epochs}: the recipe's milestones follow ({'; '.join(moved)})"
             ] if moved else []
    final = train(config, args.out, verbose=not args.quiet, notes=notes)
    if not processes_from_environment().is_main:   # under torchrun, rank 0 reports
        return 0
    groups = "  ".join(f"{k} {v:.2f}" for k, v in final["group_accuracy"].items() if v is not None)
    print(f"final top-1 {final['top1']:.2f}%  ({groups})  -> {args.out}")
    print(f"the evidence on one page: tailsam report {args.out}")
    return 0


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a recipe into a run directory (resumes it if interrupted)",
        description="Train RECIPE (or replay --config) with dotted overrides, e.g. "
        "`tailsam train cifar10-ldam-drw-sam sam.rho=0.5 --out runs/x`. Running the same command "
        "again on the same --out resumes from its last checkpoint.",
    )
    p.add_argument("recipe", nargs="?", help="recipe name, optionally with :smoke (see `tailsam recipes`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=0.05")
    p.add_argument("--config", help="replay the config.json of an earlier run")
    p.add_argument("--out", required=True, help="run directory (created, or resumed when it holds a checkpoint)")
    p.add_argument("--data-root", help="data folder (same as data.root=...; default $TAILSAM_DATA_ROOT, else ./data)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> int:
    from tailsam.report import format_results
    from tailsam.run import evaluate_checkpoint

    result, config, data = evaluate_checkpoint(args.run, data_root=args.data_root, device=args.device)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_results({config.recipe or "model": result}, class_names=data.get("class_names")))
    return 0


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run or checkpoint on its test set, per class and per group")
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data-root", help="data folder, if it moved since training")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_eval)


def _cmd_hessian(args: argparse.Namespace) -> int:
    from tailsam.report import spectra_table, write_spectra
    from tailsam.run import analyze_checkpoint, check_results_folder, hessian_dir

    folder = args.out or hessian_dir(args.run)
    check_results_folder(folder, replace=args.force)
    result = analyze_checkpoint(args.run, classes=args.classes, split=args.split, loss=args.loss, steps=args.steps,
                                runs=args.runs, max_images=args.max_images, seed=args.seed, augment=args.augment,
                                data_root=args.data_root, device=args.device)
    paths = write_spectra(result, folder)
    if args.json:
        print(json.dumps({**result.to_dict(), "files": {name: str(path) for name, path in paths.items()}}))
    else:
        print(spectra_table(result))
        for name in ("densities", "ratio", "results"):
            print(f"{name}: {paths[name]}")
    return 0


def _add_hessian_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hessian", help="per-class Hessian spectra of a run: lambda_max, lambda_min, density, trace; plots",
        description="For each class, the Hessian of the loss over that class's images (model in eval mode), "
        "from one Lanczos run: lambda_max, lambda_min, lambda_min/lambda_max (negative at a saddle), the "
        "negative spectral mass, the trace and the spectral density. Writes RUN/hessian/results.json, "
        "densities.png and ratio_vs_count.png.",
    )
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--classes", type=int, nargs="+", metavar="C", help="class ids (default: every class)")
    p.add_argument("--split", default="train", choices=("train", "test"),
                   help="the run's long-tailed training images (default) or the test set")
    p.add_argument("--steps", "--iters", dest="steps", type=int, default=100,   # --iters: the old name
                   help="Lanczos steps per class, at least 2 (default: %(default)s)")
    p.add_argument("--runs", type=int, default=1, help="independent Lanczos starts averaged per class (default: 1)")
    p.add_argument("--max-images", type=int, metavar="N", help="at most N images per class, a seeded draw")
    p.add_argument("--loss", default="run", choices=("run", "ce"),
                   help="the run's own loss and class weights (default: the surface it trained on) or plain "
                   "cross-entropy on the logits (the paper's script's default; unscaled for a normed head)")
    p.add_argument("--augment", action="store_true", help="apply the training crop/flip once, drawn from --seed")
    p.add_argument("--seed", type=int, default=0, help="seeds the image draw, the augmentation and Lanczos starts")
    p.add_argument("--out", help="folder for results.json and the plots (default: RUN/hessian)")
    p.add_argument("--force", action="store_true", help="replace an earlier analysis in that folder")
    p.add_argument("--data-root", help="data folder, if it moved since training")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(handler=_cmd_hessian)


def _cmd_report(args: argparse.Namespace) -> int:
    from tailsam.report import write_report

    report = write_report([args.run, *args.runs], out=args.out)
    unfinished = report.unfinished_message()
    if unfinished:   # the page of what exists is written; the missing final.json is the mistake to fix
        raise UserError(unfinished)
    print(report.path)
    return 0


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML page of a run, of runs side by side, or of a sweep",
        description="Write one HTML page (no network needed: inline CSS and figures) from what the run "
        "directories hold: final-epoch top-1 and many/medium/few per run (mean ± std over a sweep's seeds) with "
        "the paper's figure, and a sentence saying which run the tail classes did better under; lambda_min / "
        "lambda_max by class size (after `tailsam hessian RUN`), per-class accuracy, learning curves with lr, "
        "rho and DRW, the spectral densities and those tracked during training (hessian.every), the confusion "
        "matrix, the config diff, versions, device, wall time and images/s. Sections without data are left out "
        "and listed. A run without final.json is reported as it stands and the command exits with status 2.",
    )
    p.add_argument("run", metavar="RUN_OR_SWEEP", help="a run directory or a sweep's --out folder")
    p.add_argument("runs", nargs="*", metavar="RUN", help="more run directories, side by side with the first")
    p.add_argument("--out", metavar="FILE.html",
                   help="the page to write (default: report.html in the first RUN_OR_SWEEP)")
    p.set_defaults(handler=_cmd_report)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tailsam.demo import run_demo

    print(run_demo(args.out))
    return 0


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="LDAM+DRW vs LDAM+DRW+SAM on the built-in long-tailed digits (no download)")
    p.add_argument("--out", default="tailsam-demo", help="folder for the two run directories (default: %(default)s)")
    p.set_defaults(handler=_cmd_demo)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tailsam.sweep import run_sweep, split_arguments

    recipes, seeds, overrides = split_arguments(args.items)
    result = run_sweep(recipes, seeds, overrides, args.out, parallel=args.parallel, data_root=args.data_root,
                       echo=lambda line: print(line, flush=True))
    print(f"\n{result.markdown}\n\ntable: {result.markdown_path}  per-seed values: {result.json_path}")
    if result.report_path is not None:
        print(f"report: {result.report_path}")
    if result.unfinished:
        print(f"tailsam: interrupted; {len(result.unfinished)} run(s) unfinished: run the same command to resume",
              file=sys.stderr)
        return 130
    if result.failed:
        print(f"tailsam: {len(result.failed)} of {len(result.outcomes)} runs failed; their logs are listed above",
              file=sys.stderr)
        return 1
    return 0


def _add_sweep_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="train recipes x seeds, K at a time; table of mean and std over seeds",
        description="Train every RECIPE with every seed (train.seed; the data seed stays the recipe's) into "
        "OUT/<recipe>/seed<S>, each run its own `tailsam train` process logging to train.log there, K at a "
        "time on one machine (they can share one GPU). Then the final-epoch top-1, many/medium/few and "
        "head/mid/tail per recipe, mean and sample std (ddof=1) over seeds, in OUT/summary.md and "
        "OUT/summary.json. Every config is checked before anything starts. Running the same command again "
        "reuses finished runs and resumes interrupted ones. Exit status: 0, 1 if a run failed (the others "
        "go on), 2 for a mistake in the command, 130 when interrupted.",
    )
    p.add_argument("items", nargs="+", metavar="RECIPE | seeds=S,S,... | key=value",
                   help="recipe names (optionally :smoke), seeds=0,1,2 (default: seeds=0), config overrides "
                   "applied to every run")
    p.add_argument("--out", required=True, help="folder of the sweep's run directories and summary")
    p.add_argument("--parallel", type=int, default=1, metavar="K",
                   help="runs at once (default: %(default)s); each gets cores // K CPU threads")
    p.add_argument("--data-root", help="data folder (same as data.root=...; default $TAILSAM_DATA_ROOT, else ./data)")
    p.set_defaults(handler=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tailsam",
        description="Long-tailed classification with Sharpness-Aware Minimization.",
    )
    parser.add_argument("--version", action="version", version=f"tailsam {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _add_data_command(sub)
    _add_recipes_command(sub)
    _add_train_command(sub)
    _add_sweep_command(sub)
    _add_eval_command(sub)
    _add_hessian_command(sub)
    _add_report_command(sub)
    _add_demo_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command: exit status 0, 1 (a sweep's run failed), 2 (a mistake to fix), 3 (diverged), 130 (Ctrl-C)."""
    try:   # a Ctrl-C while torch is still importing ends in one line too
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(argv)
    except KeyboardInterrupt:
        print("tailsam: interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str] | None) -> int:
    from tailsam.train.distributed import DistributedFailure
    from tailsam.train.loop import RunInterrupted, TrainingDiverged

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except UserError as err:
        print(f"tailsam: error: {err}", file=sys.stderr)
        return 2
    except (RunInterrupted, TrainingDiverged, DistributedFailure) as stop:
        print(f"tailsam: {stop}", file=sys.stderr)
        return getattr(stop, "exit_code", 3)


_default_show_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """tailsam's own warnings in one line; any other as Python shows it."""
    if issubclass(category, TailsamWarning):
        print(f"tailsam: warning: {message}", file=sys.stderr, flush=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


if __name__ == "__main__":
    raise SystemExit(main())
