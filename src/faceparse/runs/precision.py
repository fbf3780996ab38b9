"""``run.precision: auto``: bf16 mixed precision where the hardware runs bf16 natively, fp32 elsewhere.

bf16 autocast is only a speed-up where bf16 matrix units exist: CUDA GPUs that support bf16, and CPUs
with AVX512-BF16 or AMX. On other CPUs oneDNN emulates bf16 and a BiSeNet training step becomes many
times slower (measured 13× slower at 128² on a 2-core AVX2 EPYC, docs/results.md), so ``auto`` falls
back to ``32-true`` there. The resolved value is what the run's ``config.yaml`` and checkpoints record.
"""

from __future__ import annotations

from typing import Literal

import torch


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX (as torch's own CPU feature detection reports them)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def uses_cuda(accelerator: str) -> bool:
    return accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())


def auto_precision(accelerator: str = "auto") -> Literal["bf16-mixed", "32-true"]:
    """The Fabric precision string ``auto`` resolves to on this machine for ``run.accelerator``."""
    if uses_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("cpu", "auto"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    return "32-true"  # mps and other accelerators: fp32, the safe choice


Resolved = Literal["32-true", "bf16-mixed", "16-mixed"]


def resolved_precision(precision: Literal["auto"] | Resolved, accelerator: str = "auto") -> Resolved:
    """``run.precision`` as a run uses it: ``auto`` resolved for ``run.accelerator`` on this machine."""
    return auto_precision(accelerator) if precision == "auto" else precision
