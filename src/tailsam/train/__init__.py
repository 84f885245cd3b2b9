"""Training: the loop, the two update steps, checkpoints, the run directory, and a run's Hessian spectra."""

from tailsam.train.checkpoint_eval import evaluate_checkpoint
from tailsam.train.hessian_run import RunSpectra, analyze_checkpoint, check_results_folder, hessian_dir
from tailsam.train.loop import RunInterrupted, TrainingDiverged, train
from tailsam.train.step import sam_step, sgd_step

__all__ = ["RunInterrupted", "RunSpectra", "TrainingDiverged", "analyze_checkpoint", "check_results_folder",
           "evaluate_checkpoint", "hessian_dir", "sam_step", "sgd_step", "train"]
