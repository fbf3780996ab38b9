"""Training-step throughput: our engine vs a plain PyTorch loop, and the joint step vs its parts.

1. BiSeNet training step (OHEM loss, SGD) at batch 8, 448²: images/s through the engine's DEFAULT path
   (``run.precision: auto`` and ``run.channels_last`` as resolved on this machine, Fabric-wrapped model and
   optimiser with the authors' parameter groups, ``rgb_parser_step``, warm-up/poly scheduler,
   per-iteration seeding) and through a plain fp32 NCHW PyTorch loop of the same model, loss and SGD.
   Reported as a ratio (target ≥ 1.5× at 448², batch 8; issue "Competent parsers on a CPU").
2. One joint step (paper Eq. 4: G forward, D step, F_R + F_D + G step) vs the sum of the three separate
   pre-training steps at the same batch (RGB parser + depth parser + translator).

Both comparisons run in the same process and alternate their rounds, because this machine's absolute
times drift by ±30%. Usage::

    python benchmarks/train_step.py                       # 448², batch 8, 3 timed steps per round
    python benchmarks/train_step.py --size 128 --batch 4 --steps 2
    python benchmarks/train_step.py --device cuda --steps 20 --rounds 3   # on a GPU
    python benchmarks/train_step.py --compile --size 128 --steps 5   # eager vs run.compile (inductor)
"""

from __future__ import annotations

import argparse

import torch

from faceparse.data.normalize import rgb_for_parser
from faceparse.engine.joint import joint_step
from faceparse.engine.loop import channels_last_batch
from faceparse.engine.networks import Networks, Optimizers, network_specs
from faceparse.engine.pretrain import depth_parser_step, plain_backward, rgb_parser_step, translator_step
from faceparse.engine.sampling import mix_seed
from faceparse.engine.schedule import make_optimizer, scheduler_for
from faceparse.losses import parser_loss
from faceparse.runs.config import joint_weights, load_config, resolve
from faceparse.runs.precision import cpu_has_native_bf16 as native_bf16
from timing import interleaved_medians, timed

NUM_CLASSES = 13


DEVICE = torch.device("cpu")


def make_batch(batch: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "rgb": torch.rand(batch, 3, size, size, generator=g),
        "depth": torch.rand(batch, 1, size, size, generator=g),
        "label": torch.randint(0, NUM_CLASSES, (batch, size, size), generator=g),
    }
    return {key: value.to(DEVICE) for key, value in tensors.items()}


def engine_vs_plain(size: int, batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    from lightning_fabric import Fabric

    accelerator = "cuda" if DEVICE.type == "cuda" else "cpu"
    cfg = resolve(load_config(None, [f"data.size={size}", f"run.accelerator={accelerator}"]), NUM_CLASSES)
    spec = network_specs(cfg)["parser_rgb"]
    batch = make_batch(batch_size, size)
    loss_fn = parser_loss("bisenet")

    torch.manual_seed(0)
    plain_model = spec.build().train().to(DEVICE)
    assert cfg.parsers.lr is not None
    plain_optimizer = torch.optim.SGD(
        plain_model.parameters(), lr=cfg.parsers.lr, momentum=0.9, weight_decay=cfg.parsers.weight_decay
    )

    def plain_step() -> None:
        logits = plain_model(rgb_for_parser(batch["rgb"]))
        loss = loss_fn(logits, batch["label"])
        plain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        plain_optimizer.step()

    fabric = Fabric(accelerator=accelerator, devices=1, precision=cfg.run.precision)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = spec.build()
    engine_batch = batch
    if cfg.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
        engine_batch = channels_last_batch(batch)
    optimizer = make_optimizer(model, cfg.parsers)
    assert cfg.parsers.warmup_iters is not None
    scheduler = scheduler_for(optimizer, cfg.parsers, 10**6, cfg.parsers.warmup_iters)
    model, optimizer = fabric.setup(model, optimizer)
    iteration = [0]

    def engine_step() -> None:  # the body of faceparse.engine.loop._iterate for pretrain-rgb
        torch.manual_seed(mix_seed(0, 0, iteration[0], 7))
        with fabric.autocast():
            terms = rgb_parser_step(model, optimizer, engine_batch, loss_fn, fabric.backward)
        scheduler.step()
        iteration[0] += 1
        {k: float(v) for k, v in terms.items()}  # the loop reads the terms for the progress bar

    medians = interleaved_medians(
        {"plain": plain_step, "engine": engine_step}, rounds, steps=steps, device=DEVICE
    )
    plain, engine = medians["plain"], medians["engine"]
    return {
        "plain_img_s": batch_size / plain,
        "engine_img_s": batch_size / engine,
        "ratio": plain / engine,
        "precision": cfg.run.precision,
        "channels_last": cfg.run.channels_last,
    }


def precisions(size: int, batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    """s/step of one BiSeNet training step (OHEM, SGD) under fp32/bf16 autocast × NCHW/channels_last,
    interleaved rounds in this process: whether bf16 pays on this machine (it does only with native bf16)."""
    cfg = resolve(load_config(None, [f"data.size={size}"]), NUM_CLASSES)
    spec = network_specs(cfg)["parser_rgb"]
    batch = make_batch(batch_size, size)
    loss_fn = parser_loss("bisenet")
    settings = {"fp32": (False, False), "fp32 channels_last": (False, True)}
    settings |= {"bf16 autocast": (True, False), "bf16 autocast channels_last": (True, True)}
    steps_by_name = {}
    for name, (bf16, channels_last) in settings.items():
        torch.manual_seed(0)
        model = spec.build().train().to(DEVICE)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        rgb = channels_last_batch(batch)["rgb"] if channels_last else batch["rgb"]

        def step(model=model, opt=opt, rgb=rgb, bf16=bf16) -> None:
            with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(rgb_for_parser(rgb)), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps_by_name[name] = step
    return interleaved_medians(steps_by_name, rounds, steps=steps, device=DEVICE)


def compiled_vs_eager(size: int, batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    """s/step of one BiSeNet training step (OHEM, SGD, fp32 in the resolved memory layout), eager and
    compiled as ``run.compile`` compiles it (engine/compiled.py), interleaved rounds; and the seconds of
    the compiled network's first step (compiling, or loading inductor's on-disk cache)."""
    from faceparse.engine.compiled import compile_networks

    cfg = resolve(load_config(None, [f"data.size={size}", "run.precision=32-true"]), NUM_CLASSES)
    spec = network_specs(cfg)["parser_rgb"]
    batch = (
        channels_last_batch(make_batch(batch_size, size))
        if cfg.run.channels_last
        else make_batch(batch_size, size)
    )
    loss_fn = parser_loss("bisenet")
    steps_by_name, first = {}, 0.0
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = spec.build().train().to(DEVICE)
        if cfg.run.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if name == "compiled":
            compile_networks(Networks(parser_rgb=model))
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)

        def step(model=model, opt=opt) -> None:
            loss = loss_fn(model(rgb_for_parser(batch["rgb"])), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if name == "compiled":
            first = timed(step, 1, DEVICE, warmup=0)
        steps_by_name[name] = step
    return {**interleaved_medians(steps_by_name, rounds, steps=steps, device=DEVICE), "first_step": first}


def joint_vs_separate(size: int, batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    cfg = resolve(load_config(None, [f"data.size={size}"]), NUM_CLASSES)
    specs = network_specs(cfg)
    torch.manual_seed(0)
    nets = Networks(**{role: spec.build().to(DEVICE) for role, spec in specs.items()})
    opts = Optimizers(
        parser_rgb=make_optimizer(nets.parser_rgb, cfg.parsers, 0.1),
        parser_depth=make_optimizer(nets.parser_depth, cfg.parsers, 0.1),
        generator=make_optimizer(nets.generator, cfg.translator, 0.1),
        discriminator=make_optimizer(nets.discriminator, cfg.translator, 0.1),
    )
    batch = make_batch(batch_size, size)
    loss_fn = parser_loss("bisenet")
    weights = joint_weights(cfg)
    parts = {
        "rgb_parser": lambda: rgb_parser_step(
            nets.parser_rgb, opts.parser_rgb, batch, loss_fn, plain_backward
        ),
        "depth_parser": lambda: depth_parser_step(
            nets.parser_depth, opts.parser_depth, batch, loss_fn, plain_backward
        ),
        "translator": lambda: translator_step(
            nets.generator,
            nets.discriminator,
            opts.generator,
            opts.discriminator,
            batch,
            100.0,
            plain_backward,
        ),
    }
    joint = {"joint": lambda: joint_step(nets, opts, batch, weights, loss_fn, plain_backward)}
    medians = interleaved_medians(parts | joint, rounds, steps=steps, device=DEVICE)
    separate = sum(medians[name] for name in parts)
    return {
        **{f"{k}_s": v for k, v in medians.items()},
        "separate_s": separate,
        "joint_over_separate": medians["joint"] / separate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=448, help="square image side (default 448)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8, paper §4.2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both paths run")
    parser.add_argument("--skip-joint", action="store_true", help="only the engine-vs-plain comparison")
    parser.add_argument(
        "--precisions", action="store_true", help="only: fp32 vs bf16 autocast × NCHW vs channels_last"
    )
    parser.add_argument("--compile", action="store_true", help="only: eager vs run.compile (inductor)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")

    where = f"{args.size}², batch {args.batch}, {args.steps} steps × {args.rounds} rounds"
    where += f", {args.threads} threads, torch {torch.__version__}"
    if DEVICE.type == "cuda":
        where += f", {torch.cuda.get_device_name(DEVICE)}"
    print(f"# train_step benchmark: {where}")
    if args.precisions:
        times = precisions(args.size, args.batch, args.steps, args.rounds)
        print(f"# native bf16 on this CPU: {native_bf16()}")
        print("| BiSeNet training step | s/step | vs fp32 |")
        print("|---|---|---|")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.3f} | {times['fp32'] / seconds:.2f}× |")
        return
    if args.compile:
        c = compiled_vs_eager(args.size, args.batch, args.steps, args.rounds)
        print("| BiSeNet training step (fp32) | s/step | vs eager |")
        print("|---|---|---|")
        for name in ("eager", "compiled"):
            print(f"| {name} | {c[name]:.3f} | {c['eager'] / c[name]:.2f}× |")
        print(f"# first compiled step (compiling, or reading inductor's cache): {c['first_step']:.1f} s")
        return
    e = engine_vs_plain(args.size, args.batch, args.steps, args.rounds)
    print("| BiSeNet training step | images/s |")
    print("|---|---|")
    print(f"| plain fp32 PyTorch loop | {e['plain_img_s']:.3f} |")
    layout = "channels_last" if e["channels_last"] else "NCHW"
    print(f"| faceparse default path (Fabric, {e['precision']}, {layout}) | {e['engine_img_s']:.3f} |")
    print(f"| default / plain fp32 throughput ratio | {e['ratio']:.3f} |")
    native = torch.cuda.is_bf16_supported() if DEVICE.type == "cuda" else native_bf16()
    print(f"# run.precision auto resolved to {e['precision']} (native bf16 on this {DEVICE.type}: {native})")
    if args.skip_joint:
        return
    j = joint_vs_separate(args.size, args.batch, args.steps, args.rounds)
    print()
    print("| step (BiSeNet parsers, U-Net + PixelGAN) | s/step |")
    print("|---|---|")
    for name in ("rgb_parser", "depth_parser", "translator"):
        print(f"| {name} pre-training step | {j[name + '_s']:.3f} |")
    print(f"| sum of the three separate steps | {j['separate_s']:.3f} |")
    print(f"| joint step (Eq. 4) | {j['joint_s']:.3f} |")
    print(f"| joint / separate | {j['joint_over_separate']:.3f} |")


if __name__ == "__main__":
    main()
