"""Run logging on rank 0: ``metrics.csv`` and optional TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from faceparse.utils.io import atomic_write_text


class MetricsLog:
    """Appends one row per logged iteration to ``metrics.csv`` (columns fixed by the first row).

    On resume, rows after the resumed iteration are dropped first, so the file reads as one
    uninterrupted run.
    """

    def __init__(
        self,
        run_dir: Path,
        resume_from: int = 0,
        tensorboard: bool = False,
        enabled: bool = True,
        filename: str = "metrics.csv",
    ):
        self.path = run_dir / filename
        self.enabled = enabled
        self.columns: list[str] | None = None
        self._writer = None
        if not enabled:
            return
        self._truncate(resume_from)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # pragma: no cover - depends on the optional extra
                raise RuntimeError("run.tensorboard=true needs `pip install faceparse[tensorboard]`") from e
            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_from + 1)

    def _truncate(self, resume_from: int) -> None:
        if not self.path.is_file():
            return
        with self.path.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self.columns = list(rows[0].keys())
        kept = [r for r in rows if int(r["iteration"]) <= resume_from]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())

    def log(self, iteration: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row: dict[str, Any] = {"iteration": iteration, **{k: f"{v:.6g}" for k, v in values.items()}}
        new_file = not self.path.is_file() or self.columns is None
        if new_file:
            self.columns = list(row.keys())
        assert self.columns is not None  # new_file covers columns is None, and then sets them just above
        with self.path.open("a" if not new_file else "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, iteration)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
