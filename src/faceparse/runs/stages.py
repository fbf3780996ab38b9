"""The four training stages of the paper (§3.2, §4.2), each defined once.

"We pre-train each of the base networks separately from scratch, then jointly train them": F_R, F_D and
the translator (G + D) are pre-trained alone, then all four networks are trained with Eq. 4. A
:class:`Stage` says which networks it trains, for how long and with which optimiser settings
(:meth:`Stage.plan`), which samples feed it (``pools``) and which earlier stages initialise it
(``init_from``). The engine gives each stage its step function (``faceparse.engine.loop.STEPS``, keyed by
these objects); evaluation, inference and the workflows use the same objects, never the names as strings
to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from faceparse.runs.config import Config, OptimConfig

Pools = Literal["rgb", "depth", "joint"]


@dataclass(frozen=True)
class StagePlan:
    """What a stage trains, with which optimiser settings, for how long, on which batches."""

    roles: tuple[str, ...]
    iterations: int
    batch_size: int
    optim: dict[str, tuple[OptimConfig, float]]  # role → (optimiser config, lr scale)
    warmup: dict[str, int]  # role → warm-up iterations of this stage


@dataclass(frozen=True, eq=False)  # identity equality: each stage object is unique
class Stage:
    """One training stage: its name (the run sub-folder), networks, schedule and data."""

    name: str
    index: int  # position in STAGES: the stage's seeds and data streams derive from it (exact resume)
    roles: tuple[str, ...]  # the networks it trains (and saves)
    pools: Pools  # rgb: every RGB-labelled sample; depth: the depth-annotated subset; joint: [depth | rgb]
    _plan: Callable[[Config, tuple[str, ...]], StagePlan] = field(repr=False)
    init_from: Mapping[str, Stage] = field(default_factory=lambda: MappingProxyType({}))  # role → stage

    def plan(self, cfg: Config) -> StagePlan:
        """The stage's iterations, batch size and per-network optimiser settings under ``cfg``."""
        return self._plan(cfg, self.roles)

    def __str__(self) -> str:
        return self.name


def _pretrain(optim: OptimConfig, roles: tuple[str, ...], iterations: int | None = None) -> StagePlan:
    return StagePlan(
        roles,
        iterations or optim.iterations,
        optim.batch_size,
        {role: (optim, 1.0) for role in roles},
        {role: optim.warmup_iters or 0 for role in roles},  # None only before resolve()
    )


def _joint(cfg: Config, roles: tuple[str, ...]) -> StagePlan:
    """Eq. 4: every network at one tenth of its pre-training learning rate (§4.2, ``joint.lr_scale``)."""
    j = cfg.joint
    optim = {"parser_rgb": (cfg.parsers, j.lr_scale), "parser_depth": (cfg.parsers, j.lr_scale)}
    optim |= {"generator": (cfg.translator, j.lr_scale), "discriminator": (cfg.translator, j.lr_scale)}
    return StagePlan(roles, j.iterations, j.batch_size, optim, {role: j.warmup_iters for role in roles})


PRETRAIN_RGB = Stage(
    "pretrain-rgb", 0, ("parser_rgb",), "rgb", lambda cfg, roles: _pretrain(cfg.parsers, roles)
)
PRETRAIN_DEPTH = Stage(
    "pretrain-depth",
    1,
    ("parser_depth",),
    "depth",
    lambda cfg, roles: _pretrain(cfg.parsers, roles, cfg.parsers.depth_iterations),
)
PRETRAIN_TRANSLATOR = Stage(
    "pretrain-translator",
    2,
    ("generator", "discriminator"),
    "depth",
    lambda cfg, roles: _pretrain(cfg.translator, roles),
)
JOINT = Stage(
    "joint",
    3,
    ("parser_rgb", "parser_depth", "generator", "discriminator"),
    "joint",
    _joint,
    MappingProxyType(
        {
            "parser_rgb": PRETRAIN_RGB,
            "parser_depth": PRETRAIN_DEPTH,
            "generator": PRETRAIN_TRANSLATOR,
            "discriminator": PRETRAIN_TRANSLATOR,
        }
    ),
)
PRETRAIN: tuple[Stage, ...] = (PRETRAIN_RGB, PRETRAIN_DEPTH, PRETRAIN_TRANSLATOR)
STAGES: tuple[Stage, ...] = (*PRETRAIN, JOINT)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def get_stage(stage: str | Stage) -> Stage:
    """The :class:`Stage` named ``stage`` (a Stage is returned as is); ValueError naming the choices."""
    if isinstance(stage, Stage):
        return stage
    for candidate in STAGES:
        if candidate.name == stage:
            return candidate
    raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join((*STAGE_NAMES, 'all'))}")


def stages_of(stage: str | Stage) -> tuple[Stage, ...]:
    """``"all"`` → every stage in order; a stage name or object → that stage alone."""
    return STAGES if stage == "all" else (get_stage(stage),)
