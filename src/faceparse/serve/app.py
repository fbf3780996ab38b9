"""The web app: one page (``GET /``), its JSON API (``POST /api/parse``, ``GET /api/info``), ``GET /health``.

``create_app(checkpoint)`` builds a Starlette app over a :class:`~faceparse.serve.service.ParseService`;
``faceparse serve`` runs it with uvicorn, and tests drive it with Starlette's ``TestClient``. Every
answer of the API is JSON; a refused upload is ``{"ok": false, "error": message}`` with its HTTP status
(400 unreadable or too many pixels, 413 too many bytes, 415 not an image the parser takes), and an
unexpected failure a 500 with a one-line message (the traceback goes to the server's log, never to the
page). The app keeps serving after any of them.
"""

from __future__ import annotations

import base64
import logging
import os
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from faceparse.data.format import MAX_PIXELS
from faceparse.inference.align import Landmarker
from faceparse.inference.detect import Detector
from faceparse.serve.service import (
    MAX_SIDE,
    MAX_UPLOAD_BYTES,
    ParseResult,
    ParseService,
    UploadRefused,
    too_many_bytes,
)

log = logging.getLogger("faceparse.serve")
FORM_SLACK = 64 * 1024  # bytes of a multipart body beyond the file itself: boundaries, headers, fields


def create_app(
    checkpoint: str | os.PathLike | ParseService,
    *,
    device: str = "cpu",
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = MAX_SIDE,
    detector: Detector | None = None,
    landmarker: Landmarker | None = None,
) -> Starlette:
    """The page and API over the networks of ``checkpoint`` (a run, stage or checkpoint folder, a
    ``.safetensors`` or ``.pth``; or a ready :class:`ParseService`). A checkpoint without any parser is a
    :class:`~faceparse.utils.io.DataError` here, before the server starts."""
    service = (
        checkpoint
        if isinstance(checkpoint, ParseService)
        else ParseService(
            checkpoint,
            device=device,
            max_upload_bytes=max_upload_bytes,
            max_pixels=max_pixels,
            max_side=max_side,
            detector=detector,
            landmarker=landmarker,
        )
    )
    page = resources.files("faceparse.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(request: Request) -> Response:
        return JSONResponse(service.describe())

    async def parse(request: Request) -> Response:
        try:
            form = await _read_form(request, service.max_upload_bytes)
            try:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise UploadRefused(
                        400, "no file in the request: send the image as the form field 'file'"
                    )
                data, filename = await upload.read(), upload.filename or "upload"
            finally:
                await form.close()  # the upload's spooled temporary file
            result = await run_in_threadpool(
                service.parse,
                data,
                filename,
                str(form.get("parser", "rgb")),
                align=_checked(form.get("align")),
                detect=_checked(form.get("detect")),
                depth_units=str(form.get("depth_units", "nearness")),
            )
        except UploadRefused as e:
            log.info("refused an upload (%d): %s", e.status, e.message)
            return JSONResponse({"ok": False, "error": e.message}, status_code=e.status)
        except Exception as e:  # never a traceback on the page; the log keeps it
            log.exception("parsing an upload failed")
            message = f"internal error while parsing ({type(e).__name__}); the server's log has the details"
            return JSONResponse({"ok": False, "error": message}, status_code=500)
        return JSONResponse(_result_json(result))

    routes = [
        Route("/", index),
        Route("/health", health),
        Route("/api/info", info),
        Route("/api/parse", parse, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.service = service
    return app


async def _read_form(request: Request, max_upload_bytes: int) -> Any:
    """The multipart form of ``request``, refusing (413) a body over the limit before reading it where
    its Content-Length says so, and otherwise as soon as the bytes read pass it."""
    limit = max_upload_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadRefused(413, too_many_bytes("the upload", int(declared), max_upload_bytes))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadRefused(400, "send the image as multipart/form-data (an HTML form with a file field)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadRefused(413, too_many_bytes("the upload", len(body), max_upload_bytes))

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as e:  # starlette's MultiPartException and python-multipart's parse errors
        raise UploadRefused(400, f"malformed form data ({e})") from None


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _result_json(result: ParseResult) -> dict[str, Any]:
    height, width = result.size
    return {
        "ok": True,
        "parser": result.parser,
        "width": width,
        "height": height,
        "original_width": result.original_size[1],
        "original_height": result.original_size[0],
        "scheme": result.scheme.name,
        "legend": result.legend(),
        "images": {name: _data_url(png) for name, png in result.pictures.items()},
        "depth_note": result.depth_note,
        "box": None if result.box is None else list(result.box),
        "faces": result.faces,
        "notes": result.notes,
        "seconds": result.seconds,
    }


__all__ = ["create_app"]


def _checked(value: Any) -> bool:
    """A form checkbox or flag: ``1``, ``true``, ``on``, ``yes``."""
    return str(value or "").lower() in ("1", "true", "on", "yes")
