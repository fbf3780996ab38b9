"""Issue 9 diagnostic: what each term of Eq. 4 does to the parsers at the first joint step, at the
competent scale (study-fast, 160² windows, a seed's pre-trained triple; seed 0 by default). The same
measurement as SCIENCE.md's Appendix A (demo checkpoints at 64²), so the two regimes can be compared.

For 4 joint batches (4 depth-annotated + 4 RGB-labelled training heads, the study's augmentation), with
the networks in training mode as the joint phase runs them and F_D's one forward over [real | generated]
depth (``joint.depth_bn: mixed``), it prints the norm of each weighted term's gradient on F_R's and F_D's
parameters (Eq. 4's weights: λ1 = λ2 = 1, λ3 = λ4 = 0.5), the same for the other readings of L_ML
(KL at T = 1, MSE of softmax probabilities), L_ML per element, the parsers' logit scale (across-class
std), and on the paired pixels their accuracy, agreement, and who is right where the other is wrong.
Nothing is trained. Usage (one thread, ~2 min):

    OMP_NUM_THREADS=1 .venv/bin/python docs/curves/data/study-fast160-gradients.py [SEED [OUT]]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from faceparse.data.dataset import FaceParsingDataset
from faceparse.data.normalize import depth_for_network, rgb_for_generator, rgb_for_parser
from faceparse.data.transforms import build_transform
from faceparse.engine.joint import rows
from faceparse.losses import MutualLearning, e2e_loss, mutual_learning_loss, parser_loss
from faceparse.runs.checkpoint import load_checkpoint

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0
OUT = sys.argv[2] if len(sys.argv) > 2 else "/work/exp/study-fast160/out"
DATA, WINDOW, BATCHES, HALF = "/work/exp/synth192", 160, 4, 4


def network(path: str, name: str) -> torch.nn.Module:
    nets, _ = load_checkpoint(path)
    return nets[name].train()


def grad_norm(loss: torch.Tensor, module: torch.nn.Module) -> float:
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    torch.manual_seed(SEED)
    seed_dir = f"{OUT}/seed-{SEED}"
    f_r = network(f"{seed_dir}/pretrain-rgb", "parser_rgb")
    f_d = network(f"{seed_dir}/depth-10/pretrain-depth", "parser_depth")
    g = network(f"{seed_dir}/depth-10/pretrain-translator", "generator")
    scheme = FaceParsingDataset(DATA, "train").scheme
    transform = build_transform("bisenet", WINDOW, scheme, train=True, scales=(0.75, 1.0, 1.25))
    data = FaceParsingDataset(DATA, "train", depth_fraction=0.1, seed=SEED, transform=transform)
    paired = data.depth_indices()
    rng = np.random.default_rng(SEED)
    loss_fn = parser_loss("bisenet")
    rows_out: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        rows_out.setdefault(key, []).append(value)

    for _ in range(BATCHES):
        idx = [*rng.choice(paired, HALF, replace=False), *rng.choice(len(data), HALF, replace=False)]
        items = [data[int(i)] for i in idx]
        rgb = torch.stack([it["rgb"] for it in items])
        label = torch.stack([it["label"] for it in items])
        depth_real = depth_for_network(torch.stack([it["depth"] for it in items[:HALF]]))
        depth_fake = g(rgb_for_generator(rgb))
        out_r = f_r(rgb_for_parser(rgb))
        out_d = f_d(torch.cat([depth_real, depth_fake[HALF:]]))
        r_paired, d_real, d_fake = rows(out_r, 0, HALF), rows(out_d, 0, HALF), rows(out_d, HALF, 2 * HALF)
        ml = mutual_learning_loss(r_paired, d_real)
        terms = {
            "1·L_ML": ml,
            "0.5·L_CLS^RGB": 0.5 * loss_fn(out_r, label),
            "0.5·L_CLS^Depth": 0.5 * loss_fn(d_real, label[:HALF]),
            "1·L_E2E": e2e_loss(d_fake, label[HALF:], loss_fn),
            "L_ML as KL (T=1)": mutual_learning_loss(r_paired, d_real, MutualLearning("kl")),
            "L_ML as MSE of softmax": mutual_learning_loss(r_paired, d_real, MutualLearning("mse_probs")),
        }
        for name, term in terms.items():
            if name != "1·L_E2E" and name != "0.5·L_CLS^Depth":
                record(f"‖∇F_R {name}‖", grad_norm(term, f_r))
            if name != "0.5·L_CLS^RGB":
                record(f"‖∇F_D {name}‖", grad_norm(term, f_d))
        record("L_ML per element", float(ml.detach()))
        z_r, z_d = r_paired.logits.detach(), d_real.logits.detach()  # (B/2, C, H, W) main logits
        record("logit scale F_R (across-class std)", float(z_r.std(dim=1).mean()))
        record("logit scale F_D (across-class std)", float(z_d.std(dim=1).mean()))
        y = label[:HALF]
        valid = y != 255
        p_r, p_d = z_r.argmax(1)[valid], z_d.argmax(1)[valid]
        t = y[valid]
        record("pixel accuracy F_R (paired half)", float((p_r == t).float().mean()))
        record("pixel accuracy F_D (paired half)", float((p_d == t).float().mean()))
        record("argmax agreement", float((p_r == p_d).float().mean()))
        record("F_D right & F_R wrong", float(((p_d == t) & (p_r != t)).float().mean()))
        record("F_R right & F_D wrong", float(((p_r == t) & (p_d != t)).float().mean()))
    print(f"seed {SEED}'s pre-trained triple ({OUT}), {BATCHES} joint batches of {HALF}+{HALF} at {WINDOW}²")
    for key, values in rows_out.items():
        cells = " ".join(f"{v:.3g}" for v in values)
        print(f"{key:40s} {cells:40s} mean {np.mean(values):.3g}")


if __name__ == "__main__":
    main()
