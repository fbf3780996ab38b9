"""Bad option values end with a message naming the option (exit code 2), never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from faceparse.cli import app


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("synth --out {tmp}/s --size 0", "--size"),
        ("synth --out {tmp}/s --workers -1", "--workers"),
        ("prepare lapa --root {tmp}/raw --out {tmp}/o --workers -1", "--workers"),
        ("prepare helen --root {tmp}/raw --out {tmp}/o --workers 0", "--workers"),
        ("prepare celebamask-hq --root {tmp}/raw --out {tmp}/o --size 0", "--size"),
        ("check-data {tmp} --workers 0", "--workers"),
        ("stats {tmp} --workers -1", "--workers"),
        ("convert-fpt {tmp}/a.pth {tmp}/b.safetensors --in-channels 0", "--in-channels"),
        ("evaluate --checkpoint {tmp} --device cuda:99", "cuda:99"),
        ("evaluate --checkpoint {tmp} --device warp-drive", "'warp-drive' is not a torch device"),
        ("predict -c {tmp} -i {tmp} -o {tmp}/p --device cuda:99", "cuda:99"),
        ("predict -c {tmp} -i {tmp} -o {tmp}/p --size 0", "--size"),
        ("export-onnx -c {tmp} -o {tmp}/m.onnx --size 0", "--size"),
        ("depth import-deep3dportrait --mats {tmp} --data {tmp} --depth-range 0", "--depth-range"),
        (
            "depth from-mesh --mesh {tmp}/m.obj --out {tmp}/d.png --camera {{}} --depth-range -1",
            "--depth-range",
        ),
        ("depth estimate --images {tmp} --out {tmp}/d --min-quality 2", "--min-quality"),
        ("train pretrain-rgb data.workers=-1", "data.workers must be ≥ 0"),
        ("train pretrain-rgb run.devices=0", "run.devices must be ≥ 1"),
        ("train pretrain-rgb run.accelerator=tpu", "run.accelerator=tpu"),  # no TPU backend installed
    ],
)
def test_a_bad_option_value_is_named_without_a_traceback(tmp_path, command, named):
    result = CliRunner().invoke(app, command.format(tmp=tmp_path).split())
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2, output
    assert named in output, output
    assert "Traceback" not in output and not isinstance(result.exception, ValueError | RuntimeError)
