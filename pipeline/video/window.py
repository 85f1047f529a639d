"""The app's window: the annotated frame shown, ``q`` or Esc to quit, and whether a display exists."""

from __future__ import annotations

import os
import sys
from typing import Any

WINDOW_TITLE = "anytime classification"


class Window:
    """An OpenCV window; :meth:`show` returns False once q or Esc is pressed or the window is closed."""

    def __init__(self, title: str = WINDOW_TITLE):
        import cv2

        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: Any) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


def display_available() -> tuple[bool, str]:
    """Whether a window can be shown here, and if not, why."""
    import cv2

    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if gui.upper().startswith("NONE"):
        return False, "this OpenCV has no GUI support (the headless wheel)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    return True, ""
