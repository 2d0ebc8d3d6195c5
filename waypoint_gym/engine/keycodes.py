"""Key names to controller keycodes: the one table that maps what an agent presses onto the model's buttons.

Waypoint-1 was trained on Owl-Control recordings; we take their keycodes to be Windows virtual-key codes.
If that turns out wrong for some key, correct it here and nowhere else.
"""

from __future__ import annotations

KEYCODES: dict[str, int] = {
    "LMB": 1, "RMB": 2, "MMB": 4,
    "BACKSPACE": 8, "TAB": 9, "ENTER": 13, "SHIFT": 16, "CTRL": 17, "ALT": 18, "ESC": 27, "SPACE": 32,
    "LEFT": 37, "UP": 38, "RIGHT": 39, "DOWN": 40,
    **{str(d): 48 + d for d in range(10)},
    **{chr(c): c for c in range(ord("A"), ord("Z") + 1)},
    **{f"F{i}": 111 + i for i in range(1, 13)},
}

# The keys an agent gets when the model names none: move, jump, sprint.
DEFAULT_KEYS: tuple[str, ...] = ("W", "A", "S", "D", "SPACE", "SHIFT")


def keycode(name: str) -> int:
    """The keycode of a key name (case-insensitive)."""
    try:
        return KEYCODES[name.upper()]
    except (KeyError, AttributeError):
        raise KeyError(f"unknown key name {name!r}; known keys: {', '.join(KEYCODES)}") from None
