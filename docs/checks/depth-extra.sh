#!/bin/bash
# Issue 11, packaging: does `pip install ".[depth]"` alone give a working offline depth backend?
# In a fresh virtual environment: torch first (the local 2.13.0 CPU wheel on our machines), then the
# project with its [depth] extra and nothing else; then `faceparse depth estimate` on scikit-image's
# astronaut() photo must write a depth map. Network: PyPI (mediapipe, jax, OpenCV wheels). ~15 min here.
# Usage: docs/checks/depth-extra.sh [WORKDIR]   (default: a new temporary folder)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
python3 -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install --quiet torch==2.13.0
git -C "$repo" archive HEAD | tar -x -C "$work" --one-top-level=src-tree
"$pip" install --quiet "$work/src-tree[depth]"
"$pip" list 2>/dev/null | grep -Ei "^(torch|mediapipe|jax|jaxlib|opencv|protobuf|numpy|scikit-image) " || true
mkdir -p "$work/in"
"$work/venv/bin/python" -c "
from PIL import Image; from skimage import data
Image.fromarray(data.astronaut()).save('$work/in/astronaut.png')"
"$work/venv/bin/faceparse" depth estimate --images "$work/in" --out "$work/out" 2>&1 | grep -v "^W0000\|^I0000" || true
"$work/venv/bin/python" -c "
import numpy as np; from faceparse.data.format import read_depth
d = read_depth('$work/out/astronaut.png'); print('depth map', d.shape, 'surface pixels', int((d > 0).sum()))
assert (d > 0).sum() > 1000, 'no face depth written'"
echo "OK: faceparse[depth] works from pip alone ($work)"
