"""What a run shows while it trains: a progress bar (or plain lines) and optional TensorBoard scalars."""

from __future__ import annotations

import sys
from pathlib import Path


class EpochProgress:
    """A tqdm bar per epoch on a terminal; one plain summary line per epoch otherwise (logs, CI)."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True):
        self.epochs, self.steps = epochs, steps_per_epoch
        self.enabled = enabled
        self._bar = None
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm if (tqdm is not None and sys.stderr.isatty()) else None

    def start_epoch(self, epoch: int, done_steps: int) -> None:
        if self.enabled and self._tqdm is not None:
            self._bar = self._tqdm(total=self.steps, initial=done_steps, desc=f"epoch {epoch}/{self.epochs}",
                                   leave=False, dynamic_ncols=True)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def end_epoch(self, summary: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled:
            print(summary, file=sys.stderr, flush=True)


class TensorBoardLog:
    """Scalars under RUN/tensorboard when asked for and the tensorboard package is installed."""

    def __init__(self, root: Path, enabled: bool):
        self._writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional `logging` extra is not installed
                return
            self._writer = SummaryWriter(str(root / "tensorboard"))

    def scalars(self, epoch: int, values: dict[str, float | None]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            if value is not None:
                self._writer.add_scalar(name, value, epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
