"""The report's tables after the figures: per-class accuracy, the config diff, environment and speed.

Each function returns plain rows (strings and numbers) for the page's
template; an empty list means the table has nothing to show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from tailsam.report.headline import Stat, mean_std
from tailsam.report.sources import Entry

# Up to this many classes the page lists each class's accuracy in a table.
CLASS_TABLE = 100


@dataclass(frozen=True)
class ClassRow:
    class_id: int
    name: str
    train: int
    accuracy: list[Stat | None]    # one per entry


def class_table(entries: Sequence[Entry], class_names: Sequence[str] | None) -> list[ClassRow]:
    """Each class's test accuracy per entry (mean over its runs), largest class first."""
    shown = [entry for entry in entries if entry.reported]
    if not shown:
        return []
    counts = shown[0].reported[0].counts
    if counts is None or len(counts) > CLASS_TABLE:
        return []
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    return [ClassRow(c, "" if class_names is None else class_names[c], counts[c],
                     [mean_std([run.result["per_class"][c] for run in entry.reported]) for entry in shown])
            for c in order]


def config_diff(entries: Sequence[Entry]) -> list[tuple[str, list[str]]]:
    """The resolved config's dotted keys whose values differ between entries, with each entry's value.

    An entry of several seeds shows every distinct value of a key among its
    runs ("0, 1" for train.seed), so the seeds of one recipe differ from
    another recipe's only where their configs do.
    """
    if len(entries) < 2:
        return []
    values = []
    for entry in entries:
        runs = [_flatten(run.config.to_dict()) for run in entry.runs]
        keys = sorted(set().union(*runs))
        values.append({key: ", ".join(dict.fromkeys(_text(run.get(key, "(absent)")) for run in runs))
                       for key in keys})
    keys = sorted(set().union(*values))
    return [(key, [v.get(key, "(absent)") for v in values]) for key in keys
            if len({v.get(key, "(absent)") for v in values}) > 1]


@dataclass(frozen=True)
class Environment:
    """Where and how the runs ran: what they all share in one line, what differs in a table with the speed."""

    shared: dict[str, str]          # ENVIRONMENT key -> the value every run has
    differing: list[str]            # the ENVIRONMENT keys whose values differ between runs
    rows: list[dict[str, str]]      # per run: "run", the differing keys ("-" where unknown), "wall", "speed"


# What env.json and final.json tell about a run, with the words the page uses for each.
ENVIRONMENT = {"device": "device", "precision": "precision", "versions": "versions", "revision": "git revision"}


def environment(entries: Sequence[Entry]) -> Environment | None:
    """Device, precision, versions and git revision of each run with an env.json or final.json, wall time of
    its training loop over all sessions and training images/s; None when no run has either file."""
    runs = []
    for entry in entries:
        for run in entry.runs:
            env, final = run.env or {}, run.final or {}
            if env or final:
                runs.append({"run": entry.run_label(run), **_environment(env, final),
                             # the loop's wall time over all sessions (wall_s_all_sessions before 0.1's rename)
                             "wall": _duration(final.get("loop_wall_s", final.get("wall_s_all_sessions"))),
                             "speed": "-" if final.get("train_images_per_s") is None
                             else f"{final['train_images_per_s']:,.0f}"})
    if not runs:
        return None
    known = [key for key in ENVIRONMENT if any(run[key] is not None for run in runs)]   # env.json may be gone
    shared = {key: runs[0][key] for key in known if all(run[key] == runs[0][key] for run in runs)}
    differing = [key for key in known if key not in shared]
    return Environment(shared, differing, [{key: "-" if run[key] is None else run[key]
                                            for key in ("run", *differing, "wall", "speed")} for run in runs])


def _environment(env: dict, final: dict) -> dict[str, str | None]:
    """The ENVIRONMENT values of one run; None for what its files do not say."""
    cpu = env.get("cpu") or {}
    if env.get("gpu"):
        device = env["gpu"]
    elif env.get("device") == "cpu":
        threads = env.get("threads")
        device = f"CPU {cpu.get('model', '')}".strip() + (f", {threads} thread{'s' * (threads > 1)}" if threads else "")
    else:
        device = env.get("device")
    if device is not None and env.get("processes", 1) > 1:
        device += f", {env['processes']} processes"
    return {
        "device": device,
        "precision": final.get("precision") or env.get("precision"),
        "versions": ", ".join(f"{name} {env[name]}" for name in ("tailsam", "torch", "python") if name in env) or None,
        "revision": (env.get("git_revision") or "")[:10] or None,
    }


def _flatten(config: dict) -> dict[str, Any]:
    """`section.field` keys; dict-valued fields (loss.hparams) stay whole."""
    flat = {}
    for section, fields in config.items():
        if isinstance(fields, dict):
            flat.update({f"{section}.{key}": value for key, value in fields.items()})
        else:
            flat[section] = fields
    return flat


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _duration(seconds: float | None) -> str:
    """"42.0 s", "12 min 5 s", "3 h 02 min"; "-" when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60)} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
