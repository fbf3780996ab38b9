"""The authors' optimiser (face-parsing.PyTorch, FACTS §4): parameter groups, warm-up, per-arch defaults;
and ``run.precision: auto``."""

from __future__ import annotations

import math

import pytest
import torch

from faceparse.engine.schedule import lr_factor, make_optimizer, optimizer_groups, scheduler_for
from faceparse.models.bisenet import BiSeNet, bisenet
from faceparse.runs import precision
from faceparse.runs.config import load_config, resolve


def _resolved(*overrides: str):
    return resolve(load_config(None, list(overrides)), num_classes=13)


def test_bisenet_defaults_follow_face_parsing_pytorch():
    cfg = _resolved()
    p = cfg.parsers
    assert (p.head_lr_mult, p.decay_norms, p.warmup_iters, p.warmup_start_lr) == (10.0, False, 1000, 1e-5)
    t = cfg.translator
    assert (t.head_lr_mult, t.decay_norms, t.warmup_iters) == (1.0, True, 0)


def test_eagrnet_defaults_follow_its_train_py():
    p = resolve(load_config(None, ["model.arch=eagrnet"]), num_classes=11).parsers
    assert (p.lr, p.head_lr_mult, p.decay_norms, p.warmup_iters) == (1e-3, 1.0, True, 0)


def test_explicit_values_win_over_the_reference():
    p = _resolved("parsers.head_lr_mult=1", "parsers.decay_norms=true", "parsers.warmup_iters=7").parsers
    assert (p.head_lr_mult, p.decay_norms, p.warmup_iters) == (1.0, True, 7)


def test_bisenet_groups_heads_at_10x_and_no_decay_on_norms_and_biases():
    model = bisenet(num_classes=5)
    groups = {g["name"]: g for g in optimizer_groups(model, _resolved().parsers, lr_scale=0.1)}
    assert set(groups) == {"wd", "no_wd", "head_wd", "head_no_wd"}
    assert groups["wd"]["lr"] == pytest.approx(1e-3) and groups["head_wd"]["lr"] == pytest.approx(1e-2)
    assert groups["wd"]["weight_decay"] == 5e-4 and groups["head_wd"]["weight_decay"] == 5e-4
    assert groups["no_wd"]["weight_decay"] == 0.0 and groups["head_no_wd"]["weight_decay"] == 0.0
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each parameter exactly once
    heads = (model.ffm, model.conv_out, model.conv_out16, model.conv_out32)  # FFM + the three outputs
    head_ids = {id(p) for module in heads for p in module.parameters()}
    assert head_ids == {id(p) for name in ("head_wd", "head_no_wd") for p in groups[name]["params"]}
    bn_weight = model.cp.resnet.bn1.weight
    assert any(p is bn_weight for p in groups["no_wd"]["params"])


def test_plain_reading_is_one_group():
    model = bisenet(num_classes=5)
    optim = _resolved("parsers.head_lr_mult=1", "parsers.decay_norms=true").parsers
    (group,) = optimizer_groups(model, optim)
    assert group["lr"] == 1e-2 and len(group["params"]) == len(list(model.parameters()))


def test_generic_modules_split_norms_from_weights():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    groups = {g["name"]: g for g in optimizer_groups(model, _resolved().parsers)}
    assert set(groups) == {"wd", "no_wd"}  # no heads outside BiSeNet
    assert len(groups["wd"]["params"]) == 1 and len(groups["no_wd"]["params"]) == 3


def test_warmup_is_geometric_then_poly():
    ratio = 1e-5 / 1e-2
    assert lr_factor(0, 100, 0.9, warmup=10, warmup_ratio=ratio) == pytest.approx(ratio)
    assert lr_factor(5, 100, 0.9, warmup=10, warmup_ratio=ratio) == pytest.approx(math.sqrt(ratio))
    assert lr_factor(10, 100, 0.9, warmup=10, warmup_ratio=ratio) == pytest.approx(1.0)
    assert lr_factor(55, 100, 0.9, warmup=10, warmup_ratio=ratio) == pytest.approx(0.5**0.9)
    assert lr_factor(100, 100, 0.9, warmup=10, warmup_ratio=ratio) == 0.0
    assert lr_factor(50, 100, 0.9) == pytest.approx(0.5**0.9)  # no warm-up: the paper's plain poly


def test_scheduler_drives_every_group_with_its_own_base_rate():
    model = bisenet(num_classes=5)
    optim = _resolved("parsers.warmup_iters=4").parsers
    opt = make_optimizer(model, optim)
    sched = scheduler_for(opt, optim, total=20, warmup=4)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["wd"] == pytest.approx(1e-5) and lrs["head_wd"] == pytest.approx(1e-4)  # warm-up start
    for _ in range(4):
        opt.step()
        sched.step()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["wd"] == pytest.approx(1e-2) and lrs["head_wd"] == pytest.approx(1e-1)


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.auto_precision("cpu") == "bf16-mixed"
    assert _resolved("run.accelerator=cpu").run.precision == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.auto_precision("cpu") == "32-true"
    cfg = _resolved("run.accelerator=cpu")
    assert cfg.run.precision == "32-true" and cfg.run.channels_last is False  # NHWC only pays with bf16
    assert _resolved("run.accelerator=cpu", "run.precision=bf16-mixed").run.channels_last is True
    assert _resolved("run.precision=bf16-mixed").run.precision == "bf16-mixed"  # explicit wins


def test_auto_precision_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.auto_precision("auto") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.auto_precision("gpu") == "32-true"


def test_bisenet_class_is_what_the_groups_detect():
    assert isinstance(bisenet(num_classes=3), BiSeNet)
