"""A local web page for parsing faces (``faceparse serve``): upload a photo or a depth map, see the label
map, its legend, the overlay and, for RGB, the translator's predicted depth.

Needs the ``serve`` extra (Starlette, uvicorn, python-multipart). :func:`create_app` builds the app;
:class:`ParseService` is the part that needs no web server (checks, decoding, parsing, pictures).
"""

from faceparse.serve.service import ParseResult, ParseService, UploadRefused

__all__ = ["ParseResult", "ParseService", "UploadRefused", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - forwards to faceparse.serve.app.create_app
    """See :func:`faceparse.serve.app.create_app` (imports Starlette only when called)."""
    from faceparse.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
