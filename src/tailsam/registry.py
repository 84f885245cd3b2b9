"""One small name -> builder registry, shared by models, losses, samplers and datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tailsam.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """A registered builder with its metadata (parameter count, paper, ...)."""

    name: str
    builder: Callable[..., Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Maps names to builders; `kind` names the family in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[Callable], Callable]:
        """Decorator: `@MODELS.register("resnet32", params=464154)`."""

        def add(builder: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, builder, dict(metadata))
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
