"""One small name -> builder registry with typed metadata, shared by every family of tailsam.

    MODELS = Registry("model", ModelInfo)                 # ModelInfo: a frozen dataclass
    @MODELS.register("resnet32", params=464154, ...)      # fields checked when the module is imported
    MODELS.get("resnet32").info.params
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from tailsam.errors import ConfigError


@dataclass(frozen=True)
class NoInfo:
    """The metadata of a family that has none."""


Info = TypeVar("Info")


@dataclass(frozen=True)
class Entry(Generic[Info]):
    """A registered builder with its metadata (parameter count, paper, ...)."""

    name: str
    builder: Callable[..., Any]
    info: Info


class Registry(Generic[Info]):
    """Maps names to builders; `kind` names the family in error messages, `info` types its metadata."""

    def __init__(self, kind: str, info: type = NoInfo):
        self.kind, self.info_type = kind, info
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable], Callable]:
        """Decorator: `@MODELS.register("resnet32", params=464154)`; the keywords build the family's info."""
        entry_info = self.info_type(**info)   # a misspelt or missing field fails at import

        def add(builder: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, builder, entry_info)
            return builder

        return add

    def get(self, name: str) -> Entry:
        """The entry for `name`; a ConfigError lists the valid names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(sorted(self._entries)) or "(none registered)"
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the builder registered under `name`."""
        return self.get(name).builder(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)
