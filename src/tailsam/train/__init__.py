"""Training: the loop, joining data-parallel processes, progress logs and stop signals."""

from tailsam.train.loop import RunInterrupted, TrainingDiverged, train

__all__ = ["RunInterrupted", "TrainingDiverged", "train"]
