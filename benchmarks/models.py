"""Model speed on CPU: fp32 vs channels_last + bf16 autocast (and alternatives), as ratios in the SAME run.

For each model at ``--size``²: median forward (inference, batch 1) and forward+backward (training) time,
achieved GFLOP/s (FLOPs from ``torch.utils.flop_counter.FlopCounterMode``), and the speed-up over plain fp32.
Repeats are interleaved across settings so machine drift hits every setting alike. It also reports how many
of BiSeNet's predicted labels (argmax of the main output, eval mode, seeded random init) change between fp32
and each faster setting: a setting is usable for inference only if that fraction stays ≤ 0.5%.

    .venv/bin/python benchmarks/models.py                      # BiSeNet, U-Net, PatchGAN, PixelGAN at 512²
    .venv/bin/python benchmarks/models.py --explore            # + cl_fp32, bf16 alone, frozen TorchScript
    .venv/bin/python benchmarks/models.py --include-eagrnet    # + EAGRNet (~2.5 s per fp32 forward)
"""

from __future__ import annotations

import argparse
import copy
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from faceparse.models import ParserOutput, build_model, num_downs_for
from timing import count_flops, interleaved_medians

console = Console(width=150)


@dataclass(frozen=True)
class Setting:
    name: str
    channels_last: bool
    bf16: bool
    frozen: bool = False  # TorchScript trace + freeze + optimize_for_inference (inference only)


SETTINGS = {
    "fp32": Setting("fp32", channels_last=False, bf16=False),
    "cl_bf16": Setting("cl_bf16", channels_last=True, bf16=True),
    "cl_fp32": Setting("cl_fp32", channels_last=True, bf16=False),
    "bf16": Setting("bf16", channels_last=False, bf16=True),
    "frozen_fp32": Setting("frozen_fp32", channels_last=False, bf16=False, frozen=True),
}
DEFAULT_SETTINGS = ("fp32", "cl_bf16")
EXPLORE_SETTINGS = ("fp32", "cl_bf16", "cl_fp32", "bf16", "frozen_fp32")


def model_specs(size: int, include_eagrnet: bool) -> dict[str, tuple[dict, int, int]]:
    """name → (builder kwargs, input channels, training batch) at their paper configurations.

    Parsers train at batch 2, the least their 1x1 global-context BatchNorm accepts in train mode.
    """
    specs = {
        "bisenet": (dict(num_classes=19), 3, 2),
        "unet_generator": (dict(in_channels=3, out_channels=1, num_downs=num_downs_for(size)), 3, 1),
        "patch_discriminator": (dict(in_channels=4), 4, 1),
        "pixel_discriminator": (dict(in_channels=4), 4, 1),
    }
    if include_eagrnet:
        specs["eagrnet"] = (dict(num_classes=11), 3, 2)
    return specs


def as_tuple(result: ParserOutput | torch.Tensor | tuple) -> tuple[torch.Tensor, ...]:
    if isinstance(result, ParserOutput):
        return result.tensors()
    return tuple(result) if isinstance(result, tuple | list) else (result,)


class FlatOutputs(nn.Module):
    """``model`` returning a flat tuple of tensors: TorchScript cannot trace a ParserOutput with edge None."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return as_tuple(self.model(x))


def prepare(
    model: nn.Module, x: torch.Tensor, setting: Setting, train: bool
) -> tuple[Callable, torch.Tensor]:
    """A (model copy, input) pair converted for ``setting``; returns the callable to time and its input."""
    model = copy.deepcopy(model).train(train)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if setting.frozen:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is in maintenance mode and says so
            traced = torch.jit.trace(FlatOutputs(model).eval(), x, check_trace=False)
            model = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    return model, x


def forward_fn(model: Callable, x: torch.Tensor, setting: Setting) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.bf16):
            return model(x)

    return run


def train_step_fn(model: nn.Module, x: torch.Tensor, setting: Setting) -> Callable[[], object]:
    def run() -> object:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.bf16):
            outputs = as_tuple(model(x))
        loss = sum(out.float().square().mean() for out in outputs)
        loss.backward()
        return loss

    return run


def warm_interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call after one warm-up call of each; each repeat runs every setting once."""
    for fn in fns.values():
        fn()
    return interleaved_medians(fns, repeats, warmup=0)


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) low-frequency random images, ImageNet-normalised like parser inputs."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 16, 16, generator=g)
    rgb = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (rgb - mean) / std


def label_disagreement(size: int, settings: list[Setting], n_inputs: int, seed: int) -> dict[str, float]:
    """Fraction of BiSeNet argmax labels that differ from fp32 under each setting."""
    torch.manual_seed(seed)
    model = build_model("bisenet", num_classes=19).eval()
    images = smooth_images(n_inputs, size, seed)
    with torch.inference_mode():
        reference = torch.cat([model(img[None]).logits.argmax(1) for img in images])  # (n, H, W)
    fractions = {}
    for setting in settings:
        if setting.name == "fp32":
            continue
        converted, _ = prepare(model, images[:1], setting, train=False)
        labels = []
        for img in images:
            x = (
                img[None].contiguous(memory_format=torch.channels_last)
                if setting.channels_last
                else img[None]
            )
            labels.append(as_tuple(forward_fn(converted, x, setting)())[0].argmax(1))
        fractions[setting.name] = (torch.cat(labels) != reference).float().mean().item()
    return fractions


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def benchmark_model(
    name: str,
    spec: tuple[dict, int, int],
    size: int,
    settings: list[Setting],
    repeats: int,
    table: Table,
    forward_only: bool = False,
) -> None:
    kwargs, channels, train_batch = spec
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    x = torch.randn(1, channels, size, size)
    base = SETTINGS["fp32"]

    fwd_flops = count_flops(forward_fn(*prepare(model, x, base, train=False), base))
    fwd = {s.name: forward_fn(*prepare(model, x, s, train=False), s) for s in settings}
    rows = [("forward", 1, warm_interleaved_medians(fwd, repeats), fwd_flops)]
    del fwd
    if not forward_only:
        x_train = torch.randn(train_batch, channels, size, size)
        step_flops = count_flops(train_step_fn(*prepare(model, x_train, base, train=True), base))
        trainable = [s for s in settings if not s.frozen]
        step = {s.name: train_step_fn(*prepare(model, x_train, s, train=True), s) for s in trainable}
        rows.append(("fwd+bwd", train_batch, warm_interleaved_medians(step, repeats), step_flops))
        del step

    for mode, batch, times, flops in rows:
        for setting_name, seconds in times.items():
            table.add_row(
                name,
                mode,
                str(batch),
                setting_name,
                f"{seconds:.3f}",
                f"{flops / 1e9:.1f}",
                f"{flops / seconds / 1e9:.1f}",
                f"{times['fp32'] / seconds:.2f}x",
            )
    table.add_section()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="square input side (default 512)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per setting (median is reported)"
    )
    parser.add_argument("--models", default=None, help="comma-separated subset of models to run")
    parser.add_argument("--include-eagrnet", action="store_true", help="also time EAGRNet (slow)")
    parser.add_argument("--explore", action="store_true", help="also time cl_fp32, bf16 and frozen_fp32")
    parser.add_argument("--forward-only", action="store_true", help="time inference only")
    parser.add_argument("--label-inputs", type=int, default=3, help="inputs for the BiSeNet label check")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [SETTINGS[n] for n in (EXPLORE_SETTINGS if args.explore else DEFAULT_SETTINGS)]
    specs = model_specs(args.size, args.include_eagrnet)
    if args.models:
        specs = {n: specs[n] for n in args.models.split(",")}
    console.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}, "
        f"{args.size}² inputs, {args.repeats} interleaved repeats (medians)"
    )
    table = Table("model", "mode", "batch", "setting", "median s", "GFLOP", "GFLOP/s", "speed-up vs fp32")
    for name, spec in specs.items():
        benchmark_model(name, spec, args.size, settings, args.repeats, table, args.forward_only)
    console.print(table)

    fractions = label_disagreement(args.size, settings, args.label_inputs, seed=0)
    for setting_name, fraction in fractions.items():
        verdict = "ok" if fraction <= 0.005 else "TOO MANY"
        console.print(  # markup off: the verdict is in literal brackets
            f"BiSeNet labels changed by {setting_name} vs fp32: {100 * fraction:.3f}% of pixels "
            f"({args.label_inputs} inputs) [{verdict}]",
            markup=False,
        )


if __name__ == "__main__":
    main()
