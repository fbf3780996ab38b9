"""Evaluate trained networks on a dataset split with the field's protocol (paper §4.1, FACTS §1).

* RGB parsing: ``parser_rgb`` on every RGB image of the split;
* depth parsing: ``parser_depth`` on the ground-truth depth of every sample that has a depth file;
* RGB→depth translation: ``generator`` on the same samples, mean L1 on the nearness scale [0, 1]
  (:mod:`faceparse.data.encoding`) over all pixels and over the ground-truth surface.

Each parsing task fills ONE confusion matrix with every pixel of every image of the split, from which
per-class F1, mean F1 over the foreground and (Helen) the merged "overall" F1 are computed once
(:func:`faceparse.eval.metrics.parsing_scores`). Inputs are resized to the network size of the
checkpoint's config with the deterministic evaluation transform; parser logits are bilinearly resized
to each ground-truth label map's own resolution (BiSeNet predicts at input size, EAGRNet at 1/4) before
the argmax, so labels are never resampled. The translation L1 is measured at the network size, against
the ground-truth depth resized with the same transform.

Front doors: :func:`evaluate_checkpoint` (one checkpoint, or several whose networks are merged, e.g. the
three pre-trained stages = the paper's baselines) and :func:`evaluate_report` (baseline vs joint tables,
``evaluation.md`` + ``evaluation.json`` + a qualitative figure), behind ``faceparse evaluate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceparse.eval.metrics import ConfusionMatrix, DepthL1, parsing_scores
from faceparse.eval.report import ReportTable, method_name, parsing_table, translation_table
from faceparse.eval.results import (
    PARSING_TASKS,
    Comparison,
    Evaluation,
    GroupScores,
    ParsingScores,
    TranslationScores,
)
from faceparse.labels import LabelScheme
from faceparse.runs.stages import JOINT, PRETRAIN
from faceparse.utils.io import DataError

CheckpointArg = str | os.PathLike | Sequence[str | os.PathLike]
ARCH_NAMES = {"bisenet": "BiSeNet", "eagrnet": "EAGRNet"}
EVALUATED_ROLES = ("parser_rgb", "parser_depth", "generator")  # the discriminator is not evaluated


# --- which checkpoints ------------------------------------------------------------------------------------


def checkpoint_paths(checkpoint: CheckpointArg, *, pretrained: bool = False) -> list[Path]:
    """The checkpoint folders behind ``checkpoint``.

    A sequence is taken as is. A run folder (one holding stage folders) stands for its ``joint`` stage,
    or with ``pretrained`` for its three pre-training stages (the paper's baselines, §4.3). Anything
    else is one checkpoint, stage or run folder (:func:`faceparse.runs.checkpoint.find_checkpoint`).
    """
    from faceparse.runs.checkpoint import find_checkpoint, latest_checkpoint

    if not isinstance(checkpoint, str | os.PathLike):
        return [find_checkpoint(p) for p in checkpoint]
    path = Path(checkpoint)
    stages = [s for s in (PRETRAIN if pretrained else (JOINT,)) if (path / s.name).is_dir()]
    if stages:
        found = [latest_checkpoint(path / s.name) for s in stages]
        return [p for p in found if p is not None] or [find_checkpoint(path)]
    return [find_checkpoint(path)]


def load_networks(
    paths: Sequence[Path], device: str | torch.device = "cpu"
) -> tuple[dict[str, nn.Module], dict]:
    """Merge the networks of several checkpoints (each role from exactly one) with the first one's metadata.

    ``meta["sources"]`` maps each role to the checkpoint it came from; every checkpoint must share the
    label scheme and the parser architecture.
    """
    from faceparse.runs.checkpoint import load_checkpoint

    networks: dict[str, nn.Module] = {}
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    specs: dict[str, Any] = {}  # role → builder, kwargs, normalisation
    for path in paths:
        loaded, meta = load_checkpoint(path, device)
        if not merged:
            merged = meta
        elif meta["scheme"]["name"] != merged["scheme"]["name"]:
            raise DataError(path, f"label scheme {meta['scheme']['name']} differs from {merged['path']}")
        elif meta["config"]["model"]["arch"] != merged["config"]["model"]["arch"]:
            raise DataError(path, f"parser architecture differs from {merged['path']}")
        for role, module in loaded.items():
            if role not in EVALUATED_ROLES:
                continue
            if role in networks:
                raise DataError(path, f"{role} is also in {sources[role]}: give each network once")
            networks[role], sources[role], specs[role] = module, meta["path"], meta["networks"][role]
    merged = {
        **merged,
        "networks": specs,
        "sources": sources,
        "stages": sorted({Path(s).parents[1].name for s in sources.values()}),
    }
    return networks, merged


# --- data -------------------------------------------------------------------------------------------------


class _EvalItems(torch.utils.data.Dataset):
    """Samples resized to the network size, with the label map kept at its own resolution."""

    def __init__(self, dataset: Any, transform: Callable):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from faceparse.data.dataset import to_tensors

        raw = self.dataset.load(index)
        label = torch.from_numpy(np.array(raw["label"], dtype=np.int64))  # (H0, W0), original resolution
        rgb_full = np.array(raw["rgb"])  # (H0, W0, 3) uint8, for figures
        resized = to_tensors(self.transform(raw, np.random.default_rng(0)))  # deterministic resize only
        return {**resized, "label": label, "rgb_full": rgb_full}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rgb": torch.stack([it["rgb"] for it in items]),  # (B, 3, S, S) in [0, 1]
        "depth": torch.stack([it["depth"] for it in items]),  # (B, 1, S, S) nearness
        "has_depth": torch.stack([it["has_depth"] for it in items]),  # (B,)
        "labels": [it["label"] for it in items],  # B × (H0, W0), sizes may differ
        "rgb_full": [it["rgb_full"] for it in items],
        "ids": [it["id"] for it in items],
    }


def _open_split(data: str | os.PathLike, split: str, size: int) -> Any:
    from faceparse.data.dataset import FaceParsingDataset
    from faceparse.data.transforms import build_transform

    dataset = FaceParsingDataset(data, split, depth_fraction=1.0, seed=0)  # every depth map of the split
    return _EvalItems(dataset, build_transform("bisenet", size, dataset.scheme, train=False))


# --- prediction -------------------------------------------------------------------------------------------


def _normalizer(meta: Mapping[str, Any], role: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from faceparse.data.normalize import NORMALIZATIONS

    return NORMALIZATIONS[meta["networks"][role]["normalization"]]


def _parse(parser: nn.Module, inputs: torch.Tensor, labels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Predicted id maps, each at its label's resolution (logits resized before the argmax)."""
    from faceparse.losses import main_logits

    logits = main_logits(parser(inputs))  # (B, C, h, w): input size (BiSeNet) or 1/4 (EAGRNet)
    shapes = {tuple(lab.shape) for lab in labels}
    if len(shapes) == 1:  # one resize for the whole batch
        resized = main_logits(logits, next(iter(shapes)))  # (B, C, H0, W0)
        return list(resized.argmax(dim=1).cpu())
    return [main_logits(logits[i : i + 1], lab.shape)[0].argmax(dim=0).cpu() for i, lab in enumerate(labels)]


def _translate(generator: nn.Module, rgb_input: torch.Tensor) -> torch.Tensor:
    from faceparse.data.normalize import depth_from_network

    return depth_from_network(generator(rgb_input)).clamp(0.0, 1.0)  # (B, 1, S, S) nearness


def _check_scheme(scheme: LabelScheme, meta: Mapping[str, Any], data: str | os.PathLike) -> None:
    stored = meta["scheme"]["name"]
    classes = int(meta["config"]["model"]["num_classes"])
    if stored != scheme.name or classes != scheme.num_classes:
        raise DataError(
            data,
            f"dataset uses label scheme {scheme.name} ({scheme.num_classes} classes) but the checkpoint "
            f"{meta['path']} was trained on {stored} ({classes} classes)",
        )


@dataclass
class _GroupCounts:
    """What one group of samples (``groups``) accumulates during an evaluation."""

    rgb: ConfusionMatrix
    depth: ConfusionMatrix
    images: int = 0
    images_with_depth: int = 0


@torch.no_grad()
def evaluate_networks(
    networks: Mapping[str, nn.Module],
    meta: Mapping[str, Any],
    data: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 8,
    size: int | None = None,
    device: str | torch.device = "cpu",
    num_examples: int = 4,
    on_batch: Callable[[int, int], None] | None = None,
    groups: Mapping[str, str] | None = None,
) -> Evaluation:
    """Evaluate already-built networks (see :func:`evaluate_checkpoint` for the result)."""
    size = int(size or meta["config"]["data"]["size"])
    items = _open_split(data, split, size)
    scheme = items.dataset.scheme
    _check_scheme(scheme, meta, data)
    loader = torch.utils.data.DataLoader(items, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    for module in networks.values():
        module.to(device).eval()
    parser_rgb, parser_depth = networks.get("parser_rgb"), networks.get("parser_depth")
    generator = networks.get("generator")
    cm_rgb, cm_depth = ConfusionMatrix(scheme.num_classes), ConfusionMatrix(scheme.num_classes)
    depth_l1 = DepthL1()
    by_group = {  # group → confusion matrices and counts (``groups``)
        name: _GroupCounts(ConfusionMatrix(scheme.num_classes), ConfusionMatrix(scheme.num_classes))
        for name in dict.fromkeys((groups or {}).values())
    }
    examples: list[dict[str, Any]] = []
    images, images_with_depth = 0, 0
    for done, batch in enumerate(loader, start=1):
        rgb = batch["rgb"].to(device)  # (B, 3, S, S)
        labels: list[torch.Tensor] = batch["labels"]
        has_depth = batch["has_depth"]
        depth_idx = [i for i in range(len(labels)) if bool(has_depth[i])]
        depth_real = batch["depth"][depth_idx].to(device)  # (b, 1, S, S), b = samples with depth
        pred_rgb = pred_depth = depth_fake = None
        if parser_rgb is not None:
            pred_rgb = _parse(parser_rgb, _normalizer(meta, "parser_rgb")(rgb), labels)
            for pred, label, sid in zip(pred_rgb, labels, batch["ids"], strict=True):
                cm_rgb.update(pred.numpy(), label.numpy())
                if groups and sid in groups:
                    by_group[groups[sid]].rgb.update(pred.numpy(), label.numpy())
        if depth_idx and parser_depth is not None:
            pred_depth = _parse(
                parser_depth, _normalizer(meta, "parser_depth")(depth_real), [labels[i] for i in depth_idx]
            )
            for pred, i in zip(pred_depth, depth_idx, strict=True):
                cm_depth.update(pred.numpy(), labels[i].numpy())
                if groups and batch["ids"][i] in groups:
                    by_group[groups[batch["ids"][i]]].depth.update(pred.numpy(), labels[i].numpy())
        if depth_idx and generator is not None:
            depth_fake = _translate(generator, _normalizer(meta, "generator")(rgb[depth_idx]))
            depth_l1.update(depth_fake, depth_real)
        images += len(labels)
        images_with_depth += len(depth_idx)
        for i, sid in enumerate(batch["ids"]):
            if groups and sid in groups:
                by_group[groups[sid]].images += 1
                by_group[groups[sid]].images_with_depth += int(i in depth_idx)
        _collect_examples(examples, num_examples, batch, depth_idx, pred_rgb, pred_depth, depth_fake)
        if on_batch is not None:
            on_batch(done, len(loader))

    with_rgb = parser_rgb is not None
    with_depth = parser_depth is not None and images_with_depth > 0
    group_scores = None
    if groups:
        group_scores = {
            name: GroupScores(
                images=entry.images,
                rgb=parsing_scores(entry.rgb, scheme) if with_rgb else None,
                depth=(
                    parsing_scores(entry.depth, scheme)
                    if parser_depth is not None and entry.images_with_depth
                    else None
                ),
            )
            for name, entry in by_group.items()
        }
    return Evaluation(
        checkpoint=meta.get("path"),
        sources=dict(meta.get("sources", {})),
        stages=list(meta.get("stages", [meta.get("stage")])),
        iteration=meta.get("iteration"),
        arch=meta["config"]["model"]["arch"],
        data=str(data),
        split=split,
        size=size,
        scheme=scheme.name,
        images=images,
        images_with_depth=images_with_depth,
        rgb=parsing_scores(cm_rgb, scheme) if with_rgb else None,
        confusion_rgb=cm_rgb.compute().tolist() if with_rgb else None,
        depth=parsing_scores(cm_depth, scheme) if with_depth else None,
        confusion_depth=cm_depth.compute().tolist() if with_depth else None,
        translation=depth_l1.compute() if generator is not None and images_with_depth else None,
        by_group=group_scores,
        examples=examples,
    )


def _collect_examples(
    examples: list[dict[str, Any]],
    limit: int,
    batch: Mapping[str, Any],
    depth_idx: list[int],
    pred_rgb: list[torch.Tensor] | None,
    pred_depth: list[torch.Tensor] | None,
    depth_fake: torch.Tensor | None,
) -> None:
    """The first ``limit`` samples of the split as arrays for figures (label maps at label resolution)."""
    for i, sid in enumerate(batch["ids"]):
        if len(examples) >= limit:
            return
        example: dict[str, Any] = {
            "id": sid,
            "rgb": batch["rgb_full"][i],  # (H0, W0, 3) uint8
            "label_gt": batch["labels"][i].numpy().astype(np.int64),  # (H0, W0)
        }
        if pred_rgb is not None:
            example["label_rgb"] = pred_rgb[i].numpy().astype(np.int64)
        if i in depth_idx:
            k = depth_idx.index(i)
            example["depth_gt"] = batch["depth"][i, 0].numpy()  # (S, S) nearness
            if pred_depth is not None:
                example["label_depth"] = pred_depth[k].numpy().astype(np.int64)
            if depth_fake is not None:
                example["depth_fake"] = depth_fake[k, 0].cpu().numpy()
        examples.append(example)


def evaluate_checkpoint(
    checkpoint: CheckpointArg,
    data: str | os.PathLike | None = None,
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    *,
    size: int | None = None,
    pretrained: bool = False,
    num_examples: int = 4,
    on_batch: Callable[[int, int], None] | None = None,
    groups: Mapping[str, str] | None = None,
) -> Evaluation:
    """Evaluate the networks of a checkpoint (or of several, merged) on one split of a dataset.

    ``checkpoint``: a checkpoint, stage or run folder, or a list of them (see :func:`checkpoint_paths`;
    ``pretrained`` makes a run folder stand for its three pre-trained stages). ``data`` defaults to the
    checkpoint config's ``data.root``; ``size`` to its ``data.size``. Returns an
    :class:`~faceparse.eval.results.Evaluation`::

        rgb / depth       ParsingScores: per_class, mean_f1 (percent), groups/overall_f1 (Helen, LaPa)
        translation       TranslationScores: l1, l1_fg, mean |nearness error| over all / ground-truth
                          surface pixels
        confusion_rgb / confusion_depth   the (C, C) pixel counts behind the scores
        images, images_with_depth, split, size, scheme, arch, checkpoint, sources, stages, iteration
        examples          the split's first ``num_examples`` samples: id, rgb, label_gt, label_rgb,
                          depth_gt, label_depth, depth_fake (numpy arrays; not in ``to_json()``)
        by_group          with ``groups`` (sample id → group name, e.g. ``data.format.light_levels``):
                          {group: GroupScores(images, rgb, depth)}, the dataset-level scores of each group

    Scores are None for the networks the checkpoint does not hold (and depth-based ones if the split has
    no depth). Deterministic: eval mode, fixed order, no augmentation.
    """
    paths = checkpoint_paths(checkpoint, pretrained=pretrained)
    networks, meta = load_networks(paths, device)
    if data is None:
        data = meta["config"]["data"]["root"]
        if not data:
            raise DataError(paths[0], "the checkpoint's config has no data.root: pass the dataset folder")
    return evaluate_networks(
        networks,
        meta,
        data,
        split,
        batch_size=batch_size,
        size=size,
        device=device,
        num_examples=num_examples,
        on_batch=on_batch,
        groups=groups,
    )


# --- reports ------------------------------------------------------------------------------------------------


def _arch_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def comparison_tables(
    joint: Evaluation, baseline: Evaluation | None = None, *, title_suffix: str = ""
) -> list[ReportTable]:
    """Paper-style tables: RGB parsing (Table 2), depth parsing (Table 3), translation L1 (Table 4).

    With a ``baseline`` each table has a baseline row and a "+ our method" row; without, one row named
    after the evaluated stage.
    """
    arch = _arch_name(joint.arch)
    is_joint = JOINT.name in joint.stages or baseline is not None
    tables = []
    for task, modality, paper_table in zip(
        PARSING_TASKS, ("RGB", "Depth"), ("Table 2", "Table 3"), strict=True
    ):
        rows: dict[str, ParsingScores] = {}
        if baseline is not None and (base_scores := baseline.parsing(task)) is not None:
            rows[method_name(arch, modality)] = base_scores
        if (joint_scores := joint.parsing(task)) is not None:
            rows[method_name(arch, modality, joint=is_joint)] = joint_scores
        if rows and joint.scheme:
            tables.append(
                parsing_table(
                    rows,
                    joint.scheme,
                    title=f"{modality} face parsing, F1 (%){title_suffix}",
                    caption=f"cf. paper {paper_table}; one confusion matrix over the whole split",
                )
            )
    translation: dict[str, TranslationScores] = {}
    if baseline is not None and baseline.translation is not None:
        translation["Pix2Pix"] = baseline.translation
    if joint.translation is not None:
        translation["Pix2Pix + our method" if is_joint else "Pix2Pix"] = joint.translation
    if translation:
        tables.append(
            translation_table(
                translation,
                title=f"RGB→depth translation, mean L1 (nearness scale){title_suffix}",
                caption="cf. paper Table 4; lower is better",
            )
        )
    return tables


def summary_figure(
    path: str | os.PathLike, joint: Evaluation, baseline: Evaluation | None, scheme: str
) -> Path | None:
    """Figures 4-6 in one: per example RGB, truth, baseline and joint RGB parsing, depths, depth parsing."""
    from faceparse.eval.figures import qualitative_figure

    columns = [
        ("rgb", "RGB"),
        ("label_gt", "Ground truth"),
        ("label_rgb_baseline", "RGB baseline"),
        ("label_rgb", "RGB joint" if baseline is not None else "RGB parsing"),
        ("depth_gt", "GT depth"),
        ("label_depth_baseline", "Depth baseline"),
        ("label_depth", "Depth joint" if baseline is not None else "Depth parsing"),
        ("depth_fake_baseline", "Pix2Pix"),
        ("depth_fake", "Pix2Pix joint" if baseline is not None else "Generated depth"),
    ]
    samples = [dict(e) for e in joint.examples]
    if not samples:
        return None
    if baseline is not None:
        by_id = {e["id"]: e for e in baseline.examples}
        for sample in samples:
            base = by_id.get(sample["id"], {})
            for key in ("label_rgb", "label_depth", "depth_fake"):
                sample[f"{key}_baseline"] = base.get(key)
    present = [(k, h) for k, h in columns if any(s.get(k) is not None for s in samples)]
    return qualitative_figure(path, samples, scheme, columns=present, row_titles=[s["id"] for s in samples])


def evaluate_report(
    checkpoint: CheckpointArg,
    data: str | os.PathLike | None = None,
    split: str = "test",
    out: str | os.PathLike | None = None,
    baseline: CheckpointArg | None = None,
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[Comparison, list[ReportTable]]:
    """Evaluate ``checkpoint`` (and a ``baseline``, e.g. a run folder's pre-trained stages) and write
    ``evaluation.json`` (``Comparison.to_json()``: ``{"joint": ..., "baseline": ... or null}``),
    ``evaluation.md`` and ``qualitative.png`` into ``out``.

    Returns (the evaluations, with ``baseline`` None without one; the tables).
    """
    from faceparse.utils.io import atomic_write_json, atomic_write_text

    joint = evaluate_checkpoint(checkpoint, data, split, batch_size, device, size=size, on_batch=on_batch)
    base = None
    if baseline is not None:
        base = evaluate_checkpoint(
            baseline, joint.data, split, batch_size, device, size=size, pretrained=True, on_batch=on_batch
        )
        _check_comparable(joint, base)
    tables = comparison_tables(joint, base)
    result = Comparison(joint, base)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "evaluation.json", result.to_json())
        atomic_write_text(out / "evaluation.md", evaluation_markdown(joint, base, tables))
        summary_figure(out / "qualitative.png", joint, base, joint.scheme)
    return result, tables


def _check_comparable(joint: Evaluation, base: Evaluation) -> None:
    for key, ours, theirs in (
        ("scheme", joint.scheme, base.scheme),
        ("size", joint.size, base.size),
        ("images", joint.images, base.images),
    ):
        if ours != theirs:
            raise DataError(base.checkpoint, f"baseline differs from the evaluated model in {key}")


def evaluation_markdown(joint: Evaluation, base: Evaluation | None, tables: Iterable[ReportTable]) -> str:
    from faceparse.eval.report import render_markdown

    lines = [
        f"# Evaluation on {joint.data} ({joint.split} split)",
        "",
        f"- model: {', '.join(sorted(set(joint.sources.values())))}",
    ]
    if base is not None:
        lines.append(f"- baseline: {', '.join(sorted(set(base.sources.values())))}")
    lines += [
        f"- {joint.images} images ({joint.images_with_depth} with depth), scheme {joint.scheme}, "
        f"network input {joint.size}²",
        "- protocol: one confusion matrix over every pixel of the split; F1 per class, mean over the "
        "foreground classes; L1 on the nearness scale [0, 1]",
        "",
        render_markdown(list(tables)),
    ]
    return "\n".join(lines)
