"""Several recipes x several seeds on one machine, K runs at a time, and the table of mean and std.

    result = run_sweep(["digits-ldam-drw", "digits-ldam-drw-sam"], seeds=[0, 1, 2], overrides=[],
                       out="runs/sweep", parallel=2)
    print(result.markdown)            # also OUT/summary.md; OUT/summary.json holds every per-seed value
    result.report_path                # OUT/report.html: the runs side by side on one page (tailsam.report)

Each run is an ordinary run directory, OUT/<recipe>/seed<S>, trained by its own
`tailsam train` process with its output in OUT/<recipe>/seed<S>/train.log.
The same call again reuses finished runs and resumes interrupted ones. The
command is `tailsam sweep RECIPE ... seeds=0,1,2 key=value ... --out DIR`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tailsam.errors import ConfigError, TailsamWarning
from tailsam.report import write_report
from tailsam.run.directory import RunDir
from tailsam.sweep.launch import FAILED, INTERRUPTED, NOT_STARTED, Outcome, execute, threads_per_run
from tailsam.sweep.plan import PlannedRun, parse_seeds, plan_sweep, split_arguments
from tailsam.sweep.summary import summarize, summary_markdown, write_summary

__all__ = ["Outcome", "PlannedRun", "SweepResult", "parse_seeds", "plan_sweep", "run_sweep", "split_arguments",
           "summarize", "summary_markdown"]


@dataclass
class SweepResult:
    """What a sweep did: every run's outcome, the summary (as in summary.json) and its markdown table."""

    outcomes: list[Outcome]
    summary: dict
    markdown: str
    json_path: Path
    markdown_path: Path
    report_path: Path | None    # None when no run has an evaluated epoch, or the page could not be written

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def unfinished(self) -> list[Outcome]:
        """Runs stopped by a signal or never started because of one: the same sweep again resumes them."""
        return [o for o in self.outcomes if o.status in (INTERRUPTED, NOT_STARTED)]


def run_sweep(recipes: list[str], seeds: list[int], overrides: list[str], out: str | Path, *, parallel: int = 1,
              data_root: str | None = None, echo: Callable[[str], None] = print) -> SweepResult:
    """Plan (validating every config first), run and summarize a sweep; `echo` gets the progress lines.

    Raises ConfigError/UserError before starting anything when an input is
    wrong. A failed run does not stop the others: it is in `result.failed`.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, got {parallel}")
    runs = plan_sweep(recipes, seeds, overrides, out, data_root=data_root)
    to_train = sum(not run.finished for run in runs)
    echo(f"sweep: {len(runs)} runs into {out}, {len(runs) - to_train} done before"
         + (f", {to_train} to train {min(parallel, to_train)} at a time with {threads_per_run(parallel)} "
            "CPU thread(s) each" if to_train else ""))
    done = 0

    def progress(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        echo(f"[{done}/{len(runs)}] {_progress_line(outcome)}")

    outcomes = execute(runs, parallel=parallel, on_done=progress)
    summary = {"out": str(out), "seeds": list(seeds), "overrides": list(overrides),
               "parallel": parallel, **summarize(outcomes)}
    markdown = summary_markdown(summary)
    json_path, markdown_path = write_summary(summary, markdown, out)
    return SweepResult(outcomes, summary, markdown, json_path, markdown_path, _report(outcomes, out))


def _report(outcomes: list[Outcome], out: str | Path) -> Path | None:
    """OUT/report.html of whatever the runs hold; a page that cannot be made is a warning, not the sweep's failure."""
    if not any(RunDir(outcome.run.root).metrics.is_file() for outcome in outcomes):
        return None   # nothing was evaluated yet (every run failed at start, or none started)
    try:
        return write_report([out]).path
    except Exception as err:   # e.g. recipes of different datasets; the runs and summary are kept either way
        warnings.warn(TailsamWarning(f"no report of the sweep: {err}"), stacklevel=2)
        return None


def _progress_line(outcome: Outcome) -> str:
    run = outcome.run
    if outcome.ok:
        final = outcome.final
        groups = "  ".join(f"{k} {v:.2f}" for k, v in final["group_accuracy"].items() if v is not None)
        took = "finished earlier" if outcome.wall_s is None else f"{outcome.wall_s:.1f} s"
        return f"{run.label}: top-1 {final['top1']:.2f}%  ({groups})  {took}  {run.root}"
    if outcome.status == FAILED:
        return f"{run.label}: FAILED (exit {outcome.exit_code}), log {run.log}" + (
            f": {outcome.error}" if outcome.error else "")
    return f"{run.label}: {outcome.status}" + ("" if outcome.status == NOT_STARTED else f", log {run.log}")
