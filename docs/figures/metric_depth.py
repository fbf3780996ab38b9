"""Draw docs/metric_depth.png: how `predict --depth-units mm` turns a depth camera's map into nearness.

A synthetic head (faceparse.data.synth, sample 1 of seed 0 at 256²) rendered in millimetres is dressed
up as a sensor frame: a wall 1.2 m away behind it, a flying pixel cluster in front, sensor holes on the
face and a shadow band at its silhouette. Run: `PYTHONPATH=src python docs/figures/metric_depth.py`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from faceparse.data.synth import DEPTH_RANGE_M, generate_sample  # noqa: E402
from faceparse.inference.metric_depth import MetricDepth  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "metric_depth.png"


def sensor_frame() -> tuple[np.ndarray, np.ndarray]:
    """(uint16 millimetres as a depth camera writes them, the dataset's nearness of the same head)."""
    sample = generate_sample(1, 256, seed=0)
    rng = np.random.default_rng(0)
    head = sample["depth_m"] > 0
    mm = np.rint(sample["depth_m"] * 1000 + rng.normal(0, 0.3, head.shape) * head).astype(np.uint16)
    mm[~head] = 1200  # the wall
    ys, xs = np.nonzero(head)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    for dy, dx in ((-22, -18), (-22, 16), (20, 2)):  # sensor holes on the face (glasses, dark pixels)
        yy, xx = np.ogrid[: mm.shape[0], : mm.shape[1]]
        mm[(yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= 9] = 0
    edge = head & ~np.roll(head, -4, axis=1)  # a shadow band at the head's right silhouette
    mm[edge] = 0
    mm[20:23, 30:33] = 250  # flying pixels, nearer than the face
    return mm, sample["depth"]


def main() -> None:
    mm, stored = sensor_frame()
    convert = MetricDepth("mm", DEPTH_RANGE_M)
    nearness = convert.to_nearness(mm)
    z0 = 1000 * float(convert.to_metres(mm)[nearness == nearness.max()].min())

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6), gridspec_kw={"width_ratios": [1, 1.25, 1, 1]})
    shown = np.ma.masked_equal(mm.astype(float), 0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="black")
    im = axes[0].imshow(shown, cmap=cmap, vmin=z0 - 20, vmax=1250)
    axes[0].set_title("1. depth camera, uint16 mm: wall,\nholes (black), flying pixels (top left)")
    fig.colorbar(im, ax=axes[0], fraction=0.046, label="mm")

    z = np.linspace(z0 - 100, 1300, 800)
    span = 1000 * DEPTH_RANGE_M
    n = np.where(z < z0, 1.0, np.where(z <= z0 + span, 1 - (z - z0) / span, 0.0))
    ax = axes[1]
    ax.hist(mm[mm > 0].ravel(), bins=140, range=(z0 - 100, 1300), color="0.75", log=True)
    ax.set_ylabel("pixels (grey histogram)")
    ax.set_xlabel("camera depth z (mm)")
    ax2 = ax.twinx()
    ax2.plot(z, n, color="C3", lw=2)
    ax2.set_ylabel("nearness", color="C3")
    ax2.set_ylim(-0.03, 1.05)
    ax2.axvline(z0, color="C3", ls=":")
    ax2.axvline(z0 + span, color="C3", ls=":")
    ax2.annotate("anchor z0:\nnearest point\n(speckles skipped)", (z0, 0.55), xytext=(z0 + 25, 0.55), size=8)
    ax2.annotate(f"z0 + range\n({DEPTH_RANGE_M:g} m, from the\nparser's dataset)", (z0 + 300, 0.8),
                 xytext=(z0 + 310, 0.78), fontsize=8)  # fmt: skip
    ax2.annotate("beyond: background 0\n(the wall)", (1000, 0.05), xytext=(870, 0.12), fontsize=8)
    ax.set_title("2. n = 1 - (z - z0) / range")

    axes[2].imshow(nearness, cmap="gray", vmin=0, vmax=1)
    axes[2].set_title("3. nearness for the parser\n(holes filled, wall and far pixels 0)")

    diff_mm = (nearness - stored) * DEPTH_RANGE_M * 1000
    im = axes[3].imshow(np.ma.masked_where((nearness == 0) & (stored == 0), diff_mm), cmap="coolwarm",
                        vmin=-3, vmax=3)  # fmt: skip
    axes[3].set_title("4. minus the dataset's encoding, in mm\n(blue rim: the shadow band, now 0)")
    fig.colorbar(im, ax=axes[3], fraction=0.046, label="mm")
    for a in (axes[0], axes[2], axes[3]):
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    face = (stored > 0) & (nearness > 0)
    print(f"wrote {OUT}; |difference| on the face: median {np.median(np.abs(diff_mm[face])):.2f} mm")


if __name__ == "__main__":
    main()
