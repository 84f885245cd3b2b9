"""The run configuration: typed nested dataclasses, dotted overrides, JSON round trip.

    config = apply_overrides(recipe_config, ["optim.lr=0.05", "sam.rho=0.8", "loss.hparams.max_m=0.3"])

Every override is parsed to the field's declared type; an unknown key or a
value of the wrong type raises ConfigError naming the key. `check` validates
a whole config once, where it enters (overrides, config.json, recipes): value
ranges, and every name against the registry that builds it (datasets,
samplers, models, heads, losses, schedules), so a run never fails at build
time on a name. (method.name is checked when the run is built: the method
registry sits a layer above.) Dict fields
(`loss.hparams`, `optim.lr_args`, `sam.rho_args`, `method.args`) take new keys; their values
are parsed as numbers, booleans, comma-separated lists or strings, and the
builder they are passed to checks the names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from tailsam.data import DATASETS, PROFILES, PROTOCOLS, SAMPLERS
from tailsam.errors import ConfigError
from tailsam.losses import LOSSES, WEIGHTINGS
from tailsam.models import HEADS, MODELS, TIMM_PREFIX
from tailsam.optim import LR_SCHEDULES, RHO_SCHEDULES, SAM_KINDS

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
# Keys that were renamed: config.json files and overrides that use the old name still work.
RENAMED = {"hessian.iters": "hessian.steps"}


@dataclass
class DataConfig:
    dataset: str = "cifar10"
    root: str | None = None           # None: $TAILSAM_DATA_ROOT, else ./data
    profile: str = "exp"              # long-tail profile: exp | step
    ratio: float = 100.0              # imbalance ratio n_max / n_min (1 = balanced)
    seed: int = 0                     # data seed of the selection protocol
    protocol: str = "ldam"            # ldam (the default) | glmc (its normalisation; seed 3407: its subset) | first-n
    n_max: int | None = None          # images of the largest class (None: the dataset's per-class size)
    test_per_class: int | None = None  # keep at most this many test images per class (smoke runs)
    sampler: str = "instance"         # instance | class-balanced | sqrt | class-aware
    download: bool = True
    # Image-file datasets only (imagenet-lt, inat2018, lists, folder: tailsam.data.file_catalog).
    # There n_max caps each class at its first n_max training images unless `longtail` is on.
    train_list: str | None = None     # `path label` lines or iNaturalist JSON, relative to root (None: the default)
    test_list: str | None = None      # the same for the test images
    longtail: bool = False            # draw a long-tailed subset (profile, ratio, seed, n_max) of the training files
    classes: int | None = None        # keep only classes 0..classes-1 (smoke runs on the real data)
    holdout: float = 0.2              # folder with no test/ or val/ sub-folder: fraction of each class kept for testing
    image_size: int = 224             # training RandomResizedCrop and test CenterCrop size, pixels
    resize: int = 256                 # test images: shorter side resized to this before the centre crop
    workers: int | None = None        # decoding processes per training process (None: min(8, CPU cores))
    skip_bad: bool = False            # skip missing/unreadable images (counted in data.json) instead of stopping


@dataclass
class ModelConfig:
    name: str = "resnet32"
    head: str = "linear"              # linear | normed (cosine, for LDAM)


@dataclass
class LossConfig:
    name: str = "ce"
    hparams: dict[str, Any] = field(default_factory=dict)  # e.g. {"max_m": 0.5, "s": 30.0}
    weighting: str = "none"           # none | cb | drw
    drw_start: int = 160              # DRW: class-balanced weights once this many epochs are done
    beta: float = 0.9999              # class-balanced "effective number" beta


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    nesterov: bool = False
    batch_size: int = 128
    lr_schedule: str = "paper_cifar"
    lr_args: dict[str, Any] = field(default_factory=dict)  # besides base_lr (= lr)


@dataclass
class SamConfig:
    kind: str = "none"                # none | sam | asam
    rho: float = 0.05                 # the constant schedule's rho
    rho_schedule: str = "constant"
    rho_args: dict[str, Any] = field(default_factory=dict)
    freeze_bn: bool = True            # the perturbed pass leaves BatchNorm running statistics alone
    # Data-parallel runs: "global" perturbs along the gradient averaged over all processes (the
    # same step as one process with the global batch); "local" along each process's own
    # gradient (m-sharpness, m = per-process batch).
    perturbation: str = "global"


@dataclass
class MethodConfig:
    name: str = "plain"               # what one training step does (tailsam.methods): plain | ...
    args: dict[str, Any] = field(default_factory=dict)   # the method's own settings, checked by its builder


@dataclass
class TrainConfig:
    epochs: int = 200
    eval_every: int = 10              # evaluate every N epochs, and always after the last
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    # auto | fp32 | bf16 | fp16 (autocast). auto, resolved when the run is created and stored in its
    # config.json: bf16 on a CPU with bf16 units, else fp32, by measurement (tailsam.run.precision).
    precision: str = "auto"
    channels_last: bool = True
    seed: int = 0                     # model initialisation and batch order
    tensorboard: bool = True          # when the tensorboard package is installed
    sync_bn: bool = False             # data-parallel on GPUs: BatchNorm statistics over the global batch
    # torch.compile of the model for the update steps, CUDA only: off | default | reduce-overhead
    # (CUDA graphs) | max-autotune. Off by default until measured on a GPU.
    compile: str = "off"


@dataclass
class EvalConfig:
    many_threshold: int = 100         # many: > 100 training images
    few_threshold: int = 20           # few: < 20
    batch_size: int = 1000


@dataclass
class HessianConfig:
    """The per-class Hessian analysis during training, logged under "hessian" in metrics.jsonl.

    Small by default, to watch tail classes leave the saddle without slowing
    training much; `tailsam hessian RUN` does the full analysis afterwards.
    """

    every: int = 0                    # analyse every N epochs (a multiple of train.eval_every); 0 = never
    classes: int = 3                  # this many classes, spread from the largest to the smallest
    max_images: int = 64              # at most this many training images per class (the same ones each time)
    steps: int = 20                   # Lanczos steps per class
    loss: str = "run"                 # run (the run's own loss) | ce (plain cross-entropy on the logits)


@dataclass
class Config:
    recipe: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hessian: HessianConfig = field(default_factory=HessianConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """A copy of `config` with each "dotted.key=value" applied in order."""
    config = config_from_dict(config.to_dict())
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr=0.05")
        _set(config, RENAMED.get(key.strip(), key.strip()), raw.strip())
    return check(config)


def config_from_dict(data: dict[str, Any], *, where: str = "config") -> Config:
    """Rebuild a Config from `to_dict()` output (e.g. config.json), type-checking every value."""
    if isinstance(data, dict):
        data = {section: dict(values) if isinstance(values, dict) else values for section, values in data.items()}
        for old, new in RENAMED.items():
            (section, old_key), (_, new_key) = old.split("."), new.split(".")
            if isinstance(data.get(section), dict) and old_key in data[section]:
                data[section].setdefault(new_key, data[section].pop(old_key))
    return check(_build(Config, data, where))


def save_config(config: Config, path) -> None:
    with open(path, "w") as f:
        json.dump(config.to_dict(), f, indent=1)


def load_config(path) -> Config:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:  # missing, not text, not JSON
        raise ConfigError(f"{path}: cannot read the config ({err}); give a config.json written by tailsam") from None
    return config_from_dict(data, where=str(path))


def check(config: Config) -> Config:
    """Names and ranges a type cannot express; the message names the field and the valid values."""
    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"{key} must be {rule}, got {value!r}")

    d, o, s, t, l, h = config.data, config.optim, config.sam, config.train, config.loss, config.hessian

    def named(value: str, key: str, registry) -> None:
        need(value in registry, key, f"one of {', '.join(registry.names())}", value)

    named(d.dataset, "data.dataset", DATASETS)
    named(d.sampler, "data.sampler", SAMPLERS)
    named(config.model.head, "model.head", HEADS)
    named(l.name, "loss.name", LOSSES)
    named(o.lr_schedule, "optim.lr_schedule", LR_SCHEDULES)
    named(s.rho_schedule, "sam.rho_schedule", RHO_SCHEDULES)
    model = config.model.name
    need(model in MODELS or model.startswith(TIMM_PREFIX), "model.name",
         f"one of {', '.join(MODELS.names())}, or {TIMM_PREFIX}<name> for a timm model", model)
    need(d.ratio >= 1 and math.isfinite(d.ratio), "data.ratio", ">= 1 (1 = balanced)", d.ratio)
    need(d.profile in PROFILES, "data.profile", " or ".join(PROFILES), d.profile)
    need(d.protocol in PROTOCOLS, "data.protocol", " or ".join(PROTOCOLS), d.protocol)
    need(d.n_max is None or d.n_max >= 1, "data.n_max", ">= 1", d.n_max)
    need(d.test_per_class is None or d.test_per_class >= 1, "data.test_per_class", ">= 1", d.test_per_class)
    need(d.classes is None or d.classes >= 1, "data.classes", ">= 1", d.classes)
    need(0 < d.holdout < 1, "data.holdout", "in (0, 1), the fraction of each class held out", d.holdout)
    need(d.image_size >= 8, "data.image_size", ">= 8 pixels", d.image_size)
    need(d.resize >= d.image_size, "data.resize", f">= data.image_size ({d.image_size})", d.resize)
    need(d.workers is None or d.workers >= 0, "data.workers", ">= 0 (0 = decode in the training process)",
         d.workers)
    need(o.lr > 0, "optim.lr", "> 0", o.lr)
    need(0 <= o.momentum < 1, "optim.momentum", "in [0, 1)", o.momentum)
    need(o.weight_decay >= 0, "optim.weight_decay", ">= 0", o.weight_decay)
    need(o.batch_size >= 1, "optim.batch_size", ">= 1", o.batch_size)
    need(s.kind in SAM_KINDS, "sam.kind", ", ".join(SAM_KINDS), s.kind)
    need(s.rho >= 0 and math.isfinite(s.rho), "sam.rho", ">= 0", s.rho)
    need(s.perturbation in ("global", "local"), "sam.perturbation", "global or local", s.perturbation)
    need(l.weighting in WEIGHTINGS, "loss.weighting", ", ".join(WEIGHTINGS), l.weighting)
    need(l.drw_start >= 0, "loss.drw_start", ">= 0", l.drw_start)
    need(0 <= l.beta < 1, "loss.beta", "in [0, 1)", l.beta)
    need(t.epochs >= 1, "train.epochs", ">= 1", t.epochs)
    need(t.eval_every >= 1, "train.eval_every", ">= 1", t.eval_every)
    need(t.precision in ("auto", "fp32", "bf16", "fp16"), "train.precision", "auto, fp32, bf16 or fp16",
         t.precision)
    need(t.compile in COMPILE_MODES, "train.compile", ", ".join(COMPILE_MODES), t.compile)
    need(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"), "train.device",
         "auto, cpu, cuda or cuda:N", t.device)
    need(config.eval.few_threshold <= config.eval.many_threshold, "eval.few_threshold",
         f"<= eval.many_threshold ({config.eval.many_threshold})", config.eval.few_threshold)
    need(h.every >= 0, "hessian.every", ">= 0 (0 = off)", h.every)
    need(h.every % t.eval_every == 0, "hessian.every",
         f"a multiple of train.eval_every ({t.eval_every}), so each analysis lands on an evaluated epoch's "
         "metrics line", h.every)
    need(h.classes >= 1, "hessian.classes", ">= 1", h.classes)
    need(h.max_images >= 1, "hessian.max_images", ">= 1", h.max_images)
    need(h.steps >= 2, "hessian.steps", ">= 2", h.steps)
    need(h.loss in ("ce", "run"), "hessian.loss", "ce or run", h.loss)
    return config


# --- typed parsing -----------------------------------------------------------------------------

def _set(config: Config, key: str, raw: str) -> None:
    parts = key.split(".")
    node: Any = config
    for depth, name in enumerate(parts):
        here = ".".join(parts[:depth + 1])
        if isinstance(node, dict):
            if depth != len(parts) - 1:
                raise ConfigError(f"unknown key {key!r}: {'.'.join(parts[:depth])} holds plain values")
            node[name] = _parse_loose(raw)
            return
        hints = typing.get_type_hints(type(node))
        if name not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(node))
            raise ConfigError(f"unknown key {here!r}; valid keys here: {valid}")
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(hints[name]):
                raise ConfigError(f"{here!r} is a section; set one of its keys, e.g. {here}.<key>=...")
            setattr(node, name, _parse(raw, hints[name], here))
            return
        node = getattr(node, name)
        if not (dataclasses.is_dataclass(node) or isinstance(node, dict)):
            raise ConfigError(f"unknown key {key!r}: {here} is a value, not a section")


def _parse(raw: str, kind: Any, key: str) -> Any:
    """Text from the command line -> a value of the declared type `kind`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse(raw, inner, key)
    if origin is dict:
        raise ConfigError(f"{key!r} is a table; set its entries one by one, e.g. {key}.name=value")
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        return value
    return raw


def _parse_loose(raw: str) -> Any:
    """Values in dict fields: a number, a bool, a comma-separated list of numbers, or a string."""
    if "," in raw:
        return [_parse_loose(part.strip()) for part in raw.split(",") if part.strip()]
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(hints)}")
    values = {}
    for name, value in data.items():
        kind, key = hints[name], f"{where}.{name}" if where != "config" else name
        values[name] = _build(kind, value, key) if dataclasses.is_dataclass(kind) else _check_type(value, kind, key)
    return cls(**values)


def _check_type(value: Any, kind: Any, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {value!r}")
        return dict(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be of type {kind.__name__}, got {value!r}")
    return value
