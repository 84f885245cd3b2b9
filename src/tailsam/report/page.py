"""`write_report`: the evidence of a run, several runs side by side, or a sweep, on one self-contained page.

    report = write_report(["runs/sgd", "runs/sam"])          # -> runs/sgd/report.html
    report = write_report(["runs/sweep"], out="sweep.html")  # one column per recipe, mean ± std over seeds

The page is rendered by Jinja2 from templates/report.html (package data),
with its CSS inline and every figure an inline SVG, so it opens from a file
with no network and travels as one file. It is written atomically. What the
runs do not hold is left out and listed at the end with the command that
would produce it; a run without final.json is shown at its last evaluated
epoch, and `Report.unfinished` names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tailsam import __version__
from tailsam.errors import UserError
from tailsam.report import curvature, details, figures
from tailsam.report.headline import METRICS, headline, tail_group, verdict
from tailsam.report.sources import Entry, RunRecord, collect
from tailsam.run.directory import atomic_write

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Section:
    """A figure of the page with its heading and what to read in it."""

    id: str
    title: str
    caption: str
    svg: str


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: the page, the ids of its <section>s in page order, and the runs without
    final.json."""

    path: Path
    sections: list[str]
    unfinished: list[RunRecord]

    def unfinished_message(self) -> str | None:
        """One line naming the runs without final.json, or None when every run finished."""
        if not self.unfinished:
            return None
        first = self.unfinished[0]
        where = (f"{first.root} has no final.json (unfinished: "
                 + (f"last evaluated epoch {first.evaluated[-1]['epoch']} of {first.config.train.epochs})"
                    if first.evaluated else "no evaluated epoch yet)"))
        more = f" and {len(self.unfinished) - 1} more run(s) likewise" if len(self.unfinished) > 1 else ""
        return (f"{where}{more}; {self.path} shows what exists: finish the run (the same `tailsam train` command "
                "resumes it), then report again")


def write_report(paths: Sequence[str | Path], *, out: str | Path | None = None,
                 labels: Sequence[str] | None = None) -> Report:
    """Read the runs or sweep at `paths` and write the page to `out` (default: the first path's report.html).

    `labels` name the entries (one per run given, or per recipe of a sweep).
    A UserError, before anything is written, for input that is not a run or
    sweep, runs of different datasets, no evaluated epoch at all, or an `out`
    that is a folder or not an .html file.
    """
    entries = collect(paths, labels)
    out = Path(paths[0]) / REPORT_FILE if out is None else Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the file to write, e.g. {out / REPORT_FILE}")
    if out.suffix.lower() not in (".html", ".htm"):   # never replace a run's own files (final.json, ...)
        raise UserError(f"--out {out} is not an .html file; give the page's name, e.g. {out.with_suffix('.html')}")
    if not any(entry.reported for entry in entries):
        run = entries[0].runs[0]
        raise UserError(f"{run.root} has no evaluated epoch yet (metrics.jsonl holds no test result); nothing to "
                        "report: let the run train past its first evaluation, then report again")
    context = _context(entries)
    html = _template().render(**context)
    atomic_write(out, lambda f: f.write(html.encode()))
    sections = ["headline", *(s.id for s in context["sections"]), "config",
                *(["environment"] if "environment" in context["tables"] else []),
                *(["absent"] if context["absent"] else [])]
    return Report(out, sections, [run for entry in entries for run in entry.runs if not run.finished])


def _context(entries: list[Entry]) -> dict:
    rows = headline(entries)
    first = next(run for entry in entries for run in entry.reported)
    config, group = first.config, tail_group(rows)
    class_names = _class_names(first)
    sections = [section for section in _sections(entries, class_names) if section is not None]
    ratios = curvature.ratio_summary(entries, group)
    tables = {"per-class-table": details.class_table(entries, class_names),
              "config-diff": details.config_diff(entries), "environment": details.environment(entries)}
    return {
        "title": " vs ".join(entry.label for entry in entries),
        "dataset": _dataset_line(first),
        "entries": entries,
        "problems": _problems(entries),
        "rows": rows,
        "metrics": METRICS,
        "verdict": verdict(rows, config),
        "thresholds": (config.eval.few_threshold, config.eval.many_threshold),
        "sections": sections,
        "group": group,
        "ratios": ratios,
        "ratio_settings": {summary.settings for summary in ratios},
        "tables": {name: table for name, table in tables.items() if table},
        "config_json": json.dumps(first.config.to_dict(), indent=1),
        "config_of": first.root.resolve(),
        "sources": [str(run.root.resolve()) for entry in entries for run in entry.runs],
        "absent": _absent(entries, sections, tables),
        "environment_words": details.ENVIRONMENT,
        "version": __version__,
    }


def _sections(entries: list[Entry], class_names: list[str] | None) -> list[Section | None]:
    """The figures in page order; None where no run holds the data."""
    ratio = curvature.ratio_vs_count(entries)
    per_class = figures.per_class_accuracy(entries)
    curves = figures.learning_curves(entries)
    densities = curvature.densities(entries)
    tracked = curvature.tracked(entries)
    confusion = figures.confusion_matrices(entries, class_names)
    return [
        ratio and Section(
            "ratio", "Negative curvature by class size",
            "lambda_min / lambda_max of the per-class Hessian (the loss over one class's training images) against "
            "the class's training images, one series per run: near 0 is a minimum, below 0 a saddle, and the "
            "further below, the stronger the negative curvature next to the sharpest direction.",
            ratio),
        per_class and Section(
            "per-class", "Per-class accuracy by class size",
            "Final-epoch test accuracy of each class against its training images (log scale); the dotted lines "
            "separate the few, medium and many groups. An entry of several seeds shows their mean and the sample "
            "standard deviation." + (" Each dot is a class, the line their mean over classes of similar size."
                                     if _classes(entries) > figures.MANY_CLASSES else ""), per_class),
        curves and Section(
            "learning-curves", "Learning curves",
            "Test accuracy at each evaluated epoch: overall and per class group. Below: the learning rate (solid, "
            "left axis) and SAM's rho (dashed, right axis) of every epoch; the dashed vertical line is where DRW's "
            "class-balanced weights switch on.", curves),
        densities and Section(
            "densities", "Per-class Hessian spectral densities",
            "Each class's spectral density (stochastic Lanczos quadrature, log scale), coloured by class size: "
            "left against the eigenvalue, a triangle marking each class's lambda_max; right against eigenvalue / "
            "lambda_max of the class, where a saddle shows as mass left of 0.", densities),
        tracked and Section(
            "tracked", "Curvature during training",
            "lambda_min / lambda_max of the classes analysed while training (hessian.every), at each analysed "
            "epoch: whether the tail classes leave the saddle as training goes on.", tracked),
        confusion and Section(
            "confusion", "Confusion matrix",
            "Final epoch, rows normalised: the fraction of each true class's test images given each predicted "
            "class, classes ordered by training images (largest first); several seeds are summed first.",
            confusion),
    ]


def _classes(entries: list[Entry]) -> int:
    return max(len(run.counts or []) for entry in entries for run in entry.runs)


def _problems(entries: list[Entry]) -> list[str]:
    """What a reader must know before reading the numbers: runs that did not finish."""
    problems = []
    for entry in entries:
        for run in entry.runs:
            if run.finished:
                continue
            label = entry.run_label(run)
            if not run.evaluated:
                problems.append(f"{label} ({run.root}): no final.json and no evaluated epoch; it is left out.")
            elif entry.reported and run not in entry.reported:
                problems.append(f"{label} ({run.root}): no final.json (last evaluated epoch "
                                f"{run.evaluated[-1]['epoch']} of {run.config.train.epochs}); left out of the "
                                "headline, which shows the finished seeds.")
            else:
                problems.append(f"{label} ({run.root}): no final.json; its numbers are from its last evaluated "
                                f"epoch, {run.evaluated[-1]['epoch']} of {run.config.train.epochs}, not the final one.")
    return problems


def _absent(entries: list[Entry], sections: list[Section], tables: dict) -> list[str]:
    """What the page leaves out for want of data, and how to get it."""
    shown = {section.id for section in sections}
    runs = [run for entry in entries for run in entry.runs]
    absent = []
    if "ratio" not in shown:
        absent.append("The per-class Hessian of the final model: no run holds hessian/results.json; compute it "
                      "with `tailsam hessian RUN`.")
    if "tracked" not in shown:
        absent.append("Curvature during training: no run analysed its spectra while training; train with "
                      "hessian.every=N (a multiple of train.eval_every).")
    if "learning-curves" not in shown:
        absent.append("Learning curves: no run was evaluated at two epochs or more; train with a smaller "
                      "train.eval_every.")
    if "confusion" not in shown:
        absent.append("Confusion matrix: metrics.jsonl holds none for a final epoch (runs unfinished, or written "
                      "by an older tailsam).")
    if not tables["environment"]:
        absent.append("Environment and speed: no run holds env.json or final.json.")
    missing_hessian = [str(run.root) for run in runs if run.spectra is None] if "ratio" in shown else []
    if missing_hessian:
        absent.append(f"The per-class Hessian of {', '.join(missing_hessian)}: no hessian/results.json there; "
                      "compute it with `tailsam hessian RUN`.")
    return absent


def _dataset_line(run: RunRecord) -> str:
    """E.g. "digits, exp profile, imbalance ratio 20: 10 classes, 405 training images (120 to 6), 500 test images"."""
    data, counts = run.data or {}, run.counts or []
    line = run.dataset
    if "profile" in data and "ratio" in data:
        line += f", {data['profile']} profile, imbalance ratio {data['ratio']:g}"
    if counts:
        line += f": {len(counts)} classes, {sum(counts):,} training images ({max(counts):,} to {min(counts):,})"
    if "n_test" in data:
        line += f", {data['n_test']:,} test images"
    return line


def _class_names(run: RunRecord) -> list[str] | None:
    """data.json's class names, unless they only repeat the class ids."""
    names = (run.data or {}).get("class_names")
    if not names or names == [str(i) for i in range(len(names))]:
        return None
    return list(names)


def _stat(stat) -> str:
    """A Stat as markup: the mean, then "± std" set smaller (a dash for a group without test images)."""
    from markupsafe import Markup

    if stat is None:
        return "–"
    return Markup(f"{stat.mean:.2f}") + (Markup("") if stat.std is None else
                                          Markup(f' <span class="std">± {stat.std:.2f}</span>'))


def _template():
    """The page's Jinja2 template, from the package (installed as package data)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("tailsam.report", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["stat"] = _stat
    env.filters["number"] = lambda value: "–" if value is None else f"{value:.2f}"
    env.filters["markup"] = Markup   # figures: SVG made by matplotlib (tailsam.report.drawing), not user text
    return env.get_template("report.html")
