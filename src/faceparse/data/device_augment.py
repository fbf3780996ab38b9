"""Paired augmentation on whatever device the batch is on (``data.augment_on: device``).

The worker path (:mod:`faceparse.data.transforms`) decodes, augments and converts each sample on one CPU
core, ~38 ms per 512² sample (docs/results.md), which cannot feed a GPU. The device path splits that
work: each loader worker only reads the sample and *draws* its augmentation
(:meth:`~faceparse.data.transforms.PairedTransform.plan`: the same random draws, in the same order, as
the worker path makes), and :class:`DeviceAugment` applies the plans to the whole batch with torch ops
on the training device:

* colour jitter (RGB only) on the whole source image, per sample in its drawn order, each operation
  clipped to [0, 255] and the result rounded, as :func:`~faceparse.data.transforms.adjust_colour` does;
* one affine map per sample (flip, scale/crop or zoom/rotation) through ``grid_sample``: RGB bilinear
  (edge pixels replicated, then 0 outside the source), labels nearest (only ids of the input, 255
  outside), depth the masked bilinear of :func:`~faceparse.data.transforms.warp_depth` (a weighted mean
  of surface samples only: no background smeared into the face; 0 where the warped mask is < 0.5);
* the left/right class swap of the scheme on flipped samples (unless ``data.flip_swap`` is off).

"Outside the source" is decided as the worker path decides it: by nearest sampling of the source
rectangle. The two paths agree up to resampling details (OpenCV quantises warp coordinates to 1/32
pixel and bilinear RGB to uint8; torch does neither): tests/test_device_augment.py measures it.

Batches whose sources differ in size (LaPa, Helen) are padded by :func:`collate_planned` (RGB by edge
replication, depth 0, labels 255): each sample keeps its own source size, so padding changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from faceparse.data.dataset import to_tensors
from faceparse.data.transforms import AugmentPlan
from faceparse.labels import IGNORE_INDEX, LabelScheme, get_scheme

# ITU-R 601 luma, as cv2.COLOR_RGB2GRAY (the worker path's grey)
_LUMA = (0.299, 0.587, 0.114)
PLAN_KEYS = ("aug_matrix", "aug_src_hw", "aug_flip", "aug_swap", "aug_jitter", "aug_order")


def planned_tensors(sample: dict[str, Any], plan: AugmentPlan) -> dict[str, Any]:
    """A loaded (un-augmented) numpy sample and its plan → the tensors a worker hands to the device path.

    The images stay in their stored types (RGB and labels uint8: a quarter of float32's bytes to copy
    to the device); depth is float32 nearness, zeros when hidden.
    """
    return {
        **to_tensors(sample, stored_types=True),
        "aug_matrix": torch.from_numpy(plan.matrix),  # (2, 3) float64, source → output pixels
        "aug_src_hw": torch.tensor(plan.src_hw, dtype=torch.int64),
        "aug_flip": torch.tensor(plan.flip),
        "aug_swap": torch.tensor(plan.swap),
        "aug_jitter": torch.tensor(plan.jitter, dtype=torch.float32),
        "aug_order": torch.tensor(plan.order, dtype=torch.int64),
    }


def collate_planned(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate``, first padding sources of different sizes to the largest (bottom and right)."""
    height = max(int(item["rgb"].shape[1]) for item in items)
    width = max(int(item["rgb"].shape[2]) for item in items)
    padded = []
    for item in items:
        h, w = item["rgb"].shape[1:]
        if (h, w) != (height, width):
            pad = (0, width - w, 0, height - h)
            item = dict(item)
            # replicate needs a float input; RGB is exact in float32
            item["rgb"] = F.pad(item["rgb"][None].float(), pad, mode="replicate")[0].to(torch.uint8)
            item["depth"] = F.pad(item["depth"], pad, value=0.0)
            item["label"] = F.pad(item["label"], pad, value=IGNORE_INDEX)
        padded.append(item)
    return default_collate(padded)


class DeviceAugment:
    """Applies a collated batch's plans (:func:`collate_planned`) on the batch's device.

    Returns the training batch the worker path would have produced: ``rgb`` float (B, 3, h, w) in
    [0, 1], ``depth`` float (B, 1, h, w), ``label`` int64 (B, h, w), ``has_depth``, ``id``.
    """

    def __init__(self, scheme: str | LabelScheme, out_hw: tuple[int, int]):
        lut = np.arange(256, dtype=np.int64)
        scheme = get_scheme(scheme)
        lut[: scheme.num_classes] = scheme.flip_permutation()
        self.flip_lut = torch.from_numpy(lut)
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rgb = batch["rgb"]
        device = rgb.device
        rgb = jitter(rgb.float(), batch["aug_jitter"], batch["aug_order"])
        grid = self.grid(batch["aug_matrix"], batch["aug_src_hw"], tuple(rgb.shape[-2:]), device)

        # labels, shifted by one so that 0 marks "outside the source" (grid_sample's zero padding and
        # the padding of collate_planned): nearest sampling decides it, as the worker path's warp does
        label = batch["label"][:, None].float().add_(1.0)
        valid = batch["aug_src_hw"].to(device)
        label = _zero_padding(label, valid)
        label = F.grid_sample(label, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        label = label[:, 0].round_().long().sub_(1)  # (B, h, w); -1: outside
        inside = label >= 0
        swap = (batch["aug_flip"] & batch["aug_swap"]).to(device)
        if bool(swap.any()):
            swapped = self.flip_lut.to(device)[label.clamp(min=0)]
            label = torch.where(swap[:, None, None], swapped, label)
        label = label.masked_fill_(~inside, IGNORE_INDEX)

        rgb = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)
        rgb = rgb.mul_(inside[:, None]).div_(255.0)

        depth = batch["depth"].float()
        surface = (depth > 0).float()
        total = F.grid_sample(depth, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        weight = F.grid_sample(surface, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        keep = (weight >= 0.5) & inside[:, None] & batch["has_depth"].to(device).view(-1, 1, 1, 1)
        depth = total.div_(weight.clamp_min_(1e-12)).clamp_(0.0, 1.0).mul_(keep)

        out = {key: value for key, value in batch.items() if key not in PLAN_KEYS}
        out.update(rgb=rgb, depth=depth, label=label)
        return out

    def grid(
        self, matrix: torch.Tensor, src_hw: torch.Tensor, padded_hw: tuple[int, ...], device: torch.device
    ) -> torch.Tensor:
        """``grid_sample``'s grid (B, h, w, 2): for each output pixel, its source point, normalised.

        Each (2, 3) map takes source to output *pixels* (centres at integers); ``affine_grid`` wants
        output → source in normalised coordinates (align_corners=False: pixel x ↦ (2x + 1) / W - 1), so
        theta = N_source · map⁻¹ · N_output⁻¹, computed in float64.
        """
        batch = matrix.shape[0]
        full = torch.zeros(batch, 3, 3, dtype=torch.float64, device=matrix.device)
        full[:, :2] = matrix.to(torch.float64)
        full[:, 2, 2] = 1.0
        oh, ow = self.out_hw
        height, width = padded_hw
        to_source, from_output = _normaliser(height, width), torch.linalg.inv(_normaliser(oh, ow))
        theta = to_source.to(full.device) @ torch.linalg.inv(full) @ from_output.to(full.device)
        theta = theta[:, :2].to(device=device, dtype=torch.float32)
        return F.affine_grid(theta, [batch, 1, oh, ow], align_corners=False)


def _normaliser(height: int, width: int) -> torch.Tensor:
    """(3, 3) map: pixel coordinates (centres at integers) → grid_sample's [-1, 1] (align_corners=False)."""
    return torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )


def _zero_padding(image: torch.Tensor, src_hw: torch.Tensor) -> torch.Tensor:
    """Zero what lies past each sample's own source size (the padding of a mixed-size batch)."""
    height, width = image.shape[-2:]
    if bool((src_hw[:, 0] == height).all() and (src_hw[:, 1] == width).all()):
        return image
    rows = torch.arange(height, device=image.device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=image.device).view(1, 1, 1, -1)
    inside = (rows < src_hw[:, 0].view(-1, 1, 1, 1)) & (cols < src_hw[:, 1].view(-1, 1, 1, 1))
    return image * inside


def jitter(rgb: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of float RGB (B, 3, H, W) in [0, 255], per sample.

    ``factors`` (B, 3) are the (brightness, contrast, saturation) factors and ``order`` (B, 3) the order
    in which each sample gets the three operations. Each result is clipped to [0, 255] and the final one
    rounded (half to even, as ``np.rint``), as :func:`faceparse.data.transforms.adjust_colour` does.
    """
    factors = factors.to(rgb.device, torch.float32)
    order = order.to(rgb.device)
    active = (factors != 1.0).any(1)
    if not bool(active.any()):
        return rgb
    luma = torch.tensor(_LUMA, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    # one gather and one scatter per group of samples sharing an order (at most 6 groups)
    for sequence in torch.unique(order[active], dim=0).tolist():
        rows = torch.nonzero(active & (order == order.new_tensor(sequence)).all(1)).flatten()
        img = rgb.index_select(0, rows)
        for op in sequence:
            factor = factors[rows, op].view(-1, 1, 1, 1)
            if op == 0:  # brightness: scale
                img.mul_(factor)
            elif op == 1:  # contrast: blend with the mean grey of the whole image
                mean = (img * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
                img.mul_(factor).add_((1.0 - factor) * mean)
            else:  # saturation: blend with the grey image
                grey = (img * luma).sum(1, keepdim=True)
                img.mul_(factor).add_((1.0 - factor) * grey)
            img.clamp_(0.0, 255.0)
        rgb.index_copy_(0, rows, img)
    return rgb.round_()
