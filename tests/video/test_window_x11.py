"""The app's window for real: the app under a virtual X server (Xvfb), a screenshot of its window
checked for the overlay's text, and ``q`` closing it.

Needs Xvfb, xwd and xdotool (Debian: ``apt-get install xvfb x11-apps xdotool``) and OpenCV's GUI
wheel (``make setup OPENCV=gui``); where any is missing, or no X server starts, the test is skipped
and says why. The headless wheel has no window at all, which the app already reports.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.video.fakes import LEVELS, write_clip

ROOT = Path(__file__).resolve().parents[2]
TITLE = "anytime classification"
CHILD = r"""
import os, sys
sys.path.insert(0, os.environ["WINDOW_ROOT"])
from apps.camera import main
from tests.video.fakes import FakeCascade
sys.exit(main(sys.argv[1:], cascade_factory=lambda folder, **kw: FakeCascade(input_size=(16, 16))))
"""


def _gui_opencv() -> str | None:
    import cv2

    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    return None if gui and not gui.upper().startswith("NONE") else "this OpenCV has no GUI (the headless wheel): " \
        "install the GUI one with `make setup OPENCV=gui`"


@pytest.fixture
def display():
    missing = [tool for tool in ("Xvfb", "xwd", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no X server can be started here: {', '.join(missing)} not installed "
                    "(Debian: apt-get install xvfb x11-apps xdotool)")
    why = _gui_opencv()
    if why:
        pytest.skip(why)
    number = next((n for n in range(91, 140) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                   and not Path(f"/tmp/.X{n}-lock").exists()), None)
    if number is None:
        pytest.skip("no free X display number between :91 and :139")
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not Path(f"/tmp/.X11-unix/X{number}").exists():
        server.kill()
        pytest.skip(f"Xvfb did not start: {(server.communicate()[1] or '').strip()[:200]}")
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def read_xwd(data: bytes) -> np.ndarray:
    """An ``xwd`` dump (ZPixmap, 24 or 32 bits per pixel) -> (H, W, 3) uint8 BGR."""
    fields = struct.unpack(">25I", data[:100])
    header, width, height, order, bpp, line, ncolors = (fields[i] for i in (0, 4, 5, 7, 11, 12, 19))
    start = header + 12 * ncolors
    raw = np.frombuffer(data[start:start + line * height], np.uint8).reshape(height, line)
    px = raw[:, :width * (bpp // 8)].reshape(height, width, bpp // 8)
    # LSBFirst: B, G, R(, pad) in memory; MSBFirst: the reverse
    return np.ascontiguousarray(px[:, :, :3] if order == 0 else px[:, :, ::-1][:, :, :3])


def x(display: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env=dict(os.environ, DISPLAY=display), capture_output=True, timeout=timeout)


def test_window_shows_the_overlay_and_q_closes_it(display, tmp_path):
    dominant, other = LEVELS[1]
    clip = write_clip(tmp_path / "clip.avi", [(1, 1)] * 900, fps=30.0)  # 30 s of solid green frames, paced
    engines = tmp_path / "engines" / "fake"
    engines.mkdir(parents=True)
    (engines / "manifest.json").write_text("{}")
    env = dict(os.environ, DISPLAY=display, WINDOW_ROOT=str(ROOT), QT_QPA_PLATFORM="xcb")
    app = subprocess.Popen([sys.executable, "-c", CHILD, "--engines", str(engines), "--source", str(clip), "--pace"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = ""
        deadline = time.monotonic() + 30
        while not window and time.monotonic() < deadline and app.poll() is None:
            window = x(display, "xdotool", "search", "--onlyvisible", "--name", TITLE).stdout.decode().split()
            window = window[0] if window else ""
            time.sleep(0.2)
        assert window, f"no window titled {TITLE!r} appeared: {app.stderr.read() if app.poll() is not None else ''}"
        time.sleep(1.0)  # a few frames drawn
        shot = read_xwd(x(display, "xwd", "-root", "-silent").stdout)  # (768, 1024, 3)
        frame = np.array([other, dominant, other])  # BGR of the clip's frames
        on_frame = np.abs(shot.astype(int) - frame).max(axis=2) < 12
        ys, xs = np.nonzero(on_frame)
        assert len(ys) > 50_000, "the clip's frame is not on the screen"
        top, left, bottom, right = ys.min(), xs.min(), ys.max(), xs.max()
        inside = shot[top:bottom + 1, left:right + 1].astype(int)
        h, w = inside.shape[:2]
        white = (inside > 200).all(axis=2)
        dark = np.abs(inside - frame * 2 // 5).max(axis=2) < 12  # the box darkened behind the text
        assert white[: h // 3, : w // 2].sum() > 150  # the overlay's text, top left
        assert dark[: h // 3, : w // 2].sum() > 1000
        assert white[h // 2:, w // 2:].sum() == 0 and dark[h // 2:, w // 2:].sum() == 0  # nowhere else
        x(display, "xdotool", "mousemove", str(left + w // 2), str(top + h // 2))
        x(display, "xdotool", "key", "q")
        out, err = app.communicate(timeout=20)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0, err
    assert "stopped: window closed (q/Esc)" in out and "Traceback" not in err
