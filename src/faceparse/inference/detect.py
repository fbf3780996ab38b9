"""Face detection for inference: MediaPipe's offline detector (the ``depth`` extra), the square crop
around the largest face, and the warp of the crop's logits back into the whole image.

``face_parser(..., detect=True)`` uses :func:`mediapipe_detector` unless given another ``Detector``: any
callable from an RGB uint8 (H, W, 3) image to ``(box, score)`` or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from faceparse.utils.facemesh import Box, crop_square

__all__ = [
    "DEFAULT_MARGIN",
    "OUTSIDE_LOGIT",
    "Box",
    "Detector",
    "DetectorUnavailable",
    "crop_square",
    "mediapipe_detector",
    "paste_labels",
    "paste_logits",
]

DEFAULT_MARGIN = 0.6  # detector box grown by 60% each side: hair, ears and chin fit in the crop
OUTSIDE_LOGIT = -1e4  # foreground logits outside a detected face crop: softmax gives background

Detector = Callable[[np.ndarray], tuple[Box, float] | None]


def paste_logits(crop_logits: torch.Tensor, box: Box, image_size: tuple[int, int]) -> torch.Tensor:
    """(C, side, side) crop logits → (C, H, W) full-frame logits; outside the crop only background scores.

    Outside the crop every foreground class gets :data:`OUTSIDE_LOGIT` and background 0, so softmax and
    argmax both say background there.
    """
    x0, y0, side = box
    height, width = image_size
    num_classes = crop_logits.shape[0]
    full = crop_logits.new_full((num_classes, height, width), OUTSIDE_LOGIT)
    full[0] = 0.0
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        full[:, sy0:sy1, sx0:sx1] = crop_logits[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return full


def paste_labels(crop_label: np.ndarray, box: Box, image_size: tuple[int, int]) -> np.ndarray:
    """(side, side) crop labels → (H, W) full-frame labels, background (0) outside the crop: the argmax of
    :func:`paste_logits`' output, without the full-frame logits."""
    x0, y0, side = box
    height, width = image_size
    full = np.zeros((height, width), crop_label.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        full[sy0:sy1, sx0:sx1] = crop_label[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return full


class DetectorUnavailable(RuntimeError):
    """Face detection was asked for but MediaPipe (the optional ``depth`` extra) is not installed."""


def mediapipe_detector(margin: float = DEFAULT_MARGIN) -> Detector:
    """MediaPipe's offline face detector (the ``depth`` extra): largest face → (square box, score).

    The box is the detector's, grown by ``margin`` times its size on every side and made square.
    Raises :class:`DetectorUnavailable` naming ``make depth-extra`` when mediapipe 0.10.14 is missing.
    """
    from faceparse.utils.facemesh import FaceMeshEstimator

    try:
        estimator = FaceMeshEstimator(margin=margin)
    except RuntimeError as e:  # import_mediapipe's error carries the install hint
        raise DetectorUnavailable(f"face detection needs MediaPipe: {e}") from None
    return estimator.detect
