"""The method registry (`method.name` in the config); each method file registers into it."""

from dataclasses import dataclass

from tailsam.registry import Registry


@dataclass(frozen=True)
class MethodInfo:
    paper: str                    # the work the method comes from
    data_parallel: bool = False   # runs under torchrun (tested equal to one process with the global batch)
    # Its loss is the run's criterion (loss.name, per sample), so `tailsam hessian --loss run` analyses it.
    trains_criterion: bool = False


METHODS = Registry("method", MethodInfo)
