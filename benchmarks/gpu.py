"""One command for the day a GPU is at hand: every training stage at the paper's sizes, and its data path.

For each stage (RGB parser, depth parser, translator, joint step: paper §3.2, §4.2) it builds the stage's
networks and step exactly as ``faceparse train`` does (Fabric, ``run.precision: auto`` → bf16-mixed on
a bf16 GPU, channels_last parsers, the authors' optimiser groups, the engine's step functions) at the
sizes of ``configs/celebamask-bisenet.yaml`` (parsers batch 8 at 448², translator batch 1 at 448², joint
batch 8), and prints one markdown table:

* images/s of the training step (median of ``--rounds`` rounds of ``--steps`` steps, after warm-up);
* FLOPs per image of one training step (forward + backward, ``torch.utils.flop_counter``) and the model
  FLOP utilisation (MFU): achieved FLOP/s over the device's peak, both the dense bf16 matmul rate
  measured in this run and, for known GPUs, the datasheet's;
* peak device memory of the step;
* the data path: the device augmentation's share of the step (``data.augment_on=device``, timed on the
  device at the stage's batch) and the headroom of the CPU side: how many images/s this host's cores
  deliver (packed dataset + drawn plans, per core × cores, measured in this run by benchmarks/loader.py's
  code) over the images/s the step consumes (> 1: the GPU never waits for data).

On a GPU it finishes within a few minutes. ``--cpu-smoke`` runs the same code at tiny sizes on the CPU in
under a minute, so the script is tested (tests/test_benchmarks.py). Usage::

    python benchmarks/gpu.py                  # on a GPU: paste the table into docs/results.md
    python benchmarks/gpu.py --cpu-smoke      # tiny sizes on the CPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faceparse.data.device_augment import DeviceAugment, collate_planned, planned_tensors  # noqa: E402
from faceparse.data.transforms import build_transform  # noqa: E402
from faceparse.engine.loop import (  # noqa: E402
    STEPS,
    StepContext,
    _setup_optimization,
    build_networks,
    channels_last_batch,
)
from faceparse.engine.networks import network_specs  # noqa: E402
from faceparse.losses import parser_loss  # noqa: E402
from faceparse.runs.config import joint_weights, load_config, resolve, train_window  # noqa: E402
from faceparse.runs.stages import JOINT, PRETRAIN_DEPTH, PRETRAIN_RGB, PRETRAIN_TRANSLATOR, Stage  # noqa: E402
from loader import delivered_per_core  # noqa: E402
from timing import count_flops, timed  # noqa: E402

NUM_CLASSES = 19  # CelebAMask-HQ
STAGES = (PRETRAIN_RGB, PRETRAIN_DEPTH, PRETRAIN_TRANSLATOR, JOINT)
# dense bf16 tensor-core peaks from NVIDIA's datasheets (TFLOP/s, without sparsity)
DATASHEET_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
}


def matmul_peak(device: torch.device, smoke: bool) -> float:
    """Measured dense matmul FLOP/s: bf16 on a GPU, fp32 on a CPU (the precision the CPU trains in)."""
    n = 256 if smoke else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, 5 if smoke else 50, device, warmup=2)
    return 2 * n**3 / seconds


def datasheet_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in DATASHEET_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def stage_config(stage: Stage, device: torch.device, smoke: bool) -> Any:
    """The paper's settings (configs/celebamask-bisenet.yaml); tiny ones for the smoke run."""
    overrides = [f"run.accelerator={'cuda' if device.type == 'cuda' else 'cpu'}", "run.progress=false"]
    if smoke:
        overrides += ["data.size=64", "parsers.batch_size=2", "joint.batch_size=2", "model.generator_ngf=8"]
        overrides += ["model.discriminator_ndf=8"]
    cfg = load_config("celebamask-bisenet", overrides)
    return resolve(cfg, NUM_CLASSES)


def synthetic_batch(batch: int, size: int, device: torch.device, channels_last: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "rgb": torch.rand(batch, 3, size, size, generator=g),
        "depth": torch.rand(batch, 1, size, size, generator=g) * 0.5 + 0.5,
        "label": torch.randint(0, NUM_CLASSES, (batch, size, size), generator=g),
        "has_depth": torch.ones(batch, dtype=torch.bool),
    }
    moved = {key: value.to(device) for key, value in tensors.items()}
    return channels_last_batch(moved) if channels_last else moved


def bench_stage(stage: Stage, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from lightning_fabric import Fabric

    cfg = stage_config(stage, device, args.cpu_smoke)
    plan = stage.plan(cfg)
    window = train_window(cfg)
    fabric = Fabric(accelerator=cfg.run.accelerator, devices=1, precision=cfg.run.precision)
    torch.manual_seed(0)
    networks = build_networks(cfg, network_specs(cfg), plan.roles)
    optimizers, _ = _setup_optimization(fabric, networks, plan, None)
    context = StepContext(
        networks, optimizers, parser_loss(cfg.model.arch), joint_weights(cfg), cfg, fabric.backward
    )
    step_fn = STEPS[stage](context)
    batch = synthetic_batch(plan.batch_size, window, device, bool(cfg.run.channels_last))

    def step() -> None:
        with fabric.autocast():
            terms = step_fn(batch)
        {k: float(v) for k, v in terms.items()}  # the loop reads every term each iteration

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = [timed(step, args.steps, device, warmup=2) for _ in range(args.rounds)]
    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    per_step = statistics.median(seconds)
    flops = count_flops(step)
    augment_s = augment_seconds(cfg, plan.batch_size, window, device, args)
    return {
        "stage": stage.name,
        "batch": plan.batch_size,
        "size": window,
        "precision": cfg.run.precision,
        "step_s": per_step,
        "images_s": plan.batch_size / per_step,
        "flops_per_image": flops / plan.batch_size,
        "flops_s": flops / per_step,
        "peak_memory": peak_memory,
        "augment_s": augment_s,
    }


def augment_seconds(
    cfg: Any, batch: int, window: int, device: torch.device, args: argparse.Namespace
) -> float:
    """Seconds per batch of the device augmentation at this stage's batch and window (sources 512² → window
    on the GPU, as CelebAMask-HQ-D's; the smoke run uses sources of 1.14 × the window)."""
    import numpy as np

    source = 512 if not args.cpu_smoke else int(window * 1.14)
    transform = build_transform(cfg.data.augment, window, "celebamask19", train=True)
    rng = np.random.default_rng(0)
    items = []
    for k in range(batch):
        sample = {
            "rgb": rng.integers(0, 256, (source, source, 3), dtype=np.uint8),
            "depth": rng.uniform(0.3, 1.0, (source, source)).astype(np.float32),
            "label": rng.integers(0, NUM_CLASSES, (source, source), dtype=np.uint8),
            "has_depth": True,
            "id": str(k),
        }
        items.append(planned_tensors(sample, transform.plan((source, source), np.random.default_rng(k))))
    collated = collate_planned(items)
    on_device = {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in collated.items()
    }
    augment = DeviceAugment("celebamask19", (window, window))
    return timed(lambda: augment(on_device), args.steps, device, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (< 1 minute)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (GPU 20, smoke 2)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds; the median is reported (GPU 3)")
    parser.add_argument("--data", type=Path, default=None, help="a dataset folder for the data-path figure")
    args = parser.parse_args()
    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # two threads collapse when anything else shares a 2-core machine
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True  # what the training loop sets on CUDA
    else:
        parser.error("no CUDA device here: run with --cpu-smoke on a CPU")
    args.steps = args.steps or (2 if args.cpu_smoke else 20)
    args.rounds = args.rounds or (1 if args.cpu_smoke else 3)

    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: tiny sizes)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(
        f"# gpu benchmark: {name}, torch {torch.__version__}, {cores} host cores, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    measured_peak = matmul_peak(device, args.cpu_smoke)
    sheet = datasheet_peak(device)
    with tempfile.TemporaryDirectory() as scratch:
        per_core = delivered_per_core(args.data, Path(scratch), smoke=args.cpu_smoke)
    host_rate = per_core * cores
    rows = [bench_stage(stage, device, args) for stage in STAGES]

    peak_kind = "bf16" if device.type == "cuda" else "fp32"
    print(f"# measured dense {peak_kind} matmul peak: {measured_peak / 1e12:.3g} TFLOP/s", end="")
    print(f"; datasheet bf16: {sheet / 1e12:.0f} TFLOP/s" if sheet else "")
    print(
        f"# host data path (packed dataset + drawn plans): {per_core:.0f} samples/s per core × {cores} cores"
    )
    print()
    columns = ["stage", "batch × size", "precision", "images/s", "GFLOP/image", "MFU (measured peak)"]
    columns += ["MFU (datasheet)", "peak memory", "device augmentation / step", "host headroom"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        memory = f"{r['peak_memory'] / 2**30:.2f} GiB" if r["peak_memory"] is not None else "–"
        mfu_sheet = f"{100 * r['flops_s'] / sheet:.1f} %" if sheet else "–"
        print(
            f"| {r['stage']} | {r['batch']} × {r['size']}² | {r['precision']} | {r['images_s']:.1f} "
            f"| {r['flops_per_image'] / 1e9:.3g} | {100 * r['flops_s'] / measured_peak:.1f} % | {mfu_sheet} "
            f"| {memory} | {100 * r['augment_s'] / r['step_s']:.1f} % | {host_rate / r['images_s']:.1f}× |"
        )
    print()
    print(f"# finished in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
