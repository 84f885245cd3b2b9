"""Run a sweep's runs as subprocesses, K at a time on one machine, each logging into its run directory.

Each run is its own `tailsam train` process (through tailsam.worker):
a crash, a NaN or a bad checkpoint ends that run alone, its traceback or
one-line error lands in its log, and several processes can share one GPU.
Children run in their own session, so a Ctrl-C at the terminal reaches only
the sweep, which passes each SIGINT/SIGTERM on to every running child exactly
once: the first makes them save a checkpoint at the next step and exit (a rerun
resumes them), a second stops them at once. No run starts after a signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from tailsam.resources import usable_cpus
from tailsam.sweep.plan import PlannedRun
from tailsam.sweep.usage import read_sessions

POLL_S = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REUSED, TRAINED, FAILED, INTERRUPTED, NOT_STARTED = "reused", "trained", "failed", "interrupted", "not started"


@dataclass
class Outcome:
    """How one run ended in this sweep; `final` is its final.json when it finished."""

    run: PlannedRun
    status: str
    exit_code: int | None = None
    wall_s: float | None = None       # this sweep's session; None when reused or not started
    final: dict | None = None
    error: str | None = None          # the last line of the log of a failed run

    @property
    def ok(self) -> bool:
        return self.status in (REUSED, TRAINED)

    def sessions(self) -> list[dict]:
        """Every session's exit status, wall time and peak memory (usage.json)."""
        return read_sessions(self.run.usage)


def threads_per_run(parallel: int) -> int:
    """CPU threads for each of `parallel` runs: the cores shared out, so they do not oversubscribe them."""
    cores = usable_cpus()
    return max(1, cores // parallel)


def execute(runs: list[PlannedRun], *, parallel: int = 1,
            on_done: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Run every unfinished run, at most `parallel` at once; returns one Outcome per run, in `runs` order.

    `on_done` sees each outcome as it happens (reused ones first). Children get
    OMP_NUM_THREADS = cores // parallel unless the environment sets it.
    """
    outcomes: dict[int, Outcome] = {}
    for i, run in enumerate(runs):
        if run.finished:
            outcomes[i] = Outcome(run, REUSED, final=_read_json(run.root / "final.json"))
            on_done(outcomes[i])
    pending = deque(i for i, run in enumerate(runs) if not run.finished)
    env = {"OMP_NUM_THREADS": str(threads_per_run(parallel)), **os.environ, "PYTHONUNBUFFERED": "1"}
    running: dict[int, tuple[subprocess.Popen, float]] = {}
    with _signals_collected() as received:
        forwarded = 0
        try:
            while pending or running:
                while pending and len(running) < parallel and not received:
                    i = pending.popleft()
                    running[i] = (_launch(runs[i], env), time.perf_counter())
                for signum in received[forwarded:]:
                    for process, _ in running.values():
                        process.send_signal(signum)
                forwarded = len(received)
                for i in [i for i, (process, _) in running.items() if process.poll() is not None]:
                    process, started = running.pop(i)
                    outcomes[i] = _ended(runs[i], process.returncode, time.perf_counter() - started)
                    on_done(outcomes[i])
                if received:
                    while pending:
                        i = pending.popleft()
                        outcomes[i] = Outcome(runs[i], NOT_STARTED)
                time.sleep(POLL_S)
        finally:
            # Only reached with runs still going when this process itself fails: stop them cleanly
            # (they save a checkpoint) rather than leave them training unwatched.
            for process, _ in running.values():
                process.send_signal(signal.SIGTERM)
            for process, _ in running.values():
                process.wait()
    return [outcomes[i] for i in range(len(runs))]


def _launch(run: PlannedRun, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "tailsam.worker", str(run.usage), *run.train_args]
    run.root.mkdir(parents=True, exist_ok=True)
    with open(run.log, "a") as log:
        log.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} "
                  f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {' '.join(command)}\n")
        log.flush()
        # The child holds its own copy of the log's descriptor; ours closes with the block.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def _ended(run: PlannedRun, code: int, seconds: float) -> Outcome:
    if code == 0:
        return Outcome(run, TRAINED, code, seconds, final=_read_json(run.root / "final.json"))
    # The training loop exits with 128 + signal after saving a checkpoint (RunInterrupted); Python
    # killed by the signal itself has -signal. Anything else (SIGKILL from the OOM killer too) failed.
    stopped = any(code in (128 + s, -s) for s in STOP_SIGNALS)
    return Outcome(run, INTERRUPTED if stopped else FAILED, code, seconds, error=_last_line(run.log))


@contextmanager
def _signals_collected() -> Iterator[list[int]]:
    """Within the block SIGINT/SIGTERM are appended to the yielded list instead of stopping this process."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received   # handlers can only be installed from the main thread
        return
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in STOP_SIGNALS}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(path: Path) -> str | None:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None
