"""Tiny shared test material: datasets, config overrides, networks and fake checkpoints at 32².

Plain functions, so module-scoped fixtures and subprocess scripts can use them too; ``conftest.py`` wraps
the common ones as fixtures. tests/README.md says which to use when.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from faceparse.data.format import DatasetInfo, write_info, write_sample, write_split

SIZE, CLASSES = 32, 13
ROLES = ("parser_rgb", "parser_depth", "generator", "discriminator")
REFERENCE = Path(__file__).parent / "data" / "reference"


def disc_dataset(
    root: Path,
    n: int = 10,
    size: int = SIZE,
    seed: int = 0,
    *,
    splits: Mapping[str, slice] | None = None,
    missing_depth: Iterable[int] = (),
    ignored: int = 0,
) -> Path:
    """Heads drawn as discs: skin, a nose in the middle, hair on top; depth is a dome (0 = background).

    Learnable in a few steps, so training tests can see a loss fall. ``missing_depth`` lists the samples
    written without depth (the dataset then records partial depth coverage); the first ``ignored`` pixels
    of each label's top row are 255 (not annotated). Splits default to every
    sample but the last two for ``train`` and the last two for ``val``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    missing = set(missing_depth)
    ids = []
    for i in range(n):
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.2, 0.3) * size
        d = np.hypot(xx - cx, yy - cy)
        label = np.zeros((size, size), np.uint8)
        label[d < r] = 1
        label[d < 0.4 * r] = 8
        label[(d < r) & (yy < cy - 0.5 * r)] = 12
        rgb = rng.uniform(0, 40, (size, size, 3)) + label[..., None] * np.array([15, 9, 5])
        label[0, :ignored] = 255
        depth = np.where(d < r, 0.5 + 0.5 * np.sqrt(np.clip(1 - (d / r) ** 2, 0, 1)), 0)
        sid = f"s{i:03d}"
        write_sample(
            root,
            sid,
            rgb=rgb.clip(0, 255).astype(np.uint8),
            depth=None if i in missing else depth.astype(np.float32),
            label=label,
        )
        ids.append(sid)
    info = DatasetInfo(name="tiny", scheme="celebamask13", image_size=[size, size])
    if missing:
        info.depth.coverage = "partial"
    write_info(root, info)
    for split, part in (splits or {"train": slice(0, n - 2), "val": slice(n - 2, n)}).items():
        write_split(root, split, ids[part])
    return root


def noise_sample(i: int, shape: tuple[int, int] = (SIZE, SIZE)) -> dict[str, np.ndarray]:
    """Sample ``i`` of :func:`noise_dataset` (seeded with i) as write_sample's arrays, at (height, width)."""
    rng = np.random.default_rng(i)
    label = rng.integers(0, CLASSES, shape).astype(np.uint8)
    label[0, 0] = 255
    depth = np.where(label > 0, rng.uniform(0.3, 1.0, shape), 0.0).astype(np.float32)
    return {"rgb": rng.integers(0, 256, (*shape, 3), dtype=np.uint8), "depth": depth, "label": label}


def noise_dataset(
    root: Path, n: int = 10, shape: tuple[int, int] = (SIZE, SIZE), splits: Mapping[str, slice] | None = None
) -> list[str]:
    """Uniform-noise samples (:func:`noise_sample`): every class present, pixel (0, 0) ignored (255), depth
    zero wherever the label is background. ``train`` holds every sample unless ``splits`` says otherwise.
    Returns the ids (``0000``, ``0001``, ...)."""
    ids = [f"{i:04d}" for i in range(n)]
    for i, sid in enumerate(ids):
        write_sample(root, sid, **noise_sample(i, shape))
    for split, part in (splits or {"train": slice(0, n)}).items():
        write_split(root, split, ids[part])
    write_info(root, DatasetInfo(name=root.name, scheme="celebamask13"))
    return ids


def tiny_overrides(root: Path, out: Path, iterations: int = 2, size: int = SIZE) -> list[str]:
    """Config overrides for a seconds-long run of any stage on a tiny dataset (CPU, no loader process)."""
    return [
        f"data.root={root}",
        f"data.size={size}",
        "data.workers=0",
        "data.depth_fraction=0.5",
        "model.generator_ngf=4",
        "model.discriminator_ndf=4",
        f"parsers.iterations={iterations}",
        "parsers.batch_size=2",
        f"translator.iterations={iterations}",
        "translator.batch_size=2",
        f"joint.iterations={iterations}",
        "joint.batch_size=4",
        f"run.out={out}",
        "run.accelerator=cpu",
        "run.log_every=1",
        "run.progress=false",
    ]


def joint_overrides(root: Path, out: Path, pretrained: Path, iterations: int = 2) -> list[str]:
    """:func:`tiny_overrides` for a joint run initialised from ``pretrained`` (:func:`fake_pretrained`)."""
    return [
        *tiny_overrides(root, out, iterations),
        f"joint.init_rgb={pretrained / 'pretrain-rgb'}",
        f"joint.init_depth={pretrained / 'pretrain-depth'}",
        f"joint.init_translator={pretrained / 'pretrain-translator'}",
        "run.ckpt_every=100",
    ]


def tiny_networks(seed: int = 0):
    """The four networks of the joint phase at tiny width (BiSeNet keeps its reference width)."""
    from faceparse.engine.networks import Networks
    from faceparse.models import build_model

    torch.manual_seed(seed)
    return Networks(
        parser_rgb=build_model("bisenet", num_classes=CLASSES, in_channels=3),
        parser_depth=build_model("bisenet", num_classes=CLASSES, in_channels=1),
        generator=build_model("unet_generator", num_downs=5, ngf=4),
        discriminator=build_model("pixel_discriminator", in_channels=4, ndf=4),
    )


def fake_pretrained(out: Path, overrides: list[str]) -> Path:
    """Randomly initialised 'pre-trained' checkpoints of the three pre-training stages under ``out``, for
    joint-phase tests (resume, DDP) that do not care how the networks were trained."""
    from faceparse.engine.networks import network_specs
    from faceparse.runs import checkpoint as ckpt
    from faceparse.runs.config import load_config, resolve

    specs = network_specs(resolve(load_config(None, overrides), num_classes=CLASSES))
    torch.manual_seed(0)
    for stage, roles in (
        ("pretrain-rgb", ROLES[:1]),
        ("pretrain-depth", ROLES[1:2]),
        ("pretrain-translator", ROLES[2:]),
    ):
        nets = {role: specs[role].build() for role in roles}
        meta = {"stage": stage, "networks": {role: specs[role].to_json() for role in roles}}
        ckpt.save_checkpoint(out / stage / ckpt.CHECKPOINT_DIR, 1, nets, {}, meta)
    return out


def read_layout(name: str) -> list[tuple[str, str, str]]:
    """(key, shape, dtype) rows of a vendored reference state_dict layout (tests/data/reference/)."""
    path = REFERENCE / name
    if not path.is_file():  # vendored with the tests: a missing file is a broken checkout, not a skip
        raise FileNotFoundError(f"{path} is missing: tests/data/reference/README.md says where it comes from")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            rows.append((key, shape, dtype))
    return rows


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG (under 100 bytes) whose header claims ``width``×``height`` RGB pixels (issue 11)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def engine_checkpoint(
    root: Path, size: int = 64, *, scheme: str = "celebamask13", generator: bool = True
) -> Path:
    """A joint-stage checkpoint in ``root/joint/checkpoints`` of both parsers at ``size``² (random weights,
    non-trivial batch-norm statistics) and, with ``generator``, a small translator: written by the engine's
    own writer and specs, as inference and ``faceparse serve`` read it."""
    from faceparse.engine.networks import network_specs
    from faceparse.labels import get_scheme
    from faceparse.models import build_model
    from faceparse.runs import checkpoint as ckpt
    from faceparse.runs.config import Config, resolve, to_dict

    classes = get_scheme(scheme)
    cfg = Config()
    cfg.data.size = size
    resolve(cfg, classes.num_classes)
    specs = network_specs(cfg)
    parsers = ("parser_rgb", "parser_depth")
    torch.manual_seed(0)
    networks = {role: specs[role].build() for role in parsers}
    meta = {
        "stage": "joint",
        "config": to_dict(cfg),
        "scheme": {"name": classes.name, **classes.to_dict()},
        "networks": {role: specs[role].to_json() for role in parsers},
    }
    if generator:
        torch.manual_seed(1)
        networks["generator"] = build_model("unet_generator", num_downs=6, ngf=8)
        kwargs = {"num_downs": 6, "ngf": 8}
        meta["networks"]["generator"] = {**specs["generator"].to_json(), "kwargs": kwargs}
    for module in networks.values():
        _randomise_batchnorm(module)
    return ckpt.save_checkpoint(root / "joint" / "checkpoints", 10, networks, {}, meta)


def _randomise_batchnorm(module: torch.nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode normalisation is actually exercised."""
    generator = torch.Generator().manual_seed(2)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
