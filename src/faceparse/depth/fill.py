"""Smooth surface fill: extend a partial depth map (e.g. the face-only mesh) over a head region.

The offline backend's mesh covers the face only (FACTS §3); the paper's maps cover the whole head
(hair, ears). We fill the rest of the head region with the HARMONIC surface (Laplace's equation,
4-neighbour stencil): it equals the known depth on the known pixels, equals ``rim`` on the region's
silhouette, and is as smooth as possible in between — a dome that recedes from the face edge to the
head outline, with no new extrema. Solved as one sparse linear system (SciPy), on a grid at most
``max_side`` pixels wide (then upsampled; known pixels stay exact).
"""

from __future__ import annotations

import numpy as np


def harmonic_fill(
    values: np.ndarray, known: np.ndarray, region: np.ndarray, rim: float, *, max_side: int = 256
) -> np.ndarray:
    """Fill ``values`` over ``region & ~known`` harmonically; outside ``region | known`` the result is 0.

    ``values``: (H, W) float, valid where ``known``. ``rim``: the value imposed just outside ``region``.
    Region pixels not connected to anything stay at values dictated by ``rim`` alone (constant ``rim``).
    """
    values = np.asarray(values, dtype=np.float64)
    known = np.asarray(known, dtype=bool)
    region = np.asarray(region, dtype=bool) | known
    H, W = values.shape
    step = max(1, int(np.ceil(max(H, W) / max_side)))
    if step > 1:
        small = _solve(*_downsample(values, known, region, step), rim)
        filled = _upsample(small, (H, W))
    else:
        filled = _solve(values, known, region, rim)
    out = np.where(region, filled, 0.0)
    out[known] = values[known]
    return out


def _downsample(
    values: np.ndarray, known: np.ndarray, region: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means of known values; a block is known if any pixel is, in region if most pixels are."""
    H, W = values.shape
    h, w = -(-H // step), -(-W // step)
    pad = ((0, h * step - H), (0, w * step - W))
    v = np.pad(np.where(known, values, 0.0), pad).reshape(h, step, w, step)
    k = np.pad(known, pad).reshape(h, step, w, step)
    r = np.pad(region, pad).reshape(h, step, w, step)
    n_known = k.sum(axis=(1, 3))
    small_vals = v.sum(axis=(1, 3)) / np.maximum(n_known, 1)
    return small_vals, n_known > 0, r.mean(axis=(1, 3)) >= 0.5


def _upsample(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(small.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR).astype(
        np.float64
    )


def _solve(values: np.ndarray, known: np.ndarray, region: np.ndarray, rim: float) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    H, W = values.shape
    unknown = region & ~known
    out = np.where(known, values, 0.0)
    n = int(unknown.sum())
    if n == 0:
        return out
    index = np.full((H, W), -1, dtype=np.int64)
    index[unknown] = np.arange(n)
    ys, xs = np.nonzero(unknown)
    rows, cols, data = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    rhs = np.zeros(n)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        nyc, nxc = np.clip(ny, 0, H - 1), np.clip(nx, 0, W - 1)
        nb_unknown = inside & unknown[nyc, nxc]
        nb_known = inside & known[nyc, nxc]
        rows.append(np.nonzero(nb_unknown)[0])
        cols.append(index[nyc[nb_unknown], nxc[nb_unknown]])
        data.append(np.full(int(nb_unknown.sum()), -1.0))
        rhs += np.where(nb_known, values[nyc, nxc], 0.0)
        rhs += np.where(~nb_unknown & ~nb_known, rim, 0.0)  # silhouette (or image border): Dirichlet rim
    A = coo_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    out[unknown] = spsolve(A, rhs)
    return out
