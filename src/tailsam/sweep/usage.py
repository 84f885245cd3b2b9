"""A sweep run's usage.json: exit status, wall time and peak memory of each session of the run.

    {"sessions": [{"exit_code": 0, "wall_s": 412.3, "peak_rss_mib": 2210.5, "peak_gpu_mib": 893.2}, ...]}

A resumed run has one entry per session; "peak_gpu_mib" only when it used CUDA.
"""

from __future__ import annotations

import json
from pathlib import Path

from tailsam.run.directory import write_json


def read_sessions(path: Path) -> list[dict]:
    """The sessions recorded so far ([] when none, or when the file is unreadable)."""
    try:
        sessions = json.loads(Path(path).read_text())["sessions"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return sessions if isinstance(sessions, list) else []


def append_session(path: Path, session: dict) -> None:
    write_json(Path(path), {"sessions": read_sessions(path) + [session]})
