"""The screenshot docs/img/serve.png: the page in headless Chromium after parsing a synthetic head.

Usage: PYTHONPATH=src python docs/figures/serve_screenshot.py OUT.png [CHECKPOINT] [SAMPLE_INDEX]
(no checkpoint: the tests' untrained one). Needs Debian's chromium and chromium-driver and the dev extra.
"""
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import numpy as np
import uvicorn
from faceparse.data.synth import generate_sample
from faceparse.data.format import write_rgb
from faceparse.serve import create_app
from tiny import engine_checkpoint
import test_serve as ts

out = Path(sys.argv[1]); work = Path("/tmp/faceparse-serve-shot"); work.mkdir(parents=True, exist_ok=True)
ckpt = sys.argv[2] if len(sys.argv) > 2 else None
if ckpt is None:
    engine_checkpoint(work / "run", 64); ckpt = work / "run"
sample = generate_sample(int(sys.argv[3]) if len(sys.argv) > 3 else 1, 256, 0)
write_rgb(work / "head.png", sample["rgb"])
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
server = uvicorn.Server(uvicorn.Config(create_app(ckpt), log_level="warning"))
t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True); t.start()
while not server.started: time.sleep(0.05)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
d = ts._chromium(work)
d.set_window_size(1280, 1000)
try:
    d.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
    WebDriverWait(d, 30).until(lambda d: "Checkpoint" in d.find_element(By.ID, "server").text)
    d.find_element(By.ID, "file").send_keys(str(work / "head.png"))
    d.find_element(By.ID, "submit").click()
    WebDriverWait(d, 60).until(lambda d: d.find_element(By.ID, "result").get_attribute("data-state") == "done")
    d.save_screenshot(str(out))
finally:
    d.quit(); server.should_exit = True; t.join(10)
