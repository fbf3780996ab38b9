"""Pictures of predictions: colour label maps, overlays on the input, side-by-side panels with a legend.

Colours come from the label scheme (``LabelScheme.colors``), so a part is drawn alike in every scheme.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from faceparse.labels import LabelScheme, get_scheme


def colorize(label: np.ndarray, scheme: str | LabelScheme) -> np.ndarray:
    """(H, W) class ids → (H, W, 3) uint8 colours of ``scheme``."""
    return get_scheme(scheme).colorize(label)


def depth_to_rgb(nearness: np.ndarray) -> np.ndarray:
    """(H, W) nearness in [0, 1] → (H, W, 3) uint8 gray: near = bright, background black (paper Fig. 2)."""
    gray = np.rint(np.clip(nearness, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def overlay(rgb: np.ndarray, label: np.ndarray, scheme: str | LabelScheme, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over ``rgb`` (H, W, 3) uint8 with weight ``alpha``; background stays as it is."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if rgb.shape[:2] != label.shape:
        raise ValueError(f"image {rgb.shape[:2]} and label {label.shape} sizes differ")
    colours = colorize(label, scheme).astype(np.float32)
    blended = rgb.astype(np.float32) * (1.0 - alpha) + colours * alpha
    foreground = (label != 0)[..., None]
    return np.where(foreground, np.rint(blended), rgb).astype(np.uint8)


def legend(scheme: str | LabelScheme, width: int, classes: Iterable[int] | None = None) -> np.ndarray:
    """A ``width``-pixel strip of colour swatches with class names (those in ``classes``, default all)."""
    from PIL import Image, ImageDraw, ImageFont

    scheme = get_scheme(scheme)
    ids = list(range(scheme.num_classes)) if classes is None else sorted(set(int(c) for c in classes))
    ids = [i for i in ids if i < scheme.num_classes]
    font = ImageFont.load_default()
    cell_w, cell_h, swatch = 110, 18, 12
    per_row = max(1, width // cell_w)
    rows = max(1, -(-len(ids) // per_row))
    strip = Image.new("RGB", (width, rows * cell_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, class_id in enumerate(ids):
        x, y = (k % per_row) * cell_w + 4, (k // per_row) * cell_h + 3
        draw.rectangle([x, y, x + swatch, y + swatch], fill=scheme.colors[class_id], outline=(0, 0, 0))
        draw.text((x + swatch + 4, y), scheme.pretty(scheme.classes[class_id]), fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def side_by_side(
    image: np.ndarray,
    label: np.ndarray,
    scheme: str | LabelScheme,
    *,
    truth: np.ndarray | None = None,
    alpha: float = 0.5,
    with_legend: bool = True,
    path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Panels left to right: input, predicted colours, overlay, and (with ``truth``) ground-truth colours.

    ``image`` is (H, W, 3) uint8 RGB or (H, W) depth nearness. A legend of the classes present is added
    below. Written as PNG (atomically) when ``path`` is given; the picture is returned either way.
    """
    from PIL import Image

    from faceparse.utils.io import atomic_save

    rgb = depth_to_rgb(image) if image.ndim == 2 else image
    panels = [rgb, colorize(label, scheme), overlay(rgb, label, scheme, alpha)]
    if truth is not None:
        panels.append(colorize(truth, scheme))
    picture = np.concatenate(panels, axis=1)  # (H, k*W, 3)
    if with_legend:
        present = np.unique(label if truth is None else np.concatenate([label.ravel(), truth.ravel()]))
        picture = np.concatenate([picture, legend(scheme, picture.shape[1], present)], axis=0)
    if path is not None:
        atomic_save(path, lambda p: Image.fromarray(picture).save(p, format="PNG"))
    return picture
