"""Cost of the parser losses against plain cross-entropy, in the same process (docs/results.md).

Run: python benchmarks/losses.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

from faceparse.losses import BiSeNetLoss, EAGRNetLoss, edge_from_label
from faceparse.models import ParserOutput

torch.manual_seed(0)
torch.set_num_threads(2)


def med(fn, n=7):
    fn()
    ts = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts) * 1e3


label = torch.randint(0, 13, (8, 448, 448))
rand = [torch.randn(8, 13, 448, 448, requires_grad=True) for _ in range(3)]
sure = [
    (F.one_hot(label, 13).permute(0, 3, 1, 2) * 6.0 + torch.randn(8, 13, 448, 448)).requires_grad_()
    for _ in range(3)
]
for name, outs in (("hard branch", rand), ("top-n_min branch", sure)):
    ce = med(lambda outs=outs: sum(F.cross_entropy(o, label) for o in outs).backward())
    ohem = med(lambda outs=outs: BiSeNetLoss()(ParserOutput(outs[0], tuple(outs[1:])), label).backward())
    print(f"BiSeNetLoss {name}: {ohem:.0f} ms vs 3x CE {ce:.0f} ms, ratio {ohem / ce:.2f}")
label = torch.randint(0, 11, (8, 473, 473))
seg = torch.randn(8, 11, 119, 119, requires_grad=True)
edge = torch.randn(8, 2, 119, 119, requires_grad=True)
ce = med(lambda: F.cross_entropy(F.interpolate(seg, size=(473, 473), mode="bilinear"), label).backward())
eag = med(lambda: EAGRNetLoss()(ParserOutput(seg, edge=edge), label).backward())
ed = med(lambda: edge_from_label(label))
print(
    f"EAGRNetLoss: {eag:.0f} ms vs upsample+CE {ce:.0f} ms, ratio {eag / ce:.2f}; edge_from_label {ed:.0f} ms"
)
