"""The method registry (`method.name` in the config); each method file registers into it."""

from dataclasses import dataclass

from tailsam.registry import Registry


@dataclass(frozen=True)
class MethodInfo:
    paper: str   # the work the method comes from


METHODS = Registry("method", MethodInfo)
