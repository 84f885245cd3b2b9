"""`tailsam report`: the page of a run, of runs side by side and of a sweep, made from tiny real digits runs.

One module fixture trains 2 recipes x 2 seeds for 6 epochs (evaluated every epoch, spectra tracked every
2nd, DRW from the 5th), analyses the seed-0 runs' Hessians, and writes the two-run and the sweep pages;
every test reads those, or copies of the runs it changes. Set TAILSAM_REPORT_SHOTS=DIR to keep the
browser test's screenshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from browser import find_chromium, render
from html_page import parse
from tailsam.cli import main
from tailsam.config import apply_overrides
from tailsam.recipes import get_recipe, recipe_with_overrides
from tailsam.report import write_report, write_spectra
from tailsam.report.headline import Row, Stat, paper_top1, verdict
from tailsam.run import analyze_checkpoint, hessian_dir
from tailsam.train import train

RECIPES = ("digits-ldam-drw", "digits-ldam-drw-sam")
LABELS = ("LDAM+DRW", "LDAM+DRW+SAM")   # as the demo names its two runs
SEEDS = (0, 1)
TINY = ["train.epochs=6", "train.eval_every=1", "hessian.every=2", "hessian.max_images=16", "hessian.steps=8"]
GROUPS = ("many", "medium", "few", "head", "mid", "tail")
FIGURES = ("ratio", "per-class", "learning-curves", "densities", "tracked", "confusion")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    sweep = root / "sweep"
    for seed in SEEDS:
        for recipe in RECIPES:
            config, _ = recipe_with_overrides(recipe, [*TINY, f"train.seed={seed}"])
            train(config, sweep / recipe / f"seed{seed}", verbose=False)
    pair = [sweep / recipe / "seed0" for recipe in RECIPES]
    for run in pair:   # seed 1 keeps no Hessian analysis: a run without one
        write_spectra(analyze_checkpoint(run, steps=10, max_images=16, device="cpu"), hessian_dir(run))
    return SimpleNamespace(root=root, sweep=sweep, pair=pair,
                           pair_report=write_report(pair, out=root / "pair.html", labels=list(LABELS)),
                           sweep_report=write_report([sweep]))


def final(run: Path) -> dict:
    return json.loads((run / "final.json").read_text())


def cell(page, entry: str, metric: str) -> str:
    return page.text(page.one("td", {"data-entry": entry, "data-metric": metric}))


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def report_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["report", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_runs_page_holds_final_json_numbers_and_every_section_with_data(made, capsys):
    run = made.pair[0]
    code, out, err = report_cli(capsys, run)
    assert (code, err) == (0, "")
    assert out.strip() == str(run / "report.html")
    page = parse((run / "report.html").read_text())
    numbers = final(run)
    assert cell(page, "digits-ldam-drw", "top1") == f"{numbers['top1']:.2f}"
    for group in GROUPS:
        assert cell(page, "digits-ldam-drw", group) == f"{numbers['group_accuracy'][group]:.2f}"
    best = numbers["best_epoch_on_test_set"]
    assert cell(page, "digits-ldam-drw", "best") == f"{best['top1']:.2f} epoch {best['epoch']}"
    assert "test-selected" in page.text(page.one("th", {"class": "selected"}))
    for c, accuracy in enumerate(numbers["per_class"]):
        assert page.text(page.one("td", {"data-entry": "digits-ldam-drw", "data-class": str(c)})) == f"{accuracy:.2f}"
    sections = [n.attrs["id"] for n in page.find("section")]
    assert sections == ["headline", *FIGURES, "config", "environment"]   # one run: nothing absent, no diff
    for name in FIGURES:   # each figure section embeds its figure
        assert len([n for n in page.find("svg") if page.section_of(n) == name]) == 1
    assert not page.find(attrs={"id": "config-diff"})
    assert "few group (4 classes, under 20 training images)" in page.text(page.one(attrs={"id": "verdict"}))


def test_two_runs_side_by_side_say_which_did_better_on_the_tail_before_any_figure(made):
    report, page = made.pair_report, parse(made.pair_report.path.read_text())
    assert report.sections == [n.attrs["id"] for n in page.find("section")]
    assert report.sections == ["headline", *FIGURES, "config", "environment"]
    few = {label: final(run)["group_accuracy"]["few"] for label, run in zip(LABELS, made.pair)}
    verdict = page.text(page.one(attrs={"id": "verdict"}))
    better, other = sorted(LABELS, key=few.get, reverse=True)
    if few[better] - few[other] <= 1:
        assert verdict.startswith("On the few group") and "a tie within 1 point" in verdict
    else:
        assert verdict.startswith(f"{better} has the better accuracy on the few group")
        assert f"against {few[other]:.2f}% for {other} (+{few[better] - few[other]:.2f} points)" in verdict
    order = page.nodes
    verdict_at, first_svg_at = order.index(page.one(attrs={"id": "verdict"})), order.index(page.find("svg")[0])
    assert verdict_at < first_svg_at and page.section_of(page.find("svg")[0]) == "ratio"
    rows = [page.within(row, "td") for row in page.within(page.one("table", {"id": "config-diff"}), "tr")]
    diff = {page.text(cells[0]): [page.text(c) for c in cells[1:]] for cells in rows if cells}
    assert diff["sam.kind"] == ["none", "sam"] and "train.seed" not in diff
    for label, run in zip(LABELS, made.pair):
        assert cell(page, label, "top1") == f"{final(run)['top1']:.2f}"
        # lambda_min / lambda_max over the few classes, as results.json holds them.
        results = json.loads((run / "hessian" / "results.json").read_text())
        few_classes = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["test"]["groups"]["few"]
        ratios = [c["eigenvalue_ratio"] for c in results["classes"] if c["class_id"] in few_classes]
        assert cell(page, label, "group-ratio").startswith(f"{statistics.mean(ratios):.3g} (classes")
    assert page.find("section", {"id": "absent"}) == []   # both runs hold every kind of data


def test_a_sweeps_page_shows_mean_and_sample_std_over_seeds(made):
    page = parse(made.sweep_report.path.read_text())
    assert made.sweep_report.path == made.sweep / "report.html"
    distinct = False
    for recipe in RECIPES:
        finals = [final(made.sweep / recipe / f"seed{s}") for s in SEEDS]
        for metric in ("top1", *GROUPS):
            values = [f["top1"] if metric == "top1" else f["group_accuracy"][metric] for f in finals]
            assert cell(page, recipe, metric) == f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
            distinct |= len(set(values)) > 1
        assert page.text(page.one("small", {"data-entry": recipe, "data-metric": "seeds"})) == "seeds 0, 1"
    assert distinct, "every seed gave the same accuracies: the std check proves nothing"
    # Seed 1 holds no Hessian analysis: the page says so, and draws the seed-0 runs.
    absent = page.text(page.one("section", {"id": "absent"}))
    assert str(made.sweep / "digits-ldam-drw" / "seed1") in absent and "tailsam hessian" in absent
    assert [n.attrs["id"] for n in page.find("section")][:len(FIGURES) + 1] == ["headline", *FIGURES]


@pytest.mark.parametrize("which", ["pair_report", "sweep_report"])
def test_the_page_is_well_formed_and_self_contained(made, which):
    html = getattr(made, which).path.read_text()
    page = parse(html)   # raises on an element closed out of order or never closed
    assert page.doctype.lower() == "doctype html"
    assert not page.find("script") and not page.find("link") and not page.find("img")
    for node in page.nodes:
        for name in ("src", "href", "xlink:href"):
            value = node.attrs.get(name)
            # Links within the page, and images embedded in it (matplotlib's colour bars and matrices).
            assert value is None or value.startswith(("#", "data:image/png;base64,")), f"<{node.tag} {name}=...>"
    assert not re.search(r"https?://|@import|url\((?!#)", html)
    ids = [n.attrs["id"] for n in page.nodes if "id" in n.attrs]
    assert len(ids) == len(set(ids)), "an id is used twice (two figures' SVG ids collide)"


def test_sections_without_data_are_left_out_and_listed(made, tmp_path):
    run = copy_run(made.sweep / "digits-ldam-drw" / "seed1", tmp_path / "old")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:   # as an older tailsam wrote it: no confusion matrix, no tracked spectra
        record.pop("hessian", None)
        record["test"].pop("confusion", None)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "env.json").unlink()
    page = parse(write_report([run]).path.read_text())
    assert [n.attrs["id"] for n in page.find("section")] == ["headline", "per-class", "learning-curves", "config",
                                                            "environment", "absent"]
    absent = page.text(page.one("section", {"id": "absent"}))
    assert "tailsam hessian RUN" in absent and "hessian.every=N" in absent and "Confusion matrix" in absent
    assert cell(page, "digits-ldam-drw", "top1") == f"{final(run)['top1']:.2f}"


def test_files_of_before_the_renames_still_show_wall_time_and_lanczos_steps(made, tmp_path):
    run = copy_run(made.pair[0], tmp_path / "old")
    final_json = json.loads((run / "final.json").read_text())
    final_json["wall_s_all_sessions"] = final_json.pop("loop_wall_s")
    (run / "final.json").write_text(json.dumps(final_json))
    results = json.loads((run / "hessian" / "results.json").read_text())
    results["iters"] = results.pop("steps")
    (run / "hessian" / "results.json").write_text(json.dumps(results))
    html = write_report([run], out=tmp_path / "old.html").path.read_text()
    assert "10 Lanczos steps" in html and "None Lanczos" not in html
    page = parse(html)
    assert page.text(page.one("td", {"data-metric": "wall"})) not in ("", "-")


def test_the_papers_figure_stands_beside_a_recipe_that_has_one(made, tmp_path):
    run = copy_run(made.pair[1], tmp_path / "c10")
    config = json.loads((run / "config.json").read_text())   # as a CIFAR-10-LT ratio-100 run records itself
    config["recipe"], config["data"]["dataset"], config["data"]["ratio"] = "cifar10-ldam-drw-sam", "cifar10", 100.0
    (run / "config.json").write_text(json.dumps(config))
    page = parse(write_report([run]).path.read_text())
    assert cell(page, "cifar10-ldam-drw-sam", "paper") == "81.90"   # RECIPES' paper_top1 at ratio 100
    assert cell(page, "cifar10-ldam-drw-sam", "top1") == f"{final(run)['top1']:.2f}"   # its own, beside it
    assert not parse(made.pair_report.path.read_text()).find("td", {"data-metric": "paper"})   # digits: none


def test_no_papers_figure_for_a_smoke_variant_or_another_ratio():
    assert paper_top1(get_recipe("cifar10-ldam-drw-sam")) == 81.9
    assert paper_top1(apply_overrides(get_recipe("cifar10-ldam-drw-sam"), ["data.ratio=10"])) == 89.4
    assert paper_top1(apply_overrides(get_recipe("cifar10-ldam-drw-sam"), ["data.ratio=50"])) is None
    assert paper_top1(get_recipe("cifar10-ldam-drw-sam:smoke")) is None
    assert paper_top1(get_recipe("digits-ldam-drw-sam")) is None
    assert paper_top1(get_recipe("imagenet-lt-ldam-drw-sam")) == 53.1   # keyed by its split's ratio, 256


def test_a_thousand_classes_are_binned_by_size_and_their_confusion_shown_in_blocks(tmp_path):
    """A run directory as an ImageNet-LT run writes it, made from a confusion matrix rather than trained."""
    from tailsam.config import save_config
    from tailsam.eval import summarize

    run, classes = tmp_path / "inlt", 1000
    counts = [int(1280 * (5 / 1280) ** (c / (classes - 1))) for c in range(classes)]
    rng = np.random.default_rng(0)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    for c, count in enumerate(counts):   # 20 test images a class, right more often the more it trained on
        right = rng.binomial(20, 0.2 + 0.7 * np.log(count / 5) / np.log(256))
        confusion[c, c], confusion[c, rng.integers(0, 50)] = right, 20 - right
    run.mkdir()
    save_config(get_recipe("imagenet-lt-ldam-drw-sam"), run / "config.json")
    records = [{"epoch": e, "lr": 0.1, "test": summarize(torch.from_numpy(confusion), counts).to_dict(
        include_confusion=e == 90)} for e in (45, 90)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    last = records[-1]["test"]
    (run / "final.json").write_text(json.dumps({
        "epoch": 90, "top1": last["top1"], "group_accuracy": last["group_accuracy"], "per_class": last["per_class"],
        "train_counts": counts, "precision": "bf16", "best_epoch_on_test_set": None}))
    report = write_report([run])
    page = parse(report.path.read_text())
    assert report.sections == ["headline", "per-class", "learning-curves", "confusion", "config", "environment",
                               "absent"]
    assert cell(page, "imagenet-lt-ldam-drw-sam", "top1") == f"{last['top1']:.2f}"
    assert cell(page, "imagenet-lt-ldam-drw-sam", "paper") == "53.10"
    assert not page.find(attrs={"id": "per-class-table"})   # 1000 rows: the figure only
    assert "Each dot is a class, the line their mean" in page.text(page.one("section", {"id": "per-class"}))
    blocks = [n for n in page.find("image") if page.section_of(n) == "confusion"]
    assert blocks, "the confusion matrix is an embedded image of 100 x 100 blocks"


def test_an_unfinished_run_is_reported_as_it_stands_and_exits_2(made, tmp_path, capsys):
    run = copy_run(made.sweep / "digits-ldam-drw-sam" / "seed1", tmp_path / "unfinished")
    (run / "final.json").unlink()
    records = (run / "metrics.jsonl").read_text().splitlines()[:3]
    (run / "metrics.jsonl").write_text("\n".join(records) + "\n")
    code, out, err = report_cli(capsys, run)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{run} has no final.json (unfinished: last evaluated epoch 3 of 6)" in err
    assert str(run / "report.html") in err
    page = parse((run / "report.html").read_text())
    last = json.loads(records[-1])["test"]
    assert cell(page, "digits-ldam-drw-sam", "top1") == f"{last['top1']:.2f}"
    label = page.find("td", {"class": "label"})[0]
    assert page.section_of(label) == "headline" and "epoch 3 of 6, unfinished" in page.text(label)
    assert "not the final one" in page.text(page.one(attrs={"id": "problems"}))


def test_bad_input_exits_2_with_one_line_and_writes_nothing(made, tmp_path, capsys):
    other = copy_run(made.pair[1], tmp_path / "cifar")
    config = json.loads((other / "config.json").read_text())
    config["data"]["dataset"] = "cifar10"
    (other / "config.json").write_text(json.dumps(config))
    grouped = copy_run(made.pair[1], tmp_path / "grouped")
    config = json.loads((grouped / "config.json").read_text())
    config["eval"]["few_threshold"] = 10
    (grouped / "config.json").write_text(json.dumps(config))
    fresh = copy_run(made.pair[0], tmp_path / "fresh")   # created, never evaluated
    (fresh / "final.json").unlink()
    (fresh / "metrics.jsonl").unlink()
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a run")
    cases = {
        (stray,): f"{stray} is neither a tailsam run (no config.json) nor a sweep",
        (tmp_path / "missing",): f"{tmp_path / 'missing'}: no such folder",
        (made.pair[0], other): "cannot compare runs of different datasets",
        (made.pair[0], made.pair[0]): "is given twice",
        (made.pair[0], grouped): "cannot compare runs whose groups differ",
        (fresh,): f"{fresh} has no evaluated epoch yet",
        (made.pair[0], "--out", tmp_path): "is a folder; give the file to write",
        (made.pair[0], "--out", made.pair[0] / "final.json"): "is not an .html file",
    }
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for argv, message in cases.items():
        code, out, err = report_cli(capsys, *argv)
        assert code == 2 and out == "", argv
        assert err.startswith("tailsam: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def headline_row(label: str, few: float | None, tail: float = 50.0, many: float = 90.0) -> Row:
    values = {"few": None if few is None else Stat(few, None), "tail": Stat(tail, None), "many": Stat(many, None)}
    return Row(label, (0,), True, (6,), 6, values, None, None, (), {"few": 4, "tail": 3, "many": 1})


def test_the_verdict_names_the_better_tail_or_the_runs_tied_within_one_point():
    config = get_recipe("digits-ce")
    rows = [headline_row("A", 80.0), headline_row("B", 79.0), headline_row("C", 60.0)]
    assert verdict(rows, config) == ("On the few group (4 classes, under 20 training images), a tie within 1 point: "
                                     "A 80.00%, B 79.00%; behind them: C 60.00%.")
    rows = [headline_row("A", 80.0), headline_row("B", 78.99)]
    assert verdict(rows, config).startswith("A has the better accuracy on the few group") and "(+1.01 points)" in \
        verdict(rows, config)
    rows = [headline_row("A", None, tail=40.0), headline_row("B", 70.0, tail=45.0)]   # A has no few group
    assert verdict(rows, config).startswith("B has the better accuracy on the tail group (3 classes")
    assert verdict([headline_row("A", 70.0)], config) == ("A: the few group (4 classes, under 20 training images) "
                                                          "reaches 70.00%, 20.00 points below the many group (1 "
                                                          "classes, over 100 training images) (90.00%).")


def test_train_names_the_report_command(tmp_path, capsys):
    assert main(["train", "digits-ce", "train.epochs=1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"tailsam report {tmp_path / 'run'}")


def test_the_template_ships_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = root / "src" / "tailsam" / "report" / "templates"
    shipped = {p for pattern in patterns["tailsam.report"] for p in templates.parent.glob(pattern)}
    assert set(templates.iterdir()) <= shipped


@pytest.mark.skipif(find_chromium() is None,
                    reason="Chromium is not installed (apt-get install -y chromium): no browser to render the page")
@pytest.mark.parametrize("which", ["pair_report", "sweep_report"])
def test_chromium_renders_the_page_without_console_errors(made, which, tmp_path):
    from matplotlib.image import imread

    shots = Path(os.environ.get("TAILSAM_REPORT_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = render(getattr(made, which).path, shots / f"{which}.png")
    assert shot.errors == []
    pixels = imread(shot.png)
    assert shot.height > 3000 and pixels.shape[0] == shot.height   # the whole page, figures included
    # Not a blank page: the figures put many distinct colours on it.
    assert len({tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}) > 50
