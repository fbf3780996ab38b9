"""The training loop shared by every stage: Fabric setup, data, resume, checkpoints, logging, signals.

``train(config, stage)`` is the library entry point behind ``faceparse train``. Run folders::

    <run.out>/<stage>/config.yaml            the resolved config of that stage
    <run.out>/<stage>/metrics.csv            one row per logged iteration
    <run.out>/<stage>/val.csv                per-class validation scores every run.eval_every iterations
    <run.out>/<stage>/checkpoints/iter-*/    see faceparse.runs.checkpoint

Lightning Fabric owns devices, precision and distribution (the same code runs on one CPU, one GPU or
under ``torchrun``/``fabric run`` with DDP); everything else is a plain PyTorch loop.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from faceparse.engine.compiled import compile_networks
from faceparse.engine.joint import joint_step
from faceparse.engine.logging import MetricsLog
from faceparse.engine.networks import Networks, NetworkSpec, Optimizers, network_specs
from faceparse.engine.pretrain import (
    NonFiniteLoss,
    depth_parser_step,
    rgb_parser_step,
    translator_step,
    unwrap,
)
from faceparse.engine.sampling import IterationBatches, Pool, SeededItems, mix_seed, seed_everything
from faceparse.engine.schedule import make_optimizer, scheduler_for
from faceparse.runs import checkpoint as ckpt
from faceparse.runs.config import (
    RESUME_SAFE,
    Config,
    Overrides,
    config_changes,
    joint_weights,
    load_config,
    mutual_learning,
    resolve,
    resume_safe,
    to_dict,
    to_yaml,
    train_window,
)
from faceparse.runs.hardware import cudnn_benchmark, loader_options, topology
from faceparse.runs.stages import (
    JOINT,
    PRETRAIN_DEPTH,
    PRETRAIN_RGB,
    PRETRAIN_TRANSLATOR,
    Stage,
    StagePlan,
    get_stage,
    stages_of,
)
from faceparse.utils.io import DataError, atomic_write_json, atomic_write_text, read_json, remove_temporaries
from faceparse.utils.locks import folder_lock
from faceparse.utils.progress import ProgressFactory, console

if TYPE_CHECKING:
    from faceparse.losses import JointWeights


class TrainingStopped(RuntimeError):
    """The run stopped early: interrupted (a checkpoint was saved) or a non-finite loss (none was)."""


# --- public entry points ----------------------------------------------------------------------------------


def train(
    config: Config | str | os.PathLike | None = None,
    stage: str | Stage = "all",
    resume: bool = False,
    overrides: Overrides = (),
    fabric: Any = None,
    progress: ProgressFactory | None = None,
) -> Path:
    """Run one stage (``pretrain-rgb``, ``pretrain-depth``, ``pretrain-translator``, ``joint``) or ``all``.

    ``config`` is a :class:`Config`, a YAML path or a preset name (None: the defaults); ``overrides``,
    ``key=value`` strings or a mapping (``{"parsers.iterations": 100}``), apply to any of them. ``all``
    runs the four stages in order; joint training starts from the three pre-trained stages' last
    checkpoints (discriminator included). ``resume`` continues each stage from its last checkpoint
    exactly (a finished stage is skipped). Returns the last checkpoint folder written.

    ``progress`` opens one progress report per stage (``faceparse.utils.progress.progress_bar`` draws
    a bar with the loss terms; the CLI passes it when ``run.progress`` is on); None reports nothing.
    """
    cfg = config if isinstance(config, Config) and not overrides else load_config(config, overrides)
    stages = stages_of(stage)  # validates the name
    if fabric is None:
        fabric = make_fabric(cfg)
        fabric.launch()
    last: Path | None = None
    for each in stages:
        last = run_stage(fabric, cfg, each, resume=resume, progress=progress)
    assert last is not None
    return last


def make_fabric(cfg: Config) -> Any:
    from lightning_fabric import Fabric

    from faceparse.runs.precision import resolved_precision

    precision = resolved_precision(cfg.run.precision, cfg.run.accelerator)
    # under torchrun or srun: the launcher's layout, or a ValueError naming the key that contradicts it
    devices, num_nodes = topology(cfg.run.devices, cfg.run.num_nodes)
    try:
        return Fabric(
            accelerator=cfg.run.accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=cfg.run.strategy,
            precision=precision,
        )
    except (ValueError, RuntimeError, ImportError) as e:  # e.g. run.accelerator=cuda on a CPU-only build
        run = cfg.run
        raise ValueError(
            f"run.accelerator={run.accelerator}, run.devices={devices}, run.num_nodes={num_nodes}, "
            f"run.strategy={run.strategy}, run.precision={precision}: {e}"
        ) from None


# --- one stage --------------------------------------------------------------------------------------------


def _open_dataset(cfg: Config) -> Any:
    from faceparse.data.dataset import FaceParsingDataset
    from faceparse.data.format import open_layout
    from faceparse.data.transforms import build_transform

    if not cfg.data.root:
        raise ValueError("data.root is not set: pass data.root=PATH or use a config that sets it")
    scheme = open_layout(cfg.data.root).scheme
    train_aug = cfg.data.augment != "none"
    preset = cfg.data.augment if train_aug else "bisenet"
    transform = build_transform(
        preset,
        train_window(cfg) if train_aug else cfg.data.size,
        scheme,
        train=train_aug,
        scales=cfg.data.scales,
        flip_swap=cfg.data.flip_swap,
    )
    return FaceParsingDataset(
        cfg.data.root,
        cfg.data.train_split,
        depth_fraction=cfg.data.depth_fraction,
        seed=cfg.data.seed,
        transform=transform,
    )


def _pools(dataset: Any, stage: Stage, plan: StagePlan, seed: int) -> list[tuple[Pool, int]]:
    """Which samples feed the stage (paper §4.1-4.2): F_R all RGB-labelled; F_D and G the depth subset."""
    all_indices = list(range(len(dataset)))
    depth_indices = dataset.depth_indices()
    if stage.pools != "rgb" and not depth_indices:
        raise DataError(dataset.layout.root, f"no depth-annotated training samples for stage {stage.name!r}")
    stream = stage.index * 2
    if stage.pools == "rgb":
        return [(Pool(all_indices, seed, stream), plan.batch_size)]
    if stage.pools == "depth":
        return [(Pool(depth_indices, seed, stream), plan.batch_size)]
    half = plan.batch_size // 2  # joint: [depth-annotated half | RGB-labelled half]
    return [(Pool(depth_indices, seed, stream), half), (Pool(all_indices, seed, stream + 1), half)]


def _loader(
    dataset: Any, pools: list[tuple[Pool, int]], cfg: Config, start: int, end: int, fabric: Any
) -> Any:
    from torch.utils.data import DataLoader

    from faceparse.data.device_augment import collate_planned

    # the global rank and world size (across nodes, not this node's local rank): each rank's share
    sampler = IterationBatches(pools, cfg.run.seed, start, end, fabric.global_rank, fabric.world_size)
    planned = _on_device(cfg)
    loader = DataLoader(
        SeededItems(dataset, planned=planned),
        batch_sampler=sampler,
        collate_fn=collate_planned if planned else None,
        num_workers=cfg.data.workers,
        persistent_workers=False,
        **loader_options(fabric.device),  # pinned memory for CUDA
    )
    # our sampler already gives each rank its share, as a pure function of (seed, iteration); Fabric moves
    # each batch to the device, non-blocking for CUDA (so pinned memory makes the copy asynchronous)
    return fabric.setup_dataloaders(loader, use_distributed_sampler=False)


def _on_device(cfg: Config) -> bool:
    """Whether the training augmentation runs on the device (``data.augment_on``, resolved)."""
    return cfg.data.augment_on == "device" and cfg.data.augment != "none"


def _device_augment(cfg: Config, scheme: Any) -> Callable[[dict], dict] | None:
    """The batch-level augmentation of ``data.augment_on=device`` (None: the workers augment)."""
    if not _on_device(cfg):
        return None
    from faceparse.data.device_augment import DeviceAugment  # torch ops on the batch's device

    window = train_window(cfg)
    return DeviceAugment(scheme, (window, window))


def build_networks(cfg: Config, specs: dict[str, NetworkSpec], roles: tuple[str, ...]) -> Networks:
    """A stage's networks as training runs them: built from ``specs``, parsers in NHWC with
    ``run.channels_last``, compiled in place with ``run.compile`` (benchmarks/gpu.py builds them here too)."""
    networks = Networks(**{role: specs[role].build() for role in roles})
    if cfg.run.channels_last:  # the parsers are plain conv nets: NHWC is faster on CPU and GPU
        for role in ("parser_rgb", "parser_depth"):
            if getattr(networks, role, None) is not None:
                setattr(networks, role, getattr(networks, role).to(memory_format=torch.channels_last))
    if cfg.run.compile:  # in place: the state_dict keys stay the plain module's (no "_orig_mod.")
        compile_networks(networks)
    return networks


def _init_from_pretrained(cfg: Config, networks: Networks, specs: dict[str, NetworkSpec]) -> dict[str, str]:
    """Joint training starts from the pre-trained networks (paper §3.2); returns role → checkpoint used."""
    sources = {"parser_rgb": cfg.joint.init_rgb, "parser_depth": cfg.joint.init_depth}
    sources |= {"generator": cfg.joint.init_translator, "discriminator": cfg.joint.init_translator}
    used = {}
    for role, module in networks.items():
        init_stage = JOINT.init_from[role]
        source = sources[role] or str(Path(cfg.run.out) / init_stage.name)
        try:
            checkpoint = ckpt.find_checkpoint(source)
        except DataError:
            raise DataError(
                source,
                f"no pre-trained {role} checkpoint: run `faceparse train ... {init_stage.name}` first",
            ) from None
        stored = ckpt.read_meta(checkpoint)["networks"].get(role)
        if (
            stored is None
            or stored["builder"] != specs[role].builder
            or stored["kwargs"] != specs[role].kwargs
        ):
            raise DataError(
                checkpoint, f"{role} in this checkpoint ({stored}) does not match the config ({specs[role]})"
            )
        ckpt.load_weights(module, checkpoint, role)
        used[role] = str(checkpoint)
    return used


def run_stage(
    fabric: Any,
    cfg: Config,
    stage: str | Stage,
    resume: bool = False,
    progress: ProgressFactory | None = None,
) -> Path:
    """Train one stage to its configured iteration count; returns its last checkpoint folder.

    The stage folder is locked meanwhile: a second run into it is refused, naming this one's pid. A
    resumed stage may change only :data:`~faceparse.runs.config.RESUME_SAFE` keys; others are refused,
    and the accepted changes are recorded in ``<stage>/config_changes.json``.
    """
    stage = get_stage(stage)
    cfg = copy.deepcopy(cfg)
    dataset = _open_dataset(cfg)
    resolve(cfg, dataset.scheme.num_classes)
    with _stage_lock(fabric, Path(cfg.run.out) / stage.name, stage):
        return _run_stage(fabric, cfg, stage, dataset, resume, progress)


@contextmanager
def _stage_lock(fabric: Any, stage_dir: Path, stage: Stage) -> Iterator[None]:
    """One process trains a stage folder at a time (faceparse.utils.locks). Rank 0 holds the lock and,
    holding it, clears what a killed run left: temporary files and checkpoint folders, a cut swap."""
    problem = None
    with ExitStack() as held:
        if fabric.global_rank == 0:
            try:
                held.enter_context(folder_lock(stage_dir, f"faceparse train {stage.name}"))
            except DataError as e:
                problem = e.problem
            else:
                ckpt.clean_interrupted_saves(stage_dir / ckpt.CHECKPOINT_DIR)
                remove_temporaries(stage_dir)
        if fabric.world_size > 1:  # every rank stops, not rank 0 alone; and none looks before the cleanup
            problem = fabric.broadcast(problem, src=0)
        if problem is not None:
            raise DataError(stage_dir, problem)
        yield


def _run_stage(
    fabric: Any, cfg: Config, stage: Stage, dataset: Any, resume: bool, progress: ProgressFactory | None
) -> Path:
    from faceparse.losses import parser_loss

    scheme = dataset.scheme
    plan = stage.plan(cfg)
    stage_dir = Path(cfg.run.out) / stage.name
    checkpoints = stage_dir / ckpt.CHECKPOINT_DIR
    existing = ckpt.latest_checkpoint(stage_dir)
    if existing is not None and not resume:
        raise DataError(
            stage_dir, "already holds checkpoints: pass --resume to continue, or choose another run.out"
        )
    rank0 = fabric.global_rank == 0
    changes: dict[str, tuple[Any, Any]] = {}
    if existing is not None:
        done = int(ckpt.read_meta(existing).get("iteration", 0))
        if done >= plan.iterations:  # nothing to train: its folder, config.yaml included, stays as it is
            if rank0:
                console.print(f"[green]{stage}[/green]: already complete at iteration {done} ({existing})")
            return existing
        changes = _resume_changes(existing, cfg)
    if rank0:
        stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stage_dir / "config.yaml", to_yaml(cfg))
        if existing is not None and changes:
            _record_changes(stage_dir, existing, changes)

    # networks: identical initialisation on every rank (DDP also broadcasts rank 0's weights)
    seed_everything(mix_seed(cfg.run.seed, stage.index))
    specs = network_specs(cfg)
    networks = build_networks(cfg, specs, plan.roles)
    torch.backends.cudnn.benchmark = cudnn_benchmark(cfg.run.cudnn_benchmark, fabric.device)
    init_sources = _init_from_pretrained(cfg, networks, specs) if stage.init_from and existing is None else {}
    state = ckpt.read_state(existing) if existing is not None else None
    start = int(state["iteration"]) if state is not None else 0
    if existing is not None:
        for role, module in networks.items():
            ckpt.load_weights(module, existing, role)
    optimizers, schedulers = _setup_optimization(fabric, networks, plan, state)

    loss_fn = parser_loss(cfg.model.arch)
    weights = joint_weights(cfg)
    step = STEPS[stage](StepContext(networks, optimizers, loss_fn, weights, cfg, fabric.backward, start))
    loader = _loader(dataset, _pools(dataset, stage, plan, cfg.run.seed), cfg, start, plan.iterations, fabric)
    meta = {
        "stage": stage.name,
        "config": to_dict(cfg),
        "scheme": {"name": scheme.name, **scheme.to_dict()},
        "framing": _framing(cfg.data.root),  # what `predict --align` warps faces into
        # the metric span of the depth encoding: inference converts metric depth with the same one
        "depth": {"range": dataset.layout.info.depth.range, "unit": dataset.layout.info.depth.unit},
        "networks": {role: specs[role].to_json() for role in plan.roles},
        "init_from": init_sources or (state or {}).get("init_from", {}),
        "world_size": fabric.world_size,
        "torch": torch.__version__,
    }

    def save(iteration: int) -> Path:
        path = checkpoints / ckpt.checkpoint_name(iteration)
        if rank0:
            plain = {role: unwrap(module) for role, module in networks.items()}
            train_state = {
                "optimizers": {role: opt.state_dict() for role, opt in optimizers.items()},
                "schedulers": {role: sch.state_dict() for role, sch in schedulers.items()},
                "rng": ckpt.capture_rng(),
                "sampler": {"seed": cfg.run.seed, "iteration": iteration},
                "init_from": meta["init_from"],
                "train_seconds": hooks.tick(),
            }
            stamped = {**meta, "saved_at": datetime.now(UTC).isoformat(timespec="seconds")}
            path = ckpt.save_checkpoint(
                checkpoints, iteration, plain, train_state, stamped, keep=cfg.run.keep_checkpoints
            )
        fabric.barrier()
        return path

    log = MetricsLog(stage_dir, start, cfg.run.tensorboard, enabled=rank0)
    val_log = MetricsLog(stage_dir, start, enabled=rank0 and cfg.run.eval_every > 0, filename="val.csv")

    def validate(iteration: int) -> None:
        if rank0:
            # compiled networks validate eagerly: no compiling for the evaluation shapes
            with torch.compiler.set_stance("force_eager") if cfg.run.compile else nullcontext():
                values = validation_scores(cfg, networks, meta, fabric.device)
            val_log.log(iteration, {"train_s": hooks.train_seconds, **values})  # ticked by the loop
            shown = {k: v for k, v in values.items() if k.endswith(("mean_f1", "translation_l1"))}
            scores = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
            console.print(f"{stage} iteration {iteration}: val {scores}", soft_wrap=True)
        fabric.barrier()

    hooks = _Hooks(save, log, validate if cfg.run.eval_every > 0 else None)
    hooks.train_seconds = float((state or {}).get("train_seconds", 0.0))
    hooks.restart_clock()
    last = existing
    try:
        run = _StageRun(
            fabric,
            cfg,
            stage,
            plan,
            step,
            schedulers,
            hooks,
            progress if rank0 else None,
            _device_augment(cfg, scheme),
        )
        last = _iterate(run, loader, start, last)
    finally:
        log.close()
        val_log.close()
    assert last is not None
    return last


def _framing(root: str) -> dict[str, Any] | None:
    """The framing the training data records (a ``faceparse synth`` set's), as ``meta.json`` keeps it."""
    from faceparse.inference.align import dataset_framing

    framing = dataset_framing(root)
    return None if framing is None else framing.to_json()


def _resume_changes(existing: Path, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """The config changes since ``existing`` was saved, for a stage to train on from it; raises
    :class:`DataError` naming every change that is not resume-safe, with its old and new value."""
    changes = config_changes(ckpt.read_meta(existing).get("config", {}), cfg)
    refused = {key: values for key, values in changes.items() if not resume_safe(key)}
    if refused:
        listed = "; ".join(f"{key}: {old!r} → {new!r}" for key, (old, new) in refused.items())
        raise DataError(
            existing / ckpt.META_FILE,
            f"--resume with a changed config ({listed}): the run was trained with the recorded values. "
            f"Restore them, or train into another run.out (only {', '.join(RESUME_SAFE)} may change)",
        )
    return changes


CONFIG_CHANGES = "config_changes.json"


def _record_changes(stage_dir: Path, existing: Path, changes: dict[str, tuple[Any, Any]]) -> None:
    """Append the resume-safe changes accepted now to ``<stage>/config_changes.json`` (and say them)."""
    path = stage_dir / CONFIG_CHANGES
    history = read_json(path) if path.is_file() else []
    history.append(
        {
            "resumed_from": existing.name,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "changes": {key: {"from": old, "to": new} for key, (old, new) in changes.items()},
        }
    )
    atomic_write_json(path, history)
    listed = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changes.items())
    console.print(f"[yellow]resuming {existing} with[/yellow] {listed} (recorded in {path})", soft_wrap=True)


@dataclass
class _Hooks:
    """What the loop calls besides the step: checkpoint saving, logging, validation; and its clock."""

    save: Callable[[int], Path]
    log: MetricsLog
    validate: Callable[[int], None] | None = None
    train_seconds: float = 0.0  # wall seconds spent training this stage (excluding validation), resumed
    _mark: float = 0.0

    def tick(self) -> float:
        """Add the time since the last tick to ``train_seconds`` and return it."""
        now = time.perf_counter()
        self.train_seconds += now - self._mark
        self._mark = now
        return self.train_seconds

    def restart_clock(self) -> None:
        """Start counting from now (time spent since the last tick, e.g. validating, is not training)."""
        self._mark = time.perf_counter()


def validation_scores(cfg: Config, networks: Networks, meta: dict[str, Any], device: Any) -> dict[str, float]:
    """Per-class F1 (percent) of the stage's parsers and the translator's L1 on ``data.val_split``."""
    from faceparse.eval.results import PARSING_TASKS
    from faceparse.eval.run import evaluate_networks

    plain = {role: unwrap(module) for role, module in networks.items() if role != "discriminator"}
    try:
        result = evaluate_networks(
            plain, meta, cfg.data.root, cfg.data.val_split, size=cfg.data.size, device=device, num_examples=0
        )
    finally:
        for module in plain.values():
            module.train()
    values: dict[str, float] = {}
    for task in PARSING_TASKS:
        scores = result.parsing(task)
        if scores is not None:
            values[f"{task}_mean_f1"] = scores.mean_f1
            values |= {f"{task}_{name}": f1 for name, f1 in scores.per_class.items()}
    if result.translation is not None:
        values["translation_l1"] = result.translation.l1
        values["translation_l1_fg"] = result.translation.l1_fg
    return values


def _setup_optimization(
    fabric: Any, networks: Networks, plan: StagePlan, state: dict[str, Any] | None
) -> tuple[Optimizers, dict[str, Any]]:
    """Optimisers and poly schedulers per network, set up by Fabric; restored from ``state`` on resume."""
    optimizers, schedulers = Optimizers(), {}
    for role, module in networks.items():
        optim_cfg, scale = plan.optim[role]
        optimizer = make_optimizer(module, optim_cfg, scale)
        schedulers[role] = scheduler_for(optimizer, optim_cfg, plan.iterations, plan.warmup[role])
        wrapped, wrapped_optimizer = fabric.setup(module, optimizer)
        setattr(networks, role, wrapped)
        setattr(optimizers, role, wrapped_optimizer)
    if state is not None:  # after setup, so optimiser state lands on the parameters' device
        for role, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][role])
            schedulers[role].load_state_dict(state["schedulers"][role])
        ckpt.restore_rng(state["rng"])
    return optimizers, schedulers


@dataclass(frozen=True)
class StepContext:
    """What a stage's step function closes over."""

    nets: Networks
    opts: Optimizers
    loss_fn: Callable
    weights: JointWeights
    cfg: Config
    backward: Callable
    start: int = 0  # the first iteration this run trains (a resumed stage starts there)


Step = Callable[[dict], dict[str, torch.Tensor]]


def _rgb_step(c: StepContext) -> Step:
    return lambda batch: rgb_parser_step(
        c.nets.require("parser_rgb"), c.opts.parser_rgb, batch, c.loss_fn, c.backward
    )


def _depth_step(c: StepContext) -> Step:
    parser_depth = c.nets.require
    return lambda batch: depth_parser_step(
        parser_depth("parser_depth"), c.opts.parser_depth, batch, c.loss_fn, c.backward
    )


def _translator_step(c: StepContext) -> Step:
    return lambda batch: translator_step(
        c.nets.require("generator"),
        c.nets.require("discriminator"),
        c.opts.generator,
        c.opts.discriminator,
        batch,
        c.cfg.lambda_l1,
        c.backward,
    )


def _joint_step(c: StepContext) -> Step:
    ml, depth_bn, ramp = mutual_learning(c.cfg), c.cfg.joint.depth_bn, c.cfg.joint.ml_warmup
    iterations = itertools.count(c.start)  # the iteration each call trains (a resumed stage starts at start)

    def joint(batch: dict) -> dict[str, torch.Tensor]:
        iteration = next(iterations)
        weights = c.weights
        if ramp and iteration < ramp:  # joint.ml_warmup: λ1 ramps linearly from 0
            weights = dataclasses.replace(weights, lambda1=weights.lambda1 * (iteration + 1) / ramp)
        return joint_step(c.nets, c.opts, batch, weights, c.loss_fn, c.backward, ml, depth_bn)

    return joint


# each stage's step function (paper §3.2 and Eq. 4), keyed by the stage objects of faceparse.runs.stages
STEPS: dict[Stage, Callable[[StepContext], Step]] = {
    PRETRAIN_RGB: _rgb_step,
    PRETRAIN_DEPTH: _depth_step,
    PRETRAIN_TRANSLATOR: _translator_step,
    JOINT: _joint_step,
}


@dataclass
class _StageRun:
    """One stage's training run, as the loop sees it."""

    fabric: Any
    cfg: Config
    stage: Stage
    plan: StagePlan
    step: Step
    schedulers: dict[str, Any]
    hooks: _Hooks
    progress: ProgressFactory | None = None  # rank 0 only
    augment: Callable[[dict], dict] | None = None  # data.augment_on=device: applied to each batch


def _iterate(run: _StageRun, loader: Any, start: int, last: Path | None) -> Path:
    """Iterations ``start`` → the plan's end over ``loader``; returns the last checkpoint written."""
    fabric, cfg, stage, plan, step = run.fabric, run.cfg, run.stage, run.plan, run.step
    schedulers, hooks = run.schedulers, run.hooks
    iteration = start
    tic, images_seen = time.perf_counter(), 0
    hooks.restart_clock()
    with (
        _stop_requests() as stop_requested,
        run.progress(stage.name) if run.progress is not None else nullcontext() as on_progress,
    ):
        if on_progress is not None:
            on_progress(start, plan.iterations, "")
        try:
            for batch in loader:
                if run.augment is not None:
                    batch = run.augment(batch)
                if cfg.run.channels_last:
                    batch = channels_last_batch(batch)
                # dropout and other in-step draws: a pure function of (seed, rank, iteration): exact resume
                torch.manual_seed(mix_seed(cfg.run.seed, fabric.global_rank, iteration, 7))
                try:
                    with fabric.autocast():
                        terms = step(batch)
                except NonFiniteLoss as e:
                    e.iteration = iteration + 1
                    where = f"last good checkpoint: {last}" if last else "no checkpoint was written yet"
                    message = f"loss term {e.term!r} became {e.value} at iteration {e.iteration}"
                    raise TrainingStopped(f"{stage}: {message}; stopped, {where}") from e
                for scheduler in schedulers.values():
                    scheduler.step()
                iteration += 1
                images_seen += batch["rgb"].shape[0] * fabric.world_size
                values = {name: float(value) for name, value in terms.items()}
                if on_progress is not None:
                    losses = (
                        f"{k.removeprefix('loss_')}={v:.3f}" for k, v in values.items() if k[:4] == "loss"
                    )
                    on_progress(iteration, plan.iterations, " ".join(losses))
                if iteration % cfg.run.log_every == 0 or iteration == plan.iterations:
                    elapsed = time.perf_counter() - tic
                    reduced = {
                        k: float(fabric.all_reduce(v.float(), reduce_op="mean")) for k, v in terms.items()
                    }
                    lr = {f"lr_{role}": s.get_last_lr()[0] for role, s in schedulers.items()}
                    row = {**reduced, **lr, "images_per_s": images_seen / max(elapsed, 1e-9)}
                    hooks.log.log(iteration, {**row, "train_s": hooks.tick()})
                    tic, images_seen = time.perf_counter(), 0
                if iteration % cfg.run.ckpt_every == 0 or iteration == plan.iterations:
                    last = hooks.save(iteration)
                every = cfg.run.eval_every
                if hooks.validate is not None and (iteration % every == 0 or iteration == plan.iterations):
                    hooks.tick()
                    hooks.validate(iteration)
                    hooks.restart_clock()
                    tic = time.perf_counter()
                if _any_rank(fabric, stop_requested()):
                    if iteration % cfg.run.ckpt_every and iteration != plan.iterations:
                        last = hooks.save(iteration)
                    raise TrainingStopped(
                        f"{stage}: interrupted at iteration {iteration}; checkpoint saved at {last}"
                    )
        except DataError as e:  # a bad file: keep what was trained, then stop naming it
            raise _stopped_by_bad_data(run, e, iteration, last) from None
    if last is None:
        raise TrainingStopped(f"{stage}: no iterations were run")
    return last


def _stopped_by_bad_data(run: _StageRun, error: DataError, iteration: int, last: Path | None) -> DataError:
    """Save the iterations trained since the last checkpoint, then the error to raise: the bad file's,
    with where training stopped and what ``--resume`` continues from."""
    if last is not None and last.name == ckpt.checkpoint_name(iteration):
        where = f"checkpoint {last} holds it"
    elif iteration == 0:
        where = "nothing was trained yet"
    elif run.fabric.world_size == 1:
        last = run.hooks.save(iteration)
        where = f"checkpoint saved at {last}"
    else:  # a save waits for every rank, and the others are not stopping here
        where = f"no checkpoint saved (DDP); the last one is {last}"
    return DataError(
        error.path,
        f"{error.problem}. Training ({run.stage}) stopped at iteration {iteration}, {where}; "
        "fix or replace the file, then rerun with --resume",
    )


def channels_last_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its image tensors (4-D) in NHWC memory layout; other entries unchanged."""
    return {
        key: value.contiguous(memory_format=torch.channels_last)
        if isinstance(value, torch.Tensor) and value.ndim == 4
        else value
        for key, value in batch.items()
    }


def _any_rank(fabric: Any, flag: bool) -> bool:
    if fabric.world_size == 1:
        return flag
    return bool(fabric.all_reduce(torch.tensor(float(flag)), reduce_op="sum") > 0)


@contextmanager
def _stop_requests() -> Iterator[Callable[[], bool]]:
    """Ctrl-C / SIGTERM request a stop; the loop finishes the current iteration and saves first.

    A second Ctrl-C aborts at once (no checkpoint).
    """
    requested = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: requested["stop"]
        return

    def handler(signum: int, frame: object) -> None:
        if requested["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested["stop"] = True
        console.print("[yellow]stop requested: finishing this iteration and saving a checkpoint[/yellow]")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: requested["stop"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
