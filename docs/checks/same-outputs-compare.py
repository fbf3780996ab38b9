import hashlib, json, sys
from pathlib import Path
from safetensors.torch import load_file
import torch
a, b = Path(sys.argv[1]), Path(sys.argv[2])
def files(root, pattern): return sorted(p.relative_to(root) for p in root.rglob(pattern))
same = diff = 0
for sub, pattern in (("data", "*.png"), ("data", "*.json"), ("data", "*.txt"), ("pred", "*.png")):
    fa, fb = files(a / sub, pattern), files(b / sub, pattern)
    assert fa == fb, (sub, pattern)
    for f in fa:
        if (a / sub / f).read_bytes() == (b / sub / f).read_bytes(): same += 1
        else: diff += 1; print("differs:", sub, f)
print(f"data + predictions: {same} files byte-identical, {diff} differ")
n = 0
for f in files(a / "run", "*.safetensors"):
    ta, tb = load_file(str(a / "run" / f)), load_file(str(b / "run" / f))
    assert ta.keys() == tb.keys(), f
    for k in ta:
        assert torch.equal(ta[k], tb[k]), (f, k)
    n += 1
print(f"weights: {n} safetensors files, every tensor equal")
ea, eb = json.loads((a / "eval/evaluation.json").read_text()), json.loads((b / "eval/evaluation.json").read_text())
def strip(d):
    if isinstance(d, dict): return {k: strip(v) for k, v in d.items() if k not in ("sources", "checkpoint", "path", "paths", "data")}
    if isinstance(d, list): return [strip(v) for v in d]
    return d
print("evaluation.json scores equal:", strip(ea) == strip(eb))
import onnxruntime as ort, numpy as np
x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
outs = [ort.InferenceSession(str(p / "parser.onnx"), providers=["CPUExecutionProvider"]).run(None, {ort.InferenceSession(str(p / "parser.onnx"), providers=["CPUExecutionProvider"]).get_inputs()[0].name: x})[0] for p in (a, b)]
print("onnx outputs equal:", np.array_equal(*outs))
