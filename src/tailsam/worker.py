"""One run of a sweep: `tailsam train ARGS...`, then this session's resources appended to USAGE_JSON.

    python -m tailsam.worker RUN/usage.json train RECIPE key=value ... --out RUN

The sweep launches runs this way rather than as `python -m tailsam train`
because only the process itself can read its peak GPU memory (format:
tailsam.sweep.usage).
"""

from __future__ import annotations

import sys
import time

from tailsam.cli import main as tailsam_main
from tailsam.resources import peak_memory
from tailsam.sweep.usage import append_session


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    code = 1   # what Python exits with when tailsam_main raises (a bug: its traceback lands in the log)
    try:
        code = tailsam_main(argv[1:])
    finally:
        append_session(argv[0], {"exit_code": code, "wall_s": round(time.perf_counter() - start, 1),
                                 **peak_memory()})
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
