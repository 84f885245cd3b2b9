"""`tailsam demo`: the whole story on the built-in digits data, in well under two minutes on a CPU.

LDAM+DRW and LDAM+DRW+SAM train side by side on the long-tailed digits; the
table shows where SAM's gain lands (many/medium/few, head/mid/tail, per class).
"""

from __future__ import annotations

from pathlib import Path

from tailsam.eval import format_results
from tailsam.recipes import get_recipe
from tailsam.train import evaluate_checkpoint, train

DEMO_RUNS = {"LDAM+DRW": "digits-ldam-drw", "LDAM+DRW+SAM": "digits-ldam-drw-sam"}


def run_demo(out: str | Path = "tailsam-demo", *, verbose: bool = True) -> str:
    """Train both demo recipes under `out` (resuming finished or interrupted runs) and return the report."""
    out = Path(out)
    results, class_names = {}, None
    for label, recipe in DEMO_RUNS.items():
        if verbose:
            print(f"training {label} ({recipe}) -> {out / recipe}", flush=True)
        train(get_recipe(recipe), out / recipe, verbose=False)
        results[label], _, data = evaluate_checkpoint(out / recipe, device="cpu")
        class_names = data["class_names"]
    runs = "\n".join(f"  {label}: {out / recipe}" for label, recipe in DEMO_RUNS.items())
    return (f"Long-tailed digits (imbalance ratio {get_recipe(DEMO_RUNS['LDAM+DRW']).data.ratio:g}), "
            f"final-epoch test accuracy (%):\n\n{format_results(results, class_names=class_names)}\n\n"
            f"Run directories:\n{runs}")
