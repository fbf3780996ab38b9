"""Paired augmentation: one geometry for RGB, depth and label (before tensor conversion).

A *sample* here is a dict of numpy arrays::

    rgb        (H, W, 3) uint8
    depth      (H, W)    float32 nearness in [0, 1], 0 = no surface (faceparse.data.encoding)
    label      (H, W)    uint8 class ids, IGNORE_INDEX (255) = ignore
    has_depth  bool      (other keys, e.g. ``id``, pass through untouched)

Every step is a callable ``step(sample, rng) -> sample`` drawing its randomness from the
``numpy.random.Generator`` it is given, so a fixed generator gives byte-identical output.

Resampling (all with ``cv2``), pixel centres at integer coordinates:

* RGB: bilinear (area when shrinking in the eval resize); pixels that come from outside the source are 0.
* Label: nearest, so the output holds only ids of the input (plus 255 where the output lies outside
  the source image).
* Depth: see :func:`warp_depth`, a *masked* bilinear resampling that never mixes background into a surface.

Horizontal flips swap the left/right classes with :meth:`LabelScheme.flip_label` (FACTS §5: the
reference code's flip silently does not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceparse.labels import IGNORE_INDEX, LabelScheme, get_scheme

Sample = dict[str, Any]
Step = Callable[[Sample, np.random.Generator], Sample]
PRESETS = ("bisenet", "eagrnet")
BISENET_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width): an int means a square."""
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def _check_sample(sample: Sample) -> None:
    rgb, depth, label = sample["rgb"], sample["depth"], sample["label"]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"sample rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if label.dtype != np.uint8 or label.shape != rgb.shape[:2]:
        raise ValueError(
            f"sample label must be (H, W) uint8 matching rgb {rgb.shape[:2]}, got {label.shape} {label.dtype}"
        )
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f"sample depth must be (H, W) matching rgb {rgb.shape[:2]}, got {depth.shape}")


def _with(sample: Sample, **changes: Any) -> Sample:
    out = dict(sample)
    out.update(changes)
    return out


# --- geometry ------------------------------------------------------------------------------------------


def scale_matrix(scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(2, 3) map from source to output pixels: scale about pixel edges, then shift by ``-offset``.

    With pixel centres at integers, a scale ``s`` maps ``x`` to ``s * x + (s - 1) / 2`` so the image's
    outer edge (-0.5) stays put; ``offset`` is the top-left corner of the crop in the scaled image.
    """
    t = (scale - 1.0) / 2.0
    return np.array([[scale, 0.0, t - offset[0]], [0.0, scale, t - offset[1]]], dtype=np.float64)


def fit_matrix(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], zoom: float = 1.0, angle: float = 0.0
) -> np.ndarray:
    """(2, 3) map fitting the whole source into the output (aspect kept), zoomed and rotated about the centre.

    ``angle`` in degrees, positive = counter-clockwise on screen (OpenCV's convention).
    """
    (h, w), (oh, ow) = src_hw, dst_hw
    k = min(ow / w, oh / h) * zoom
    a = math.radians(angle)
    cos, sin = k * math.cos(a), k * math.sin(a)
    cx, cy, ocx, ocy = (w - 1) / 2.0, (h - 1) / 2.0, (ow - 1) / 2.0, (oh - 1) / 2.0
    # rotate by -angle in image coordinates (y points down) so the picture turns counter-clockwise
    return np.array(
        [[cos, sin, ocx - cos * cx - sin * cy], [-sin, cos, ocy + sin * cx - cos * cy]],
        dtype=np.float64,
    )


def warp_depth(depth: np.ndarray, matrix: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """Resample nearness depth with a masked bilinear warp: no background smearing at surface borders.

    Plain bilinear interpolation blends surface values with the background's 0 along every silhouette,
    inventing a ramp of far-away points between face and background. Instead we warp ``depth`` (which
    is already ``depth * mask``, background being 0) and the surface ``mask`` with the same bilinear
    weights and divide: each output value is a weighted mean of *surface* samples only. Output pixels
    whose warped mask is below 0.5 (mostly background) are background (0). The silhouette therefore
    moves like a nearest-neighbour label edge, while the surface keeps smooth bilinear values (nearest
    resampling of depth would also avoid smearing but gives blocky depth when enlarging).
    """
    mask = (depth > 0).astype(np.float32)
    kw: dict[str, Any] = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    depth_sum = cv2.warpAffine(depth.astype(np.float32), matrix, out_wh, **kw)
    weight = cv2.warpAffine(mask, matrix, out_wh, **kw)
    return _normalise_masked(depth_sum, weight)


def resize_depth(depth: np.ndarray, out_wh: tuple[int, int], interpolation: int) -> np.ndarray:
    """Masked resize of nearness depth (the same rule as :func:`warp_depth`)."""
    mask = (depth > 0).astype(np.float32)
    depth_sum = cv2.resize(depth.astype(np.float32), out_wh, interpolation=interpolation)
    weight = cv2.resize(mask, out_wh, interpolation=interpolation)
    return _normalise_masked(depth_sum, weight)


def _normalise_masked(depth_sum: np.ndarray, weight: np.ndarray) -> np.ndarray:
    keep = weight >= 0.5
    out = np.zeros_like(depth_sum)
    out[keep] = depth_sum[keep] / weight[keep]
    return np.clip(out, 0.0, 1.0, out=out)


def warp_sample(sample: Sample, matrix: np.ndarray, size: int | Sequence[int]) -> Sample:
    """Apply one affine map (source → output pixels) to RGB, depth and label alike."""
    _check_sample(sample)
    oh, ow = _size_hw(size)
    out_wh = (ow, oh)
    rgb = cv2.warpAffine(
        sample["rgb"], matrix, out_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Outside the source image: rgb 0, label ignore, depth 0. "Outside" is decided by nearest
    # sampling, exactly where the label warp produces its border value.
    inside = cv2.warpAffine(
        np.ones(sample["label"].shape, np.uint8), matrix, out_wh, flags=cv2.INTER_NEAREST, borderValue=0
    ).astype(bool)
    rgb[~inside] = 0
    label = cv2.warpAffine(
        sample["label"],
        matrix,
        out_wh,
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=IGNORE_INDEX,
    )
    if sample.get("has_depth", True):
        depth = warp_depth(sample["depth"], matrix, out_wh)
        depth[~inside] = 0.0
    else:
        depth = np.zeros((oh, ow), np.float32)
    return _with(sample, rgb=rgb, depth=depth, label=label)


def resize_sample(sample: Sample, size: int | Sequence[int]) -> Sample:
    """Resize all three to ``size`` (aspect not kept): RGB area/bilinear, label nearest, depth masked."""
    _check_sample(sample)
    oh, ow = _size_hw(size)
    h, w = sample["label"].shape
    if (h, w) == (oh, ow):
        return dict(sample)
    interp = cv2.INTER_AREA if oh < h and ow < w else cv2.INTER_LINEAR
    rgb = cv2.resize(sample["rgb"], (ow, oh), interpolation=interp)
    # INTER_NEAREST_EXACT samples pixel centres like the bilinear resize (plain INTER_NEAREST is offset)
    label = cv2.resize(sample["label"], (ow, oh), interpolation=cv2.INTER_NEAREST_EXACT)
    if sample.get("has_depth", True):
        depth = resize_depth(sample["depth"], (ow, oh), interp)
    else:
        depth = np.zeros((oh, ow), np.float32)
    return _with(sample, rgb=rgb, depth=depth, label=label)


def hflip(sample: Sample, scheme: str | LabelScheme, swap: bool = True) -> Sample:
    """Mirror RGB, depth and label left-right, swapping left/right classes (FACTS §5).

    ``swap=False`` mirrors the label map without swapping, as face-parsing.PyTorch's flip does: a
    mirrored left eye keeps the label "left eye". Only for the left/right-flip diagnostic (SCIENCE.md).
    """
    _check_sample(sample)
    label = get_scheme(scheme).flip_label(sample["label"]) if swap else cv2.flip(sample["label"], 1)
    return _with(
        sample,
        rgb=cv2.flip(sample["rgb"], 1),  # 1 = around the vertical axis (5x faster than a numpy copy)
        depth=cv2.flip(sample["depth"], 1),
        label=label,
    )


# --- colour ----------------------------------------------------------------------------------------------


def adjust_colour(rgb: np.ndarray, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0,
                  order: Sequence[int] = (0, 1, 2)) -> np.ndarray:  # fmt: skip
    """Brightness (scale), contrast (blend with the mean grey), saturation (blend with the grey image).

    Factors of 1 leave the image unchanged; ``order`` lists the operations (0, 1, 2) in the order applied.
    Like torchvision, each operation's result is clipped to [0, 255]. Grey is ITU-R 601 luma.
    """
    img = rgb.astype(np.float32)  # (H, W, 3), worked on in place
    for op in order:
        if op == 0:
            img *= brightness
        elif op == 1:
            mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
            img *= contrast
            img += (1.0 - contrast) * mean
        else:
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]  # (H, W, 1)
            img *= saturation
            img += (1.0 - saturation) * gray
        np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img, out=img).astype(np.uint8)


# --- random steps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColorJitter:
    """Brightness/contrast/saturation factors from ``[max(0, 1 - j), 1 + j]``, in random order; RGB only."""

    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5

    def draw(self, rng: np.random.Generator) -> tuple[list[float], list[int]]:
        """The (brightness, contrast, saturation) factors and the order of the operations."""
        factors = [
            rng.uniform(max(0.0, 1.0 - j), 1.0 + j) for j in (self.brightness, self.contrast, self.saturation)
        ]
        return factors, rng.permutation(3).tolist()

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        (brightness, contrast, saturation), order = self.draw(rng)
        rgb = adjust_colour(sample["rgb"], brightness, contrast, saturation, order=order)
        return _with(sample, rgb=rgb)


@dataclass(frozen=True)
class RandomHFlip:
    """Flip with probability ``p`` (left/right classes swapped unless ``swap`` is False)."""

    scheme: LabelScheme
    p: float = 0.5
    swap: bool = True

    def draw(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.p)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return hflip(sample, self.scheme, self.swap) if self.draw(rng) else sample


@dataclass(frozen=True)
class RandomScaleCrop:
    """face-parsing.PyTorch's RandomScale + RandomCrop in one warp: scale by a random choice from
    ``scales``, then take a random ``size`` window; where the scaled image is smaller than the window it
    is placed at a random position and padded (rgb 0, depth 0, label 255).
    """

    size: tuple[int, int]
    scales: tuple[float, ...] = BISENET_SCALES

    def draw(self, src_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The (2, 3) source → output map for a source of ``src_hw`` pixels."""
        h, w = src_hw
        oh, ow = self.size
        scale = float(self.scales[rng.integers(len(self.scales))])
        offset = (_crop_offset(w * scale, ow, rng), _crop_offset(h * scale, oh, rng))
        return scale_matrix(scale, offset)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return warp_sample(sample, self.draw(sample["label"].shape, rng), self.size)


def _crop_offset(scaled: float, window: int, rng: np.random.Generator) -> float:
    """Left/top of the window in the scaled image: inside it when it fits, else a random padding split."""
    slack = int(math.floor(abs(scaled - window)))
    shift = float(rng.integers(slack + 1))
    return shift if scaled >= window else -shift


@dataclass(frozen=True)
class RandomAffineFit:
    """EAGRNet's (CE2P's) training geometry: fit the image to ``size``, zoom by 1/s with
    ``s = clip(1 + 0.25·N(0, 1), 0.75, 1.25)``, and with probability 0.6 rotate by ``clip(30·N(0, 1), ±30°)``.

    Upstream clips the rotation at ±60°; we clip at ±30° (the range this project specifies).
    """

    size: tuple[int, int]
    scale_factor: float = 0.25
    rotation: float = 30.0
    rotation_p: float = 0.6

    def draw(self, src_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The (2, 3) source → output map for a source of ``src_hw`` pixels."""
        s = float(
            np.clip(
                1.0 + rng.standard_normal() * self.scale_factor, 1 - self.scale_factor, 1 + self.scale_factor
            )
        )
        angle = float(np.clip(rng.standard_normal() * self.rotation, -self.rotation, self.rotation))
        if rng.random() >= self.rotation_p:
            angle = 0.0
        return fit_matrix(src_hw, self.size, zoom=1.0 / s, angle=angle)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return warp_sample(sample, self.draw(sample["label"].shape, rng), self.size)


@dataclass(frozen=True)
class Resize:
    """Deterministic resize to ``size`` (evaluation)."""

    size: tuple[int, int]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return resize_sample(sample, self.size)


@dataclass
class PairedTransform:
    """A sequence of steps. Call as ``transform(sample, rng)``; without ``rng`` its own generator is used."""

    steps: list[Step]
    rng: np.random.Generator = field(default_factory=np.random.default_rng, repr=False)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = self.rng if rng is None else rng
        _check_sample(sample)
        for step in self.steps:
            sample = step(sample, rng)
        return sample

    def plan(self, src_hw: tuple[int, int], rng: np.random.Generator | None = None) -> AugmentPlan:
        """Draw this transform's random parameters for a source of ``src_hw`` pixels, without applying them.

        The draws come from ``rng`` in the same order as :meth:`__call__` makes them, so for the same
        generator state the plan describes exactly the augmentation ``__call__`` would apply. The device
        path (:mod:`faceparse.data.device_augment`) applies plans to whole batches. Supported: the training
        presets' steps, in their order: colour jitter, flip, then one geometric step.
        """
        rng = self.rng if rng is None else rng
        h, w = (int(v) for v in src_hw)
        factors, order, flip, swap = [1.0, 1.0, 1.0], [0, 1, 2], False, True
        geometry: tuple[np.ndarray, tuple[int, int]] | None = None
        for step in self.steps:
            if isinstance(step, ColorJitter) and not flip and geometry is None:
                factors, order = step.draw(rng)  # before the geometry: contrast uses the whole image's mean
            elif isinstance(step, RandomHFlip) and geometry is None:
                flip, swap = step.draw(rng), step.swap
            elif isinstance(step, (RandomScaleCrop, RandomAffineFit)) and geometry is None:
                geometry = (step.draw((h, w), rng), step.size)
            else:
                names = ", ".join(type(s).__name__ for s in self.steps)
                raise ValueError(f"no device version of the steps [{names}] (at {type(step).__name__})")
        if geometry is None:
            raise ValueError("a device augmentation plan needs a geometric step (scale-crop or affine fit)")
        matrix, out_hw = geometry
        b, c, s = (float(f) for f in factors)
        first, second, third = (int(o) for o in order)
        return AugmentPlan(matrix, out_hw, (h, w), flip, swap, (b, c, s), (first, second, third))


def flip_matrix(width: int) -> np.ndarray:
    """(2, 3) map of a horizontal mirror of an image ``width`` pixels wide (pixel centres at integers)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``outer ∘ inner``: apply ``inner``, then ``outer``."""
    return outer[:, :2] @ inner + np.concatenate([np.zeros((2, 2)), outer[:, 2:]], axis=1)


@dataclass(frozen=True)
class AugmentPlan:
    """One sample's paired augmentation, drawn by :meth:`PairedTransform.plan`.

    ``geometry`` maps source to output pixels (the flip not included); ``matrix`` is the whole map
    (the flip, about the source's own width, then ``geometry``). ``jitter`` holds the (brightness,
    contrast, saturation) factors, applied to the whole source in ``order`` (1, 1, 1: none).
    """

    geometry: np.ndarray
    out_hw: tuple[int, int]
    src_hw: tuple[int, int]
    flip: bool
    swap: bool
    jitter: tuple[float, float, float]
    order: tuple[int, int, int]

    @property
    def matrix(self) -> np.ndarray:
        return compose(self.geometry, flip_matrix(self.src_hw[1])) if self.flip else self.geometry

    def apply(self, sample: Sample, scheme: str | LabelScheme) -> Sample:
        """The worker path's result for this plan (cv2, one sample): what :meth:`PairedTransform.__call__`
        returns when it draws these parameters."""
        _check_sample(sample)
        if self.jitter != (1.0, 1.0, 1.0):
            sample = _with(sample, rgb=adjust_colour(sample["rgb"], *self.jitter, order=self.order))
        if self.flip:
            sample = hflip(sample, scheme, self.swap)
        return warp_sample(sample, self.geometry, self.out_hw)


def build_transform(
    preset: str,
    size: int | Sequence[int],
    scheme: str | LabelScheme,
    train: bool = True,
    seed: int | None = None,
    scales: Sequence[float] | None = None,
    flip_swap: bool = True,
) -> PairedTransform:
    """The paired transform of a parser's training recipe (``train=False``: resize to ``size`` only).

    * ``bisenet`` (face-parsing.PyTorch): colour jitter 0.5/0.5/0.5, flip p=0.5, scale from
      (0.75, 1, 1.25, 1.5, 1.75, 2) (or ``scales``: the augmentation's strength), random crop to ``size``.
    * ``eagrnet`` (tegusi/EAGRNet): flip p=0.5, scale ±0.25, rotation ±30°, fitted to ``size``.

    ``size`` is an int (square) or (height, width). ``seed`` seeds the generator used when the caller
    passes none; the Dataset always passes a per-sample generator. ``flip_swap=False`` reproduces the
    reference code's flip, which does not swap left/right labels (FACTS §5; the flip diagnostic only).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; known: {', '.join(PRESETS)}")
    hw = _size_hw(size)
    scheme = get_scheme(scheme)
    rng = np.random.default_rng(seed)
    if not train:
        return PairedTransform([Resize(hw)], rng)
    if preset == "bisenet":
        crop = RandomScaleCrop(hw, tuple(float(x) for x in scales) if scales else BISENET_SCALES)
        steps: list[Step] = [ColorJitter(0.5, 0.5, 0.5), RandomHFlip(scheme, swap=flip_swap), crop]
    else:
        steps = [RandomHFlip(scheme, swap=flip_swap), RandomAffineFit(hw)]
    return PairedTransform(steps, rng)
