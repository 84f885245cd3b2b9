"""Training: the loop, the two update steps, checkpoints and the run directory."""

from tailsam.train.checkpoint_eval import evaluate_checkpoint
from tailsam.train.loop import RunInterrupted, TrainingDiverged, train
from tailsam.train.step import sam_step, sgd_step

__all__ = ["RunInterrupted", "TrainingDiverged", "evaluate_checkpoint", "sam_step", "sgd_step", "train"]
