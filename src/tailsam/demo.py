"""`tailsam demo`: the whole story on the built-in digits data, in well under two minutes on a CPU.

LDAM+DRW and LDAM+DRW+SAM train side by side on the long-tailed digits; the
table shows where SAM's gain lands (many/medium/few, head/mid/tail, per class),
then the per-class Hessian of each final model shows how far each class sits
from a minimum: lambda_min < 0 is a saddle, and lambda_min / lambda_max says
how strong its negative curvature is next to the sharpest direction. The
runs also track three classes' spectra while they train, and the demo ends
with the report page of both runs (tailsam.report).
"""

from __future__ import annotations

from pathlib import Path

from tailsam.config import apply_overrides
from tailsam.report import REPORT_FILE, format_results, write_report, write_spectra
from tailsam.recipes import get_recipe
from tailsam.run import RunSpectra, analyze_checkpoint, evaluate_checkpoint, hessian_dir
from tailsam.train import train

DEMO_RUNS = {"LDAM+DRW": "digits-ldam-drw", "LDAM+DRW+SAM": "digits-ldam-drw-sam"}
# A quick look that keeps the demo short (~5 s for both runs): with 20 Lanczos steps on these
# 75K-parameter models lambda_max equals the 100-step value and lambda_min is within 1.5% of it;
# `tailsam hessian RUN` runs the full 100 steps on every image.
HESSIAN_STEPS = 20
HESSIAN_MAX_IMAGES = 32
# The spectra of 3 classes at every evaluation (every 10th epoch), on as many images: about 1 s a run.
TRACKING = ["hessian.every=10", f"hessian.max_images={HESSIAN_MAX_IMAGES}"]


def run_demo(out: str | Path = "tailsam-demo", *, verbose: bool = True) -> str:
    """Train both demo recipes under `out` (resuming finished or interrupted runs), write their report page
    (`out`/report.html) and return the text report, whose last line is the page's path."""
    out = Path(out)
    results, spectra, class_names = {}, {}, None
    for label, recipe in DEMO_RUNS.items():
        if verbose:
            print(f"training {label} ({recipe}) -> {out / recipe}", flush=True)
        train(apply_overrides(get_recipe(recipe), TRACKING), out / recipe, verbose=False)
        results[label], _, data = evaluate_checkpoint(out / recipe, device="cpu")
        class_names = data["class_names"]
    for label, recipe in DEMO_RUNS.items():
        if verbose:
            print(f"per-class Hessian of {label}", flush=True)
        spectra[label] = analyze_checkpoint(out / recipe, steps=HESSIAN_STEPS, max_images=HESSIAN_MAX_IMAGES,
                                            device="cpu")
        write_spectra(spectra[label], hessian_dir(out / recipe))
    report = write_report([out / recipe for recipe in DEMO_RUNS.values()], out=out / REPORT_FILE,
                          labels=list(DEMO_RUNS))
    runs = "\n".join(f"  {label}: {out / recipe}" for label, recipe in DEMO_RUNS.items())
    return (f"Long-tailed digits (imbalance ratio {get_recipe(DEMO_RUNS['LDAM+DRW']).data.ratio:g}), "
            f"final-epoch test accuracy (%):\n\n{format_results(results, class_names=class_names)}\n\n"
            f"Per-class Hessian of each run's own training loss "
            f"({spectra[next(iter(spectra))].settings['loss_function']}; at most {HESSIAN_MAX_IMAGES} training "
            f"images per class, {HESSIAN_STEPS} Lanczos steps); lambda_min < 0 is a saddle:\n\n"
            f"{hessian_table(spectra)}\n\nRun directories:\n{runs}\n\n"
            f"The evidence on one page (open it in a browser):\n{report.path}")


def hessian_table(spectra: dict[str, RunSpectra]) -> str:
    """lambda_min and lambda_min / lambda_max per class, the runs side by side."""
    labels = list(spectra)
    first = spectra[labels[0]]
    header = (f"{'class':>5s} {'train':>6s}  " + "  ".join(f"{'lambda_min ' + label:>22s}" for label in labels)
              + "  " + "  ".join(f"{'min/max ' + label:>19s}" for label in labels))
    lines = [header]
    for i, spectrum in enumerate(first.spectra):
        row = [spectra[label].spectra[i] for label in labels]
        lines.append(f"{spectrum.class_id:5d} {first.counts[spectrum.class_id]:6d}  "
                     + "  ".join(f"{s.lambda_min:22.4g}" for s in row) + "  "
                     + "  ".join(f"{s.eigenvalue_ratio:19.4f}" for s in row))
    return "\n".join(lines)
