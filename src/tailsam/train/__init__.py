"""Training: the loop, the update steps, data-parallel processes and stop signals."""

from tailsam.train.loop import RunInterrupted, TrainingDiverged, train
from tailsam.train.step import sam_step, sgd_step

__all__ = ["RunInterrupted", "TrainingDiverged", "sam_step", "sgd_step", "train"]
