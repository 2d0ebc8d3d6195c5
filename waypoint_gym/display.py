"""Whether OpenCV can open a window here: without a display its Qt backend aborts the whole process, so windows
are refused first with an error that says how to run headless."""

from __future__ import annotations

import os
import sys


def has_display() -> bool:
    """A display to open windows on: an X or Wayland one on Linux (or Qt told to draw off screen); elsewhere
    assumed."""
    if not sys.platform.startswith("linux"):
        return True
    env = os.environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


def require_display(what: str) -> None:
    """Raise a RuntimeError naming `what` when no window can be opened."""
    if not has_display():
        raise RuntimeError(
            f"{what} opens a window, but this machine has no display (DISPLAY and WAYLAND_DISPLAY are unset); "
            "run headless with render_mode='rgb_array' (frames as arrays, e.g. for RecordVideo), or give it a "
            "virtual display: xvfb-run -a python ..."
        )


def usable_render_modes(metadata: dict) -> dict:
    """An env's metadata with only the render modes that work here: "human" needs a display."""
    modes = [m for m in metadata["render_modes"] if m != "human" or has_display()]
    return {**metadata, "render_modes": modes}
