"""Play a world by hand: keyboard and mouse in an OpenCV window, at the world's frame rate.

`waypoint-gym play [WORLD]` where WORLD is `dream` (the bundled world, the default), a Waypoint checkpoint
folder or hub id, or `real` (the ground-truth game, WaypointArena-v0). Controls:

- W A S D move, SPACE jumps; a capital (Shift + letter, or Caps Lock) also holds SHIFT (sprint).
- Mouse motion in the window turns and looks (or the arrow keys: left/right turn, up/down look).
- Enter opens the prompt box: type a caption, Enter applies it (the world restarts from the current frame
  with the new prompt), Esc cancels. R restarts the episode, Esc (outside the box) or Q quits.

OpenCV reports key presses, not releases: a key counts as held for `hold` seconds after its last press
event, and the system's key repeat keeps it held. `record` saves the session as a video (what was shown) and
an `.npz` beside it (frames, keys, mouse, rewards, prompts per step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from waypoint_gym.display import require_display

# waitKeyEx codes of the arrow keys (GTK/X11, then Windows and Qt variants).
ARROWS = {
    "left": {65361, 2424832, 81}, "up": {65362, 2490368, 82},
    "right": {65363, 2555904, 83}, "down": {65364, 2621440, 84},
}
ENTER, ESCAPE, BACKSPACE = {10, 13}, 27, {8, 127, 65288}
ARROW_SPEED = 0.5  # mouse units per frame while an arrow key is held


@dataclass
class Controls:
    """Turns window events (key presses, mouse positions) into the env's Dict action each frame."""

    keys: tuple[str, ...]
    hold: float = 0.25  # seconds a key stays held after its last press event
    mouse_gain: float = 8.0  # mouse units per window width moved in one frame
    last_press: dict[str, float] = field(default_factory=dict)
    mouse_xy: tuple[float, float] | None = None
    _read_xy: tuple[float, float] | None = None

    def press(self, code: int, now: float) -> None:
        """Record a key press event (a waitKeyEx code) at time `now`."""
        for arrow, codes in ARROWS.items():
            if code in codes:
                self.last_press[arrow] = now
                return
        if not 0 < code < 0x110000:
            return
        char = chr(code & 0xFFFF) if code < 0x10000 else ""
        name = {" ": "SPACE"}.get(char, char.upper())
        if name in self.keys:
            self.last_press[name] = now
        if char.isalpha() and char.isupper():
            self.last_press["SHIFT"] = now

    def move(self, x: float, y: float) -> None:
        """Record the mouse position, as a fraction of the window's width and height."""
        self.mouse_xy = (x, y)

    def held(self, name: str, now: float) -> bool:
        return now - self.last_press.get(name, -np.inf) <= self.hold

    def action(self, now: float) -> dict[str, np.ndarray]:
        """The action of the frame at `now`: keys held, and the mouse motion since the previous frame."""
        keys = np.array([self.held(k, now) for k in self.keys], np.int8)
        mouse = np.zeros(2, np.float32)
        if self.mouse_xy is not None and self._read_xy is not None:
            mouse[:] = np.subtract(self.mouse_xy, self._read_xy) * self.mouse_gain
        self._read_xy = self.mouse_xy
        mouse[0] += ARROW_SPEED * (self.held("right", now) - self.held("left", now))
        mouse[1] += ARROW_SPEED * (self.held("down", now) - self.held("up", now))
        return {"keys": keys, "mouse": np.clip(mouse, -1.0, 1.0)}


def make_world(world: str = "dream", prompt: str | None = None, **kwargs) -> gym.Env:
    """The env to play: `dream` (the bundled world), `real` (WaypointArena-v0), or a checkpoint folder/hub id."""
    import waypoint_gym  # noqa: F401  (registers the ids)

    if world == "real":
        return gym.make("WaypointArena-v0", render_mode="rgb_array", **({"prompt": prompt} if prompt else {}))
    model = None if world == "dream" else world
    return gym.make("Waypoint-v0", model=model, prompt=prompt, render_mode="rgb_array", **kwargs)


class Recorder:
    """A session's frames as a video and its steps as an `.npz` (frames, keys, mouse, rewards, prompts)."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.steps: dict[str, list] = {"frames": [], "keys": [], "mouse": [], "rewards": [], "prompts": []}
        self.writer: cv2.VideoWriter | None = None

    def add(self, frame: np.ndarray, action: dict, reward: float, prompt: str) -> None:
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          frame.shape[1::-1])
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        for name, value in zip(self.steps, (frame, action["keys"], action["mouse"], reward, prompt)):
            self.steps[name].append(value)

    def close(self) -> Path:
        if self.writer is not None:
            self.writer.release()
        np.savez_compressed(self.path.with_suffix(".npz"), **{k: np.asarray(v) for k, v in self.steps.items()})
        return self.path


def _overlay(frame: np.ndarray, scale: int, lines: list[str]) -> np.ndarray:
    big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
    for i, text in enumerate(lines):
        y = 18 + 18 * i
        # A dark box behind the text: a thick dark copy of the text would be wider than the text itself.
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(big, (3, y - h - 3), (9 + w, y + base), (0, 0, 0), cv2.FILLED)
        cv2.putText(big, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return big


class OpenCVWindow:
    """The window: shows BGR images, returns key codes, reports mouse positions (fractions of its size)."""

    def __init__(self, title: str, on_mouse):
        require_display("waypoint-gym play")
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        self.size = (1, 1)
        cv2.setMouseCallback(title, lambda event, x, y, *_: on_mouse(x / self.size[0], y / self.size[1]))

    def show(self, image: np.ndarray) -> None:
        self.size = image.shape[1], image.shape[0]
        cv2.imshow(self.title, image)

    def wait_key(self, ms: int) -> int:
        return cv2.waitKeyEx(ms)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def play(world: str = "dream", prompt: str | None = None, record: str | Path | None = None, fps: float = 30.0,
         scale: int = 8, seed: int | None = None, max_steps: int | None = None, window=OpenCVWindow) -> dict:
    """Open the window and play until Esc/Q (or `max_steps`). Returns a summary of the session.

    `window(title, on_mouse)` makes the window (OpenCVWindow; tests pass a scripted one)."""
    if window is OpenCVWindow:
        require_display("waypoint-gym play")  # before the world is built
    env = make_world(world, prompt)
    if getattr(getattr(env.unwrapped, "world", None), "frames_per_latent", 1) > 1:
        fps = min(fps, env.unwrapped.metadata["render_fps"])  # Waypoint-1.5: a step is 4 video frames (15 steps/s)
    keys = env.unwrapped.keys
    controls = Controls(tuple(keys))
    screen = window(f"waypoint-gym: {world}", controls.move)
    obs, info = env.reset(seed=seed)
    recorder = Recorder(record, fps) if record else None
    typing: str | None = None  # the prompt box's text while it is open
    total, steps, episode_return, t_prev, frame_rate = 0.0, 0, 0.0, time.perf_counter(), 0.0
    current_prompt = info.get("prompt") or prompt or ""
    try:
        while max_steps is None or steps < max_steps:
            lines = [f"{current_prompt}  return {episode_return:.1f}  {frame_rate:.0f} fps"]
            if typing is not None:
                lines.append(f"prompt> {typing}_")
            screen.show(_overlay(obs, scale, lines))
            code = screen.wait_key(max(1, int(1000 * (1 / fps - (time.perf_counter() - t_prev)))))
            now = time.perf_counter()
            if typing is not None:  # the prompt box takes the keys
                if code in ENTER:
                    current_prompt = typing.strip() or current_prompt
                    opts = {"prompt": current_prompt}
                    if world != "real":
                        opts["seed_frames"] = obs  # go on from what is on screen
                    obs, info = env.reset(options=opts)
                    typing, episode_return = None, 0.0
                elif code == ESCAPE:
                    typing = None
                elif code in BACKSPACE:
                    typing = typing[:-1]
                elif 32 <= code < 127:
                    typing += chr(code)
                continue
            if code in ENTER:
                typing = ""
                continue
            if code == ESCAPE or code in (ord("q"), ord("Q")):
                break
            if code in (ord("r"), ord("R")):
                obs, info = env.reset(options={"prompt": current_prompt} if current_prompt else None)
                episode_return = 0.0
                continue
            if code != -1:
                controls.press(code, now)
            frame_rate, t_prev = 0.9 * frame_rate + 0.1 / max(now - t_prev, 1e-6), now
            action = controls.action(now)
            obs, reward, terminated, truncated, info = env.step(action)
            steps, total, episode_return = steps + 1, total + reward, episode_return + reward
            if recorder is not None:
                recorder.add(obs, action, float(reward), current_prompt)
            if terminated or truncated:
                obs, info = env.reset(options={"prompt": current_prompt} if current_prompt else None)
                episode_return = 0.0
    finally:
        screen.close()
        env.close()
        if recorder is not None:
            recorder.close()
    return {"world": world, "steps": steps, "return": total, "record": str(record) if record else None}
