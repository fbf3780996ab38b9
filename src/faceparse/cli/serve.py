"""`faceparse serve`: the local web page (faceparse.serve) run with uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import check_device, console, fail, friendly_errors

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
@friendly_errors
def serve_command(
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        "-c",
        help="Weights: a run, stage or checkpoint folder (a joint run also shows the translator's depth); "
        "a faceparse .safetensors file; or a face-parsing.PyTorch .pth.",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. The default serves this machine only; 0.0.0.0 serves the network "
        "(the page has no login).",
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(
        20.0, "--max-upload-mb", min=0.001, help="Largest upload accepted, in megabytes (MiB)."
    ),
    max_megapixels: float = typer.Option(
        64.0,
        "--max-megapixels",
        min=0.001,
        help="Refuse images whose header claims more megapixels than this, before decoding them.",
    ),
    max_side: int = typer.Option(
        2048, "--max-side", min=16, help="Parse images longer than this (longer side) shrunk to fit."
    ),
    device: str = typer.Option(
        "cpu", "--device", callback=check_device, help="torch device, e.g. cpu or cuda:0."
    ),
) -> None:
    """Serve a web page to parse uploaded photos and depth maps with a checkpoint's parsers."""
    try:
        import uvicorn

        from faceparse.serve.app import create_app
    except ImportError as e:
        raise fail(f"faceparse serve needs the serve extra: pip install 'faceparse[serve]' ({e})") from None

    web = create_app(
        checkpoint,
        device=device,
        max_upload_bytes=round(max_upload_mb * 2**20),
        max_pixels=round(max_megapixels * 1e6),
        max_side=max_side,
    )
    info = web.state.service.describe()
    for modality, description in info["parsers"].items():
        console.print(f"{modality} parser: {description}")
    for what, why in info["unavailable"].items():
        console.print(f"no {what}: {why}", soft_wrap=True)
    if host not in LOOPBACK:
        console.print(f"[yellow]listening on {host}: anyone on the network can use the page[/yellow]")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"open http://{shown}:{port}/ (Ctrl-C stops the server)")
    uvicorn.run(web, host=host, port=port, log_level="warning")
    console.print("server stopped")
