"""Typed training configuration: dataclasses, YAML files that inherit from a base, ``key=value`` overrides.

A YAML file may name a parent with ``inherit: base.yaml`` (a path relative to the file); the child is a
small override of it (as in mmsegmentation's base configs, without a registry). The merged result is
checked against :class:`Config`, so a misspelt key or a wrong type fails with the key's name.

Defaults are the paper's hyperparameters (paper §4.2, FACTS §1). Values that depend on other values
(the parser learning rate per architecture, the number of classes, the U-Net depth) are left ``None``
here and filled in by :func:`resolve`, and the resolved config is what every run saves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from faceparse.utils.io import DataError

if TYPE_CHECKING:
    from faceparse.losses.joint import JointWeights, MutualLearning

# Closed choices, typed: OmegaConf rejects any other value, naming the key.
Arch = Literal["bisenet", "eagrnet"]  # the parsers F_R and F_D (paper §4.2)
Discriminator = Literal["pixel", "patch"]
Precision = Literal["auto", "32-true", "bf16-mixed", "16-mixed"]
Augment = Literal["bisenet", "eagrnet", "none"]
AugmentOn = Literal["auto", "worker", "device"]
Optimizer = Literal["sgd", "adam"]
MLLoss = Literal["mse_logits", "mse_probs", "kl"]  # = losses.joint.ML_LOSSES (a test checks)
MLDirection = Literal["both", "gated", "confident"]  # = losses.joint.ML_DIRECTIONS
DepthBN = Literal["mixed", "separate"]

# paper §4.2: "an initial learning rate of 1e-3 for EAGRNet and 1e-2 for BiSeNet"
PARSER_LR = {"bisenet": 1e-2, "eagrnet": 1e-3}


class ReferenceOptim(TypedDict):
    """The reference code's values of the optimiser keys ``resolve`` fills when left ``None``."""

    head_lr_mult: float
    decay_norms: bool
    warmup_iters: int


# The optimiser of the code each architecture's authors trained with (engine/schedule.py, docs/method.md):
# face-parsing.PyTorch for BiSeNet (the paper's authors' fork), tegusi/EAGRNet train.py for EAGRNet.
REFERENCE_OPTIM: dict[str, ReferenceOptim] = {
    "bisenet": {"head_lr_mult": 10.0, "decay_norms": False, "warmup_iters": 1000},
    "eagrnet": {"head_lr_mult": 1.0, "decay_norms": True, "warmup_iters": 0},
}
# pix2pix: plain Adam
TRANSLATOR_OPTIM: ReferenceOptim = {"head_lr_mult": 1.0, "decay_norms": True, "warmup_iters": 0}

# The presets ship inside the package (src/faceparse/configs; the repository's configs/ links to it), so
# preset names work from an editable install and from a wheel alike.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DataConfig:
    root: str = ""  # dataset folder (faceparse format or released layout)
    train_split: str = "train"
    val_split: str = "val"
    size: int = 512  # square training crop/resize, pixels
    augment: Augment = "bisenet"  # transform preset
    scales: list[float] | None = None  # bisenet preset's zoom choices; None: face-parsing.PyTorch's 0.75-2
    # bisenet preset's training window, in stored pixels (face-parsing.PyTorch: 448 crops of 512² images,
    # evaluated whole); None: data.size. Evaluation always resizes the whole image to data.size.
    crop: int | None = None
    depth_fraction: float = 0.1  # paper §4.1: 10% of the depth+label pairs
    seed: int = 0  # chooses the depth-annotated subset (independent of run.seed)
    workers: int = 2
    # False: the flip mirrors labels without swapping left/right classes, as face-parsing.PyTorch's does
    # (FACTS §5): only for the left/right-flip diagnostic (SCIENCE.md), never a recipe
    flip_swap: bool = True
    # where the training augmentation runs (faceparse.data.device_augment): `worker` (each loader process
    # decodes and augments a sample with OpenCV), `device` (workers only read and draw each sample's
    # parameters; one batched torch pass applies them on the training device), `auto`: device on CUDA,
    # worker on CPUs, where the batched pass is slower than OpenCV (docs/results.md)
    augment_on: AugmentOn = "auto"


@dataclass
class ModelConfig:
    arch: Arch = "bisenet"  # parsers F_R and F_D (paper §4.2)
    num_classes: int | None = None  # None: from the dataset's label scheme
    generator_num_downs: int | None = None  # None: from data.size (8 for ≥256², FACTS §4)
    generator_ngf: int = 64
    generator_dropout: bool = True
    discriminator: Discriminator = "pixel"  # paper §4.2: "a PixelGAN discriminator"
    discriminator_ndf: int = 64


@dataclass
class OptimConfig:
    """One network family's optimiser, poly schedule, iterations and (global) batch size."""

    optimizer: Optimizer = "sgd"
    lr: float | None = None  # None: PARSER_LR[model.arch]
    momentum: float = 0.9
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    poly_power: float = 0.9
    iterations: int = 100_000
    batch_size: int = 8
    # face-parsing.PyTorch's optimiser (FACTS §4; engine/schedule.py). None: the reference code's value
    # for the architecture (resolve): BiSeNet 10× / no decay on norms and biases / 1,000 warm-up
    # iterations; EAGRNet and the translator 1× / decay everything / no warm-up.
    head_lr_mult: float | None = None  # lr multiplier of BiSeNet's fusion module and output heads
    decay_norms: bool | None = None  # weight decay on normalisation parameters and biases too
    warmup_iters: int | None = None  # geometric warm-up from warmup_start_lr, then poly
    warmup_start_lr: float = 1e-5
    # parsers only: the depth parser's pre-training length when it should differ (None: iterations)
    depth_iterations: int | None = None


def _translator_optim() -> OptimConfig:
    # paper §4.2: Adam, lr 1e-3, poly decay, 200K iterations, batch 1; betas from pix2pix (FACTS §4)
    return OptimConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, iterations=200_000, batch_size=1)


@dataclass
class JointConfig:
    """Joint training (paper §3.2, Eq. 4; §4.2)."""

    lr_scale: float = 0.1  # "reduced to one-tenth of its original value"
    iterations: int = 20_000  # not stated in the paper; see docs/method.md
    batch_size: int = 8  # half depth-annotated, half RGB-labelled
    lambda1: float = 1.0  # L_ML
    lambda2: float = 1.0  # L_E2E
    lambda3: float = 0.5  # L_CLS^RGB
    lambda4: float = 0.5  # L_CLS^Depth
    lambda5: float = 1.0  # L_DT
    warmup_iters: int = 0  # not in the paper: joint training restarts at lr/10 with no warm-up
    # the readings of L_ML the paper leaves open (losses.joint.MutualLearning; docs/method.md); the
    # defaults are the literal Eq. 4
    ml_loss: MLLoss = "mse_logits"
    ml_direction: MLDirection = "both"
    ml_temperature: float = 1.0  # kl only
    ml_warmup: int = 0  # iterations over which λ1 ramps linearly from 0 (0: none)
    depth_bn: DepthBN = "mixed"  # mixed: F_D's one forward over real + generated depth (§4.2) | separate
    # pre-trained checkpoints (a checkpoint dir or a stage dir); None: <run.out>/<stage>
    init_rgb: str | None = None
    init_depth: str | None = None
    init_translator: str | None = None


@dataclass
class RunConfig:
    out: str = "runs/default"
    seed: int = 0
    # auto: bf16-mixed where the hardware runs bf16 natively (CUDA with bf16, CPUs with AVX512-BF16 or
    # AMX), else 32-true; the resolved value is saved with the run (runs/precision.py)
    precision: Precision = "auto"
    channels_last: bool | None = None  # None: on with bf16/fp16 or on CUDA (parsers in NHWC), else off
    eval_every: int = 0  # evaluate the trained networks on data.val_split every N iterations (0: off)
    accelerator: str = "auto"
    # processes (devices) per node and nodes (docs/distributed.md). None: from the launcher (torchrun's
    # LOCAL_WORLD_SIZE and WORLD_SIZE, SLURM's tasks per node and node count), or 1 without one; a value
    # that contradicts the launcher is refused (runs/hardware.py). The resolved values are saved.
    devices: int | None = None
    num_nodes: int | None = None
    strategy: str = "auto"
    # torch.backends.cudnn.benchmark: None = on for CUDA (fixed training shapes: the algorithm search
    # pays once); it changes results only in the last bits
    cudnn_benchmark: bool | None = None
    # torch.compile the networks (inductor); what compiles where, and the speed: docs/results.md
    compile: bool = False
    log_every: int = 50
    ckpt_every: int = 2000
    keep_checkpoints: int = 2
    tensorboard: bool = False
    progress: bool = True


@dataclass
class StudyConfig:
    """``faceparse study``'s design (its CLI options override these): SCIENCE.md §3."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])  # Figure 7
    samples: int = 600  # synthetic heads generated when data.root holds no dataset
    variants: list[str] = field(default_factory=list)  # readings of Eq. 4 (workflows.study.OPTION_VARIANTS)
    flip_diagnostic: bool = False  # the left/right-flip arm (workflows.study)
    gate: bool = True  # stop unless the pre-trained parsers meet eval.gate.COMPETENCE on val


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    parsers: OptimConfig = field(default_factory=OptimConfig)
    translator: OptimConfig = field(default_factory=_translator_optim)
    lambda_l1: float = 100.0  # paper Eq. 1, λ = 100 as in pix2pix
    joint: JointConfig = field(default_factory=JointConfig)
    run: RunConfig = field(default_factory=RunConfig)
    study: StudyConfig = field(default_factory=StudyConfig)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> Any:
    """Load a YAML file, merged over its ``inherit:`` parent or parents (a list, merged in order;
    recursively), e.g. ``inherit: [celebamask-eagrnet.yaml, variants/no-ml.yaml]``."""
    if not path.is_file():
        raise DataError(path, "config file not found")
    if path in seen:
        raise DataError(path, "config inheritance loops back to itself")
    try:
        node = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends
        raise DataError(path, f"not valid YAML ({e})") from None
    if not isinstance(node, DictConfig):  # what OmegaConf.is_dict tests; narrows the type for mypy
        raise DataError(path, "a config file must hold a mapping at the top level")
    parent = node.pop("inherit", None)
    if parent is None:
        return node
    parents = list(parent) if isinstance(parent, ListConfig) else [parent]
    bases = [_read_yaml((path.parent / str(p)).resolve(), (*seen, path)) for p in parents]
    return OmegaConf.merge(*bases, node)


def read_overlay(name: str | os.PathLike) -> dict[str, Any]:
    """A config file or preset (e.g. ``variants/no-ml``) as plain nested overrides, for ``load_config``."""
    overlay = OmegaConf.to_container(_read_yaml(find_config(name)))
    assert isinstance(overlay, dict)  # _read_yaml only returns mappings
    return {str(key): value for key, value in overlay.items()}


def find_config(name: str | os.PathLike) -> Path:
    """A config path, or a preset name looked up in ``configs/`` (``demo`` → ``configs/demo.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    for candidate in (CONFIG_DIR / f"{name}.yaml", CONFIG_DIR / str(name)):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise DataError(path, f"config file not found (presets in {CONFIG_DIR}: {presets})")


Overrides = Sequence[str] | Mapping[str, Any]
"""``key=value`` strings (``["parsers.iterations=100"]``, as on the command line) or a mapping, with dotted
or nested keys (``{"parsers.iterations": 100}`` or ``{"parsers": {"iterations": 100}}``)."""


def load_config(source: str | os.PathLike | Config | None = None, overrides: Overrides = ()) -> Config:
    """A :class:`Config` from defaults, a YAML file or preset name (or a ``Config``), and overrides."""
    where: Path | None = None
    try:
        if isinstance(source, Config):
            merged = OmegaConf.structured(source)
        else:
            layers = [OmegaConf.structured(Config)]
            if source is not None:
                where = find_config(source)
                layers.append(_read_yaml(where))
            merged = OmegaConf.merge(*layers)
        if overrides:
            where = None
            merged = OmegaConf.merge(merged, _overrides_node(overrides))
        cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        problem = e.msg if hasattr(e, "msg") else str(e)
        raise DataError(where, f"invalid config: {key + ': ' if key else ''}{problem}") from None
    validate(cfg)
    return cfg


def _overrides_node(overrides: Overrides) -> DictConfig:
    if isinstance(overrides, Mapping):
        nested: dict[str, Any] = {}
        for key, value in overrides.items():
            *parents, leaf = str(key).split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return OmegaConf.create(nested)
    if isinstance(overrides, str):
        raise ValueError(f"overrides must be a list of key=value strings or a mapping, got {overrides!r}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"overrides must be key=value, got {bad[0]!r}")
    return OmegaConf.from_dotlist(list(overrides))


def validate(cfg: Config) -> None:
    """Reject values the engine cannot run with, naming the key."""
    checks = [
        (0.0 < cfg.data.depth_fraction <= 1.0, "data.depth_fraction must be in (0, 1]"),
        (cfg.data.size >= 16, "data.size must be at least 16"),
        (not cfg.data.scales or min(cfg.data.scales) > 0, "data.scales must be positive zoom factors"),
        (cfg.data.crop is None or cfg.data.crop >= 16, "data.crop must be at least 16 (or null: data.size)"),
        (
            cfg.data.crop is None or cfg.data.augment == "bisenet",
            "data.crop applies to the bisenet augmentation only (eagrnet fits the whole image to data.size)",
        ),
        (
            cfg.joint.batch_size >= 2 and cfg.joint.batch_size % 2 == 0,
            "joint.batch_size must be even (half/half)",
        ),
        (cfg.data.workers >= 0, "data.workers must be ≥ 0 (0: load in the training process)"),
        (cfg.run.ckpt_every >= 1 and cfg.run.log_every >= 1, "run.ckpt_every and run.log_every must be ≥ 1"),
        (cfg.run.keep_checkpoints >= 0, "run.keep_checkpoints must be ≥ 0 (0: keep every checkpoint)"),
        (
            cfg.run.devices is None or cfg.run.devices >= 1,
            "run.devices must be ≥ 1 (or null: the launcher's)",
        ),
        (
            cfg.run.num_nodes is None or cfg.run.num_nodes >= 1,
            "run.num_nodes must be ≥ 1 (or null: the launcher's)",
        ),
        (cfg.run.eval_every >= 0, "run.eval_every must be ≥ 0 (0: no validation during training)"),
        (cfg.joint.warmup_iters >= 0, "joint.warmup_iters must be ≥ 0"),
        (cfg.joint.ml_warmup >= 0, "joint.ml_warmup must be ≥ 0"),
    ]
    for name in ("parsers", "translator"):
        optim: OptimConfig = getattr(cfg, name)
        checks.append(
            (optim.iterations >= 1 and optim.batch_size >= 1, f"{name}.iterations/batch_size must be ≥ 1")
        )
        checks.append(
            (optim.head_lr_mult is None or optim.head_lr_mult > 0, f"{name}.head_lr_mult must be > 0")
        )
        checks.append(
            (optim.warmup_iters is None or optim.warmup_iters >= 0, f"{name}.warmup_iters must be ≥ 0")
        )
        checks.append((optim.warmup_start_lr > 0, f"{name}.warmup_start_lr must be > 0"))
        checks.append(
            (
                optim.depth_iterations is None or optim.depth_iterations >= 1,
                f"{name}.depth_iterations must be ≥ 1",
            )
        )
    for i in range(1, 6):
        checks.append((getattr(cfg.joint, f"lambda{i}") >= 0.0, f"joint.lambda{i} must be ≥ 0"))
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    mutual_learning(cfg)  # its own checks name the key


def mutual_learning(cfg: Config) -> MutualLearning:
    """The L_ML reading of ``cfg.joint`` (``joint.ml_loss``, ``ml_direction``, ``ml_temperature``)."""
    from faceparse.losses.joint import MutualLearning

    return MutualLearning(cfg.joint.ml_loss, cfg.joint.ml_direction, cfg.joint.ml_temperature)


def joint_weights(cfg: Config) -> JointWeights:
    """The λ of Eq. 4 and of Eq. 1 from the config, their one home (defaults: §4.2's values)."""
    from faceparse.losses.joint import JointWeights

    j = cfg.joint
    return JointWeights(j.lambda1, j.lambda2, j.lambda3, j.lambda4, j.lambda5, cfg.lambda_l1)


def resolve(cfg: Config, num_classes: int) -> Config:
    """Fill the values that depend on others; the result is what a run saves and checkpoints carry."""
    cfg.model.num_classes = cfg.model.num_classes or num_classes
    if cfg.parsers.lr is None:
        cfg.parsers.lr = PARSER_LR[cfg.model.arch]
    if cfg.translator.lr is None:
        cfg.translator.lr = 1e-3
    reference = REFERENCE_OPTIM[cfg.model.arch]
    for optim, ref in ((cfg.parsers, reference), (cfg.translator, TRANSLATOR_OPTIM)):
        if optim.head_lr_mult is None:
            optim.head_lr_mult = ref["head_lr_mult"]
        if optim.decay_norms is None:
            optim.decay_norms = ref["decay_norms"]
        if optim.warmup_iters is None:
            optim.warmup_iters = ref["warmup_iters"]
    if cfg.run.precision == "auto":
        from faceparse.runs.precision import auto_precision

        cfg.run.precision = auto_precision(cfg.run.accelerator)
    if cfg.data.augment_on == "auto":
        from faceparse.runs.precision import uses_cuda

        cfg.data.augment_on = "device" if uses_cuda(cfg.run.accelerator) else "worker"
    if cfg.run.channels_last is None:  # with the fast precision only: fp32 at 448² measured no gain (AVX2)
        from faceparse.runs.precision import uses_cuda

        cfg.run.channels_last = cfg.run.precision != "32-true" or uses_cuda(cfg.run.accelerator)
    if cfg.run.cudnn_benchmark is None:
        from faceparse.runs.precision import uses_cuda

        cfg.run.cudnn_benchmark = uses_cuda(cfg.run.accelerator)
    if cfg.run.devices is None or cfg.run.num_nodes is None:  # from torchrun's or SLURM's layout (or 1)
        from faceparse.runs.hardware import topology

        cfg.run.devices, cfg.run.num_nodes = topology(cfg.run.devices, cfg.run.num_nodes)
    if cfg.model.generator_num_downs is None:
        from faceparse.models.pix2pix import num_downs_for  # 8 for ≥256², else the most exact halvings

        # the U-Net sees training windows (data.crop) and whole images (data.size): both must halve exactly
        cfg.model.generator_num_downs = min(num_downs_for(cfg.data.size), num_downs_for(train_window(cfg)))
    return cfg


def train_window(cfg: Config) -> int:
    """The side of the training window: ``data.crop``, or ``data.size`` when unset."""
    return cfg.data.crop if cfg.data.crop is not None else cfg.data.size


# What a resumed stage may change (``faceparse train --resume``): how the run is watched, logged and
# saved, what it reads only when a stage starts from scratch, and how long it trains; never how it
# trains. A key ending in "." covers its whole section. Any other change is refused: the recorded config
# would no longer be what the networks were trained with. The accepted changes are recorded in the stage
# folder (engine.loop), so a run whose length changed says from which iteration its poly schedule was
# laid out over the new length.
RESUME_SAFE = (
    "data.workers",  # loader processes: batches are a pure function of (seed, iteration) (engine.sampling)
    "data.val_split",  # what validation scores, not what trains
    # the same drawn augmentation either way (tests/test_device_augment.py); e.g. a CPU run resumed on a GPU
    "data.augment_on",
    "run.out",  # the run folder itself, e.g. moved
    "run.progress",
    "run.log_every",
    "run.ckpt_every",
    "run.keep_checkpoints",
    "run.eval_every",
    "run.tensorboard",
    # how fast, not what: these change results only in the last bits (kernel choice, fusion)
    "run.cudnn_benchmark",
    "run.compile",
    "parsers.iterations",  # train longer (or shorter): the schedule continues over the new length
    "parsers.depth_iterations",
    "translator.iterations",
    "joint.iterations",
    "joint.init_rgb",  # read only when the joint stage starts without a checkpoint
    "joint.init_depth",
    "joint.init_translator",
    "study.",  # faceparse study's design; training never reads it
)


def resume_safe(key: str) -> bool:
    """Whether the dotted ``key`` may change when a stage resumes (:data:`RESUME_SAFE`)."""
    return any(key == safe or (safe.endswith(".") and key.startswith(safe)) for safe in RESUME_SAFE)


def config_changes(recorded: Mapping[str, Any], cfg: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted key → (recorded value, value now) where the resolved ``cfg`` differs from ``recorded``, a
    resolved config as a checkpoint stores it (``to_dict``). Keys that ``recorded`` lacks (added to
    faceparse since it was written) are not compared."""
    before, now = _flatten(recorded), _flatten(to_dict(cfg))
    return {key: (before[key], value) for key, value in now.items() if key in before and before[key] != value}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg))  # type: ignore[return-value]


def from_dict(obj: dict[str, Any]) -> Config:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), obj))  # type: ignore[return-value]
