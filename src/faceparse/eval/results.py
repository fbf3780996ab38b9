"""Typed evaluation results: what the metrics and the evaluation return, and their JSON form.

* :class:`ParsingScores`      one parser's dataset-level F1 (percent) from one confusion matrix
                              (:func:`faceparse.eval.metrics.parsing_scores`);
* :class:`TranslationScores`  the translator's mean L1 on the nearness scale (``DepthL1.compute()``);
* :class:`GroupScores`        the parsing scores of one group of samples (a light level);
* :class:`Evaluation`         one evaluation of a checkpoint's networks on a split
                              (:func:`faceparse.eval.run.evaluate_checkpoint`);
* :class:`Comparison`         an evaluated model and its baseline (``evaluation.json``);
* :class:`MaskScores`         scores of folders of predicted label maps (``faceparse score-masks``);
* :class:`SeedAggregate`      mean, sample std and count over seeds
                              (:func:`~faceparse.eval.report.aggregate_seeds`).

Each has ``to_json()``, the strict-JSON dict written to evaluation.json, report.json, study.json and the
study's ``eval-*.json`` caches (undefined values, NaN in memory, are written as ``null`` by
:func:`jsonable`), and ``from_json()``, which reads that dict back (``null`` → NaN), so files written
before these types existed load unchanged. :func:`metric_at` reads one number at a key path, such as
``("per_class", "skin")``, from a result or an aggregate: the tables over many metrics are built with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import numpy as np

KeyPath = tuple[str, ...]  # a key path into a result's JSON form, e.g. ("per_class", "skin")
ParsingTask = Literal["rgb", "depth"]
PARSING_TASKS: tuple[ParsingTask, ...] = ("rgb", "depth")


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` with NaN/inf floats replaced by ``None`` so it is strict JSON."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _number(value: Any) -> float:
    """A number read back from JSON: ``null`` (an undefined value written by :func:`jsonable`) is NaN."""
    return math.nan if value is None else float(value)


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {name: _number(v) for name, v in values.items()}


@dataclass(frozen=True)
class ParsingScores:
    """Paper-style scores of one parser, in percent, from one dataset-level confusion matrix.

    ``per_class`` holds every foreground class in id order (NaN: the class is absent from both the
    prediction and the truth of the whole split); ``mean_f1`` averages them (NaN ones left out).
    ``groups``: the merged-class F1 of schemes with evaluation groups (helen11, lapa11), else empty;
    ``overall_f1``: Helen's merged brows + eyes + nose + mouth F1, None for other schemes.
    """

    scheme: str
    pixels: int
    per_class: dict[str, float]
    mean_f1: float
    groups: dict[str, float] = field(default_factory=dict)
    overall_f1: float | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"scheme", "pixels", "per_class", "mean_f1"}``, plus ``"groups"`` and ``"overall_f1"`` where
        the scheme has them; NaN → null."""
        out: dict[str, Any] = {
            "scheme": self.scheme,
            "pixels": self.pixels,
            "per_class": dict(self.per_class),
            "mean_f1": self.mean_f1,
        }
        if self.groups:
            out["groups"] = dict(self.groups)
        if self.overall_f1 is not None:
            out["overall_f1"] = self.overall_f1
        return jsonable(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParsingScores:
        """Read :meth:`to_json`'s dict back (null → NaN); other keys (score-masks' ``images``) are ignored."""
        return cls(
            scheme=str(data["scheme"]),
            pixels=int(data["pixels"]),
            per_class=_numbers(data["per_class"]),
            mean_f1=_number(data["mean_f1"]),
            groups=_numbers(data.get("groups", {})),
            overall_f1=_number(data["overall_f1"]) if "overall_f1" in data else None,
        )


@dataclass(frozen=True)
class TranslationScores:
    """RGB→depth translation error on the nearness scale [0, 1] (paper Table 4), lower is better: ``l1``
    over all pixels, ``l1_fg`` over the ground-truth surface (depth > 0); NaN where there are no pixels."""

    l1: float
    l1_fg: float

    def to_json(self) -> dict[str, Any]:
        """``{"l1", "l1_fg"}``; NaN → null."""
        return jsonable({"l1": self.l1, "l1_fg": self.l1_fg})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TranslationScores:
        return cls(l1=_number(data["l1"]), l1_fg=_number(data["l1_fg"]))


def _optional(data: Mapping[str, Any], key: str) -> ParsingScores | None:
    value = data.get(key)
    return None if value is None else ParsingScores.from_json(value)


def optional_json(result: ParsingScores | TranslationScores | Evaluation | None) -> dict[str, Any] | None:
    """``result.to_json()``, or None (JSON null) where there is no result."""
    return None if result is None else result.to_json()


@dataclass(frozen=True)
class GroupScores:
    """The dataset-level scores of one group of a split's samples (e.g. the dark ones): its image count,
    and each parser's scores (None: no such parser, or no depth map among the group's samples)."""

    images: int
    rgb: ParsingScores | None = None
    depth: ParsingScores | None = None

    def parsing(self, task: ParsingTask) -> ParsingScores | None:
        """The scores of the RGB (``"rgb"``) or the depth (``"depth"``) parser."""
        return self.rgb if task == "rgb" else self.depth

    def to_json(self) -> dict[str, Any]:
        """``{"images", "rgb", "depth"}``, the parsers' keys present only where they have scores."""
        out: dict[str, Any] = {"images": self.images}
        if self.rgb is not None:
            out["rgb"] = self.rgb.to_json()
        if self.depth is not None:
            out["depth"] = self.depth.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupScores:
        return cls(images=int(data["images"]), rgb=_optional(data, "rgb"), depth=_optional(data, "depth"))


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a checkpoint's networks (or several checkpoints' merged) on a dataset split.

    What was evaluated: ``checkpoint`` (the first checkpoint's path; None for networks evaluated during
    training), ``sources`` (network role → checkpoint path), ``stages``, ``iteration``, ``arch``,
    ``data``, ``split``, ``size`` (network input), ``scheme``, ``images`` and ``images_with_depth``.

    The scores, None where the networks or the data lack them: ``rgb`` / ``depth`` (the parsers; depth
    only if the split has depth maps) with the pixel counts behind them (``confusion_rgb`` /
    ``confusion_depth``, (C, C) lists, rows = truth); ``translation`` (the generator); ``by_group``
    (group name → :class:`GroupScores`) when the evaluation was asked for groups (light levels).

    ``examples``: the split's first samples as numpy arrays for figures (keys ``id``, ``rgb``,
    ``label_gt``, ``label_rgb``, ``depth_gt``, ``label_depth``, ``depth_fake``, as present); not part of
    the JSON form, nor of equality.
    """

    checkpoint: str | None
    sources: dict[str, str]
    stages: list[str]
    iteration: int | None
    arch: str
    data: str
    split: str
    size: int
    scheme: str
    images: int
    images_with_depth: int
    rgb: ParsingScores | None = None
    confusion_rgb: list[list[int]] | None = None
    depth: ParsingScores | None = None
    confusion_depth: list[list[int]] | None = None
    translation: TranslationScores | None = None
    by_group: dict[str, GroupScores] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

    def parsing(self, task: ParsingTask) -> ParsingScores | None:
        """The scores of the RGB (``"rgb"``) or the depth (``"depth"``) parser."""
        return self.rgb if task == "rgb" else self.depth

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``examples`` left out, NaN → null): the metadata keys, then ``rgb``,
        ``confusion_rgb``, ``depth``, ``confusion_depth``, ``translation``, ``by_group`` where present."""
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "sources": dict(self.sources),
            "stages": list(self.stages),
            "iteration": self.iteration,
            "arch": self.arch,
            "data": self.data,
            "split": self.split,
            "size": self.size,
            "scheme": self.scheme,
            "images": self.images,
            "images_with_depth": self.images_with_depth,
        }
        if self.rgb is not None:
            out["rgb"] = self.rgb.to_json()
        if self.confusion_rgb is not None:
            out["confusion_rgb"] = self.confusion_rgb
        if self.depth is not None:
            out["depth"] = self.depth.to_json()
        if self.confusion_depth is not None:
            out["confusion_depth"] = self.confusion_depth
        if self.translation is not None:
            out["translation"] = self.translation.to_json()
        if self.by_group is not None:
            out["by_group"] = {name: group.to_json() for name, group in self.by_group.items()}
        return jsonable(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        """Read :meth:`to_json`'s dict (e.g. a study's cached ``eval-test.json``) back, without examples."""
        translation = data.get("translation")
        by_group = data.get("by_group")
        return cls(
            checkpoint=data["checkpoint"],
            sources=dict(data["sources"]),
            stages=list(data["stages"]),
            iteration=data["iteration"],
            arch=data["arch"],
            data=data["data"],
            split=data["split"],
            size=int(data["size"]),
            scheme=data["scheme"],
            images=int(data["images"]),
            images_with_depth=int(data["images_with_depth"]),
            rgb=_optional(data, "rgb"),
            confusion_rgb=data.get("confusion_rgb"),
            depth=_optional(data, "depth"),
            confusion_depth=data.get("confusion_depth"),
            translation=None if translation is None else TranslationScores.from_json(translation),
            by_group=None
            if by_group is None
            else {name: GroupScores.from_json(group) for name, group in by_group.items()},
        )


@dataclass(frozen=True)
class Comparison:
    """An evaluated model and its baseline (e.g. a run's pre-trained stages), as ``faceparse evaluate``
    writes them to ``evaluation.json``."""

    joint: Evaluation
    baseline: Evaluation | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"joint": Evaluation.to_json(), "baseline": Evaluation.to_json() or null}``."""
        return {"joint": self.joint.to_json(), "baseline": optional_json(self.baseline)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        base = data.get("baseline")
        return cls(Evaluation.from_json(data["joint"]), None if base is None else Evaluation.from_json(base))


@dataclass(frozen=True)
class MaskScores:
    """:func:`faceparse.eval.metrics.score_masks`' result: the parsing scores of the scored files, how
    many pairs were scored (``images``) and the ground-truth stems without a prediction (``missing``)."""

    parsing: ParsingScores
    images: int
    missing: list[str]

    def to_json(self) -> dict[str, Any]:
        """:meth:`ParsingScores.to_json` plus ``"images"`` and ``"missing"``."""
        return {**self.parsing.to_json(), "images": self.images, "missing": list(self.missing)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MaskScores:
        return cls(ParsingScores.from_json(data), int(data["images"]), list(data["missing"]))


@dataclass(frozen=True)
class SeedAggregate:
    """Mean and sample standard deviation over ``n`` seeds of results (:func:`aggregate_seeds`).

    ``mean`` and ``std`` keep the JSON form of the aggregated results (e.g. a :class:`ParsingScores`'
    ``{"per_class": {...}, "mean_f1": ...}``, or ``{"rgb": ..., "depth": ..., "translation": ...}`` of
    several), leaf by leaf: read them with :func:`metric_at` or take a part with :meth:`part`. A std is
    NaN (null in JSON) for a single value; undefined leaves are NaN or None.
    """

    mean: dict[str, Any]
    std: dict[str, Any]
    n: int

    def part(self, key: str) -> SeedAggregate | None:
        """The aggregate of one part of the results (e.g. ``"rgb"``), None where they have no such part."""
        if key not in self.mean:
            return None
        return SeedAggregate(self.mean[key], self.std[key], self.n)

    def to_json(self) -> dict[str, Any]:
        """``{"mean", "std", "n"}``; NaN → null."""
        return jsonable({"mean": self.mean, "std": self.std, "n": self.n})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SeedAggregate:
        """Read :meth:`to_json`'s dict back (nulls stay None: a leaf may be a number or not)."""
        return cls(dict(data["mean"]), dict(data["std"]), int(data["n"]))


Scores = ParsingScores | TranslationScores
"""The scores of one network: what the tables show, one row each."""


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _at(node: Any, path: KeyPath) -> float | None:
    for key in path:
        if isinstance(node, Mapping):
            node = node.get(key)
        elif is_dataclass(node) and key in {f.name for f in fields(node)}:
            node = getattr(node, key)
        else:
            return None
    return float(node) if _is_number(node) else None


def metric_at(entry: Scores | SeedAggregate | None, path: KeyPath) -> tuple[float | None, float | None]:
    """(value, std) at ``path`` (e.g. ``("per_class", "skin")``, ``("mean_f1",)``, ``("l1",)``) of one
    network's scores (std None) or of a :class:`SeedAggregate`; None where absent or not a number."""
    if entry is None:
        return None, None
    if isinstance(entry, SeedAggregate):
        return _at(entry.mean, path), _at(entry.std, path)
    return _at(entry, path), None
