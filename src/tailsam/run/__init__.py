"""A run: its directory, what builds or restores it, and what reads its checkpoint.

    run = RunDir(out)                        # config.json, metrics.jsonl, final.json, checkpoints/last.pt
    result, config, data = evaluate_checkpoint(run_or_checkpoint)
    spectra = analyze_checkpoint(run_or_checkpoint, classes=[0, 4, 9])

Below the training loop (tailsam.train), above the pieces it assembles
(data, models, losses, optim, eval, hessian).
"""

from tailsam.run.directory import RunDir
from tailsam.run.restore import evaluate_checkpoint, restore_run
from tailsam.run.spectra import RunSpectra, analyze_checkpoint, check_results_folder, hessian_dir

__all__ = ["RunDir", "RunSpectra", "analyze_checkpoint", "check_results_folder", "evaluate_checkpoint",
           "hessian_dir", "restore_run"]
