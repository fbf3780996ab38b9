"""The one depth normalisation used everywhere in faceparse (documented in docs/datasets.md).

Depth is stored and handled as **nearness** ``n``:

* ``n = 0``        no surface (background);
* ``n in (0, 1]``  a surface point; larger = nearer, as in the paper's depth pictures (Figure 2).

From a metric depth map ``z`` (distance along the camera axis, any unit) we use
``n = 1 - (z - z_min) / depth_range`` clipped to ``[1/65535, 1]``, where ``z_min`` is the nearest
surface point of that image and ``depth_range`` is a per-dataset constant in the units of ``z``
(stored in ``dataset.json``). The nearest point is therefore always 1, and the scale is the same for
every image of a dataset (unlike a per-image min-max stretch, head shapes stay comparable).

On disk: 16-bit PNG, ``round(n * 65535)`` (surface pixels at least 1). 8-bit PNGs (the authors'
released depth, near = bright) read as ``v / 255``.

Networks see ``2n - 1`` in [-1, 1]: background is -1, matching the Pix2Pix generator's tanh output.
Translation L1 (paper Table 4) is reported on the ``n`` scale, [0, 1].
"""

from __future__ import annotations

import numpy as np

MAX16 = 65535


def metric_to_nearness(z: np.ndarray, mask: np.ndarray, depth_range: float) -> np.ndarray:
    """Metric depth (``mask`` True where there is a surface) → nearness in [0, 1], float32."""
    if depth_range <= 0:
        raise ValueError(f"depth_range must be positive, got {depth_range}")
    mask = np.asarray(mask, dtype=bool) & np.isfinite(z)
    out = np.zeros(z.shape, dtype=np.float32)
    if not mask.any():
        return out
    z_min = float(z[mask].min())
    n = 1.0 - (z[mask] - z_min) / depth_range
    out[mask] = np.clip(n, 1.0 / MAX16, 1.0)
    return out


def nearness_to_uint16(n: np.ndarray) -> np.ndarray:
    """Nearness in [0, 1] → uint16; any pixel with ``n > 0`` stays > 0."""
    n = np.asarray(n, dtype=np.float32)
    if n.size and (np.nanmin(n) < 0 or np.nanmax(n) > 1):
        raise ValueError(f"nearness must lie in [0, 1], got [{np.nanmin(n):.4g}, {np.nanmax(n):.4g}]")
    q = np.rint(np.nan_to_num(n, nan=0.0) * MAX16).astype(np.uint16)
    q[(n > 0) & (q == 0)] = 1
    return q


def stored_to_nearness(v: np.ndarray) -> np.ndarray:
    """uint16 or uint8 stored depth → nearness in [0, 1], float32."""
    # divided in place: one fresh array, not two (the same float32 values; a second 1 MB allocation per
    # 512² map cost a packed read 1.5 ms in page faults, docs/results.md "Packed datasets: read speed")
    out = v.astype(np.float32)
    if v.dtype == np.uint16:
        out /= np.float32(MAX16)
        return out
    if v.dtype == np.uint8:
        out /= np.float32(255.0)
        return out
    raise TypeError(f"stored depth must be uint8 or uint16, got {v.dtype}")
