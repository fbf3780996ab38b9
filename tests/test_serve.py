"""faceparse.serve: the web page's API through Starlette's TestClient, the `serve` command, and the page in
a real browser (Debian's headless Chromium driven by Selenium; marker `browser`)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceparse.data.format import write_depth, write_rgb
from faceparse.inference import face_parser
from faceparse.labels import get_scheme
from tiny import bomb_png, engine_checkpoint

pytest.importorskip("starlette", reason="faceparse serve needs the serve extra")
from starlette.testclient import TestClient  # noqa: E402

from faceparse.serve import ParseService, create_app  # noqa: E402

SIZE = 64
SCHEME = get_scheme("celebamask13")
KB = 1024


@pytest.fixture(scope="module")
def service(run_dir) -> ParseService:
    return ParseService(run_dir, max_upload_bytes=200 * KB)


@pytest.fixture(scope="module")
def client(service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as c:
        yield c


def _photo(height: int = 48, width: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _decoded(data_url: str) -> np.ndarray:
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))


def _post(client: TestClient, data: bytes, name: str = "face.png", **fields: str):
    return client.post("/api/parse", files={"file": (name, data, "image/png")}, data=fields)


def test_rgb_upload_returns_the_parsers_label_map(client, run_dir):
    photo = _photo()
    response = _post(client, _png(photo), parser="rgb")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] and (body["width"], body["height"]) == (80, 48)
    labels = _decoded(body["images"]["labels"])
    expected = face_parser(run_dir, "rgb")(photo, keep_logits=False)["labels"][0]
    np.testing.assert_array_equal(labels, expected)  # the same labels as the library gives
    np.testing.assert_array_equal(_decoded(body["images"]["input"]), photo)
    np.testing.assert_array_equal(_decoded(body["images"]["colors"]), SCHEME.colorize(expected))
    assert _decoded(body["images"]["overlay"]).shape == (48, 80, 3)
    depth = _decoded(body["images"]["depth"])  # the joint checkpoint's translator
    assert depth.shape == (48, 80, 3) and body["depth_note"] == ""
    legend = body["legend"]
    assert [c["name"] for c in legend] == list(SCHEME.classes)
    counts = np.bincount(expected.ravel(), minlength=SCHEME.num_classes) / expected.size
    assert [c["fraction"] for c in legend] == pytest.approx(counts, abs=1e-5)
    assert legend[1]["color"] == "#{:02x}{:02x}{:02x}".format(*SCHEME.colors[1])


def test_depth_upload_is_parsed_by_the_depth_parser(client, run_dir, tmp_path):
    yy, xx = np.mgrid[0:40, 0:56]
    nearness = np.clip(1.0 - ((yy - 20) ** 2 + (xx - 28) ** 2) / 400.0, 0.0, 1.0).astype(np.float32)
    write_depth(tmp_path / "d.png", nearness)  # the 16-bit nearness PNG of the dataset format
    response = _post(client, (tmp_path / "d.png").read_bytes(), "d.png", parser="depth")
    assert response.status_code == 200, response.text
    body = response.json()
    expected = face_parser(run_dir, "depth")(tmp_path / "d.png", keep_logits=False)["labels"][0]
    np.testing.assert_array_equal(_decoded(body["images"]["labels"]), expected)
    assert "depth" not in body["images"]  # the translator takes RGB


def test_depth_upload_in_millimetres_is_converted_as_predict_does(client, run_dir, tmp_path):
    from faceparse.data.synth import generate_sample

    z = generate_sample(1, SIZE, seed=0)["depth_m"]  # a synthetic head's camera z in metres, 0 = none
    millimetres = np.where(z > 0, np.round(z * 1000.0), 0).astype(np.uint16)
    Image.fromarray(millimetres).save(tmp_path / "mm.png")  # a depth camera's 16-bit PNG
    data = (tmp_path / "mm.png").read_bytes()
    response = _post(client, data, "mm.png", parser="depth", depth_units="mm")
    assert response.status_code == 200, response.text
    expected = face_parser(run_dir, "depth", depth_units="mm")(tmp_path / "mm.png", keep_logits=False)
    np.testing.assert_array_equal(_decoded(response.json()["images"]["labels"]), expected["labels"][0])
    response = _post(client, data, "mm.png", parser="depth", depth_units="inches")
    assert response.status_code == 400
    assert "depth units must be one of nearness, mm" in response.json()["error"]


def test_bad_uploads_get_a_clear_message_and_the_server_keeps_serving(client, tmp_path):
    good = _png(_photo())
    truncated = good[: len(good) // 2]
    response = _post(client, truncated, "cut.png")
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": response.json()["error"]}
    assert response.json()["error"].startswith("cut.png: ")
    assert "truncated" in response.json()["error"] and "Traceback" not in response.text
    assert _post(client, good).status_code == 200

    bomb = bomb_png(tmp_path / "bomb.png").read_bytes()  # 100000×100000 in under 100 bytes
    response = _post(client, bomb, "bomb.png")
    assert response.status_code == 400
    assert response.json()["error"] == (
        "bomb.png: 100000×100000 pixels (10000 megapixels) exceeds the limit of 64 megapixels on a decoded "
        "image; not decoded"
    )
    assert _post(client, good).status_code == 200

    response = _post(client, b"GIF89a" + b"\0" * 40, "x.gif")
    assert response.status_code == 415 and "x.gif: not an image" in response.json()["error"]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    response = _post(client, gif.getvalue(), "x.gif")
    assert response.status_code == 415
    assert response.json()["error"] == (
        "x.gif: a GIF image; the rgb parser takes a PNG, JPEG, BMP, WEBP or TIFF image"
    )
    assert _post(client, _png(_photo()), "color.png", parser="depth").status_code == 400  # colour "depth"
    assert _post(client, b"", "empty.png").json()["error"].startswith("empty.png: the file is empty")
    assert _post(client, good, parser="normals").status_code == 400
    assert "got 'feet'" in _post(client, good, parser="depth", depth_units="feet").text
    assert client.post("/api/parse", data={"parser": "rgb"}).status_code == 400  # no file at all
    assert client.get("/health").json() == {"status": "ok"}


def test_oversized_uploads_are_refused_before_decoding(client):
    big = np.random.default_rng(1).bytes(300 * KB)  # over the fixture's 200 KB, whatever it holds
    response = _post(client, big, "big.png")
    assert response.status_code == 413
    assert re.fullmatch(
        r"the upload: 0\.29\d MB is over the server's upload limit of 0\.195 MB", response.json()["error"]
    )
    assert _post(client, _png(_photo())).status_code == 200


def test_large_images_are_parsed_shrunk_and_say_so(run_dir):
    with TestClient(create_app(run_dir, max_side=40)) as small:
        body = _post(small, _png(_photo(48, 80))).json()
    assert (body["width"], body["height"]) == (40, 24)
    assert _decoded(body["images"]["labels"]).shape == (24, 40)
    assert body["notes"] == ["80×48 parsed at 40×24 (images longer than 40 pixels are shrunk to fit)"]


def test_align_warps_every_face_by_its_landmarks_and_back(run_dir):
    from faceparse.inference.align import CELEBA_HQ, Face

    # a face whose five landmarks sit on the CelebA-HQ template of a 24-pixel crop at (20, 10)
    landmarks = CELEBA_HQ.points((24, 24)) + np.array([20.0, 10.0])
    face = Face((22.0, 12.0, 42.0, 32.0), landmarks, 0.8)
    with TestClient(create_app(run_dir, landmarker=lambda rgb: [face])) as c:
        photo = _photo()
        body = _post(c, _png(photo), align="1").json()
        assert body["ok"] and len(body["faces"]) == 1 and body["faces"][0]["score"] == 0.8
        expected = face_parser(run_dir, "rgb", landmarker=lambda rgb: [face])(photo, align=True)
        np.testing.assert_array_equal(_decoded(body["images"]["labels"]), expected["labels"][0])
        assert body["box"] is not None and "depth" in body["images"]  # the translator's square crop
        none = TestClient(create_app(run_dir, landmarker=lambda rgb: []))
        assert _post(none, _png(photo), align="1").json()["notes"] == [
            "no face found: the whole image was parsed"
        ]
        assert "choose align" in _post(c, _png(photo), align="1", detect="1").text


def test_detect_crops_to_the_detected_face(run_dir):
    def detector(rgb: np.ndarray):
        return (10, 4, 32), 0.9  # square crop (x0, y0, side)

    with TestClient(create_app(run_dir, detector=detector)) as c:
        body = _post(c, _png(_photo()), detect="1").json()
        assert body["box"] == [10, 4, 32]
        labels = _decoded(body["images"]["labels"])
        assert (labels[:, :10] == 0).all() and (labels[:, 42:] == 0).all()  # background outside the crop
        depth = _decoded(body["images"]["depth"])
        assert (depth[:, :10] == 0).all() and (depth[:, 42:] == 0).all()
        assert "work on RGB photos" in _post(c, _png(_photo()), parser="depth", detect="1").text


def test_a_checkpoint_without_translator_says_so(tmp_path):
    engine_checkpoint(tmp_path, SIZE, generator=False)
    with TestClient(create_app(tmp_path)) as c:
        info = c.get("/api/info").json()
        assert not info["translator"] and set(info["parsers"]) == {"rgb", "depth"}
        body = _post(c, _png(_photo())).json()
    assert "depth" not in body["images"] and body["depth_note"] == "no translator in this checkpoint"


def test_a_parser_the_checkpoint_lacks_is_named(tmp_path):
    import torch

    from faceparse.models import build_model
    from faceparse.models.pretrained import PretrainedInfo, save_pretrained

    torch.manual_seed(0)
    model = build_model("bisenet", num_classes=19, in_channels=3)
    info = PretrainedInfo("bisenet", 19, 3, "celebamask19_fpt", "imagenet", "test")
    path = save_pretrained(model, info, tmp_path / "fpt.safetensors")  # an RGB parser alone
    with TestClient(create_app(path)) as c:
        info = c.get("/api/info").json()
        assert set(info["parsers"]) == {"rgb"} and not info["translator"]
        assert "3-channel input" in info["unavailable"]["depth"]
        response = _post(c, _png(np.full((20, 30), 128, np.uint8)), parser="depth")
        assert response.status_code == 400
        assert response.json()["error"].startswith("this checkpoint has no depth parser (")
        body = _post(c, _png(_photo(20, 30))).json()
    assert body["scheme"] == "celebamask19_fpt" and len(body["legend"]) == 19
    assert body["depth_note"] == "no translator in this checkpoint"


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "/api/parse" in page.text
    info = client.get("/api/info").json()
    assert info["max_upload_bytes"] == 200 * KB and info["translator"] and info["scheme"] == SCHEME.name


def test_an_unexpected_failure_is_one_line_not_a_traceback(run_dir, monkeypatch):
    service = ParseService(run_dir)
    monkeypatch.setattr(service, "_translate", lambda *a: 1 / 0)
    with TestClient(create_app(service)) as c:
        response = _post(c, _png(_photo()))
        assert response.status_code == 500
        assert response.json()["error"] == (
            "internal error while parsing (ZeroDivisionError); the server's log has the details"
        )
        depth = _png(np.full((20, 30), 128, np.uint8))  # an 8-bit nearness PNG
        assert _post(c, depth, parser="depth").status_code == 200  # still serving


def test_serve_command_refuses_a_missing_checkpoint(tmp_path):
    from typer.testing import CliRunner

    from faceparse.cli import app

    result = CliRunner().invoke(app, ["serve", "-c", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "weights not found" in " ".join(result.output.split())


def test_serve_command_binds_to_loopback_by_default(run_dir, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from faceparse.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda web, **kw: calls.append((web, kw)))
    result = CliRunner().invoke(app, ["serve", "-c", str(run_dir), "--max-upload-mb", "2"])
    assert result.exit_code == 0, result.output
    ((web, kw),) = calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8000
    assert web.state.service.max_upload_bytes == 2 * 2**20
    assert "open http://127.0.0.1:8000/" in result.output and "listening on" not in result.output
    result = CliRunner().invoke(app, ["serve", "-c", str(run_dir), "--host", "0.0.0.0", "--port", "9000"])
    assert calls[-1][1] == {"host": "0.0.0.0", "port": 9000, "log_level": "warning"}
    assert "anyone on the network can use the page" in " ".join(result.output.split())


# --- the page in a real browser ------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    """Why the browser test cannot run here (None: it can). CI installs both (.ci/run) and sets
    FACEPARSE_BROWSER_TEST=required, which turns a skip into a failure."""
    try:
        import selenium  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        return f"needs selenium and uvicorn (the dev extra): {e}"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) or shutil.which(Path(path).name)):
            return f"needs Debian's {package} ({path}): apt-get install -y chromium chromium-driver"
    return None


@pytest.fixture
def live_server(run_dir) -> Iterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1 in a thread; yields its address. Skips (or,
    with FACEPARSE_BROWSER_TEST=required, fails) first where the browser test cannot run."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("FACEPARSE_BROWSER_TEST") == "required":
            pytest.fail(f"FACEPARSE_BROWSER_TEST=required but the browser test {missing}")
        pytest.skip(missing)
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(run_dir), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _chromium(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    # headless, as root in a container, and never reaching out to Google's hosts (the network is closed)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1100",
        f"--user-data-dir={download_dir / 'profile'}",
    ):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager (which would download a driver) is never consulted
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)


@pytest.mark.browser
def test_the_page_in_headless_chromium(live_server, run_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = _photo(72, 96, seed=3)
    write_rgb(tmp_path / "face.png", photo)
    (tmp_path / "cut.png").write_bytes((tmp_path / "face.png").read_bytes()[:300])
    driver = _chromium(tmp_path)
    try:
        driver.get(live_server + "/")
        WebDriverWait(driver, 30).until(lambda d: "Checkpoint" in d.find_element(By.ID, "server").text)
        result = driver.find_element(By.ID, "result")

        def upload(path: Path, state: str) -> None:
            driver.execute_script("arguments[0].dataset.state = 'empty'", result)
            driver.find_element(By.ID, "file").send_keys(str(path))
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 60).until(lambda d: result.get_attribute("data-state") in ("done", "error"))
            assert result.get_attribute("data-state") == state, driver.find_element(By.ID, "error").text

        upload(tmp_path / "cut.png", "error")  # a truncated PNG: the message, on the page
        error = driver.find_element(By.ID, "error")
        assert error.is_displayed() and error.text.startswith("cut.png: ") and "truncated" in error.text
        upload(bomb_png(tmp_path / "bomb.png"), "error")  # 100000² in a header: refused unread
        assert error.text.startswith("bomb.png: 100000×100000 pixels (10000 megapixels) exceeds the limit")
        upload(tmp_path / "face.png", "done")  # the server kept serving
        assert not error.is_displayed()
        assert (result.get_attribute("data-width"), result.get_attribute("data-height")) == ("96", "72")
        labels = _decoded(driver.find_element(By.ID, "labels-link").get_attribute("href"))
        expected = face_parser(run_dir, "rgb")(photo, keep_logits=False)["labels"][0]
        np.testing.assert_array_equal(labels, expected)
        for name in ("input", "colors", "overlay", "depth"):  # every picture loaded at the image's size
            size = driver.execute_script(
                "const i = document.getElementById(arguments[0]); return [i.naturalWidth, i.naturalHeight];",
                f"img-{name}",
            )
            assert size == [96, 72], name
        shown = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#legend li.present")]
        assert shown and all(any(SCHEME.pretty(c) in text for c in SCHEME.classes) for text in shown)
        screenshot = Path(os.environ.get("FACEPARSE_SCREENSHOT", tmp_path / "serve.png"))
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
