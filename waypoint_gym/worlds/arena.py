"""The arena game: a first-person orb hunt on a generated map, as N batched worlds (`ArenaBatch`) and as a
Gymnasium env of one world run through the same code (`ArenaEnv`), so both give the same frames for the same seeds."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from waypoint_gym.checks import check_seed, is_int, per_env_seeds
from waypoint_gym.display import require_display, usable_render_modes
from waypoint_gym.engine.controls import check_actions
from waypoint_gym.engine.keycodes import DEFAULT_KEYS, keycode
from waypoint_gym.worlds.captions import Theme, parse_caption
from waypoint_gym.worlds.layout import FAR, NEIGHBOURS, generate_layout, path_distances
from waypoint_gym.worlds.raycaster import Raycaster, max_orbs
from waypoint_gym.worlds.textures import theme_look

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "a mossy stone dungeon"

# The keys that do something; any other key in `keys` is accepted and ignored.
CONTROL_KEYS = ("W", "A", "S", "D", "SPACE", "SHIFT")
_FORWARD, _LEFT, _BACK, _RIGHT, _JUMP, _SPRINT = range(len(CONTROL_KEYS))

# Movement, in map cells (a cell is as wide as a wall is high) and radians per step.
WALK_SPEED = 0.1
SPRINT_SPEED = 0.18
TURN_RATE = 0.2
PITCH_RATE = 0.1
PITCH_LIMIT = 0.45
JUMP_SPEED = 0.1
GRAVITY = 0.025
JUMP_KEY = CONTROL_KEYS[_JUMP]
JUMP_FRAMES = 9  # frames a jump holds the camera off the ground, the one JUMP_KEY is pressed in first
AGENT_RADIUS = 0.2

# Orbs are picked up by walking within PICKUP_RADIUS of their centre.
PICKUP_RADIUS = 0.5


def _wrap_angle(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


# ----------------------------------------------------------------------------------------------------------
# Batched worlds


class ArenaBatch:
    """N arena worlds stepped and rendered together, vectorised over worlds (the engine behind `ArenaEnv`).

    Actions are arrays: `keys` (N, len(keys)) of 0/1 and `mouse` (N, 2) within [-1, 1]. Worlds do not
    reset by themselves: call `reset(..., env_indices=...)` for the ones that ended. World i reset with seed s
    is the same world as `ArenaEnv().reset(seed=s)`.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        size: int = 64,
        keys: Sequence[str] = DEFAULT_KEYS,
        prompt: str = DEFAULT_PROMPT,
        max_episode_steps: int = 500,
        num_orbs: int = 6,
        map_size: int = 15,
    ):
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not is_int(size) or not 16 <= size <= 512:
            raise ValueError(f"size must be an int between 16 and 512, got {size!r}")
        if isinstance(keys, str) or len(keys) == 0:
            raise ValueError(f"keys must be a non-empty sequence of key names, got {keys!r}")
        for name in keys:
            keycode(name)  # raises KeyError naming the unknown key
        self.keys = tuple(name.upper() for name in keys)
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys must not repeat, got {keys!r}")
        if not is_int(max_episode_steps) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if not is_int(map_size) or map_size % 2 == 0 or not 7 <= map_size <= 63:
            raise ValueError(f"map_size must be an odd int between 7 and 63, got {map_size!r}")
        most_orbs = max_orbs(size)  # as many as the score pips fit
        if not is_int(num_orbs) or not 1 <= num_orbs <= most_orbs:
            raise ValueError(
                f"num_orbs must be an int between 1 and {most_orbs} at size {size}, got {num_orbs!r}")
        parse_caption(prompt)  # raises TypeError for a non-str prompt

        self.num_envs, self.size, self.map_size = int(num_envs), int(size), int(map_size)
        self.num_orbs, self.max_episode_steps = int(num_orbs), int(max_episode_steps)
        self.prompt = prompt
        # Column of each control key in the keys action (0 and masked out when the control has no key).
        self._control_present = np.array([k in self.keys for k in CONTROL_KEYS])
        self._control_columns = np.array([self.keys.index(k) if k in self.keys else 0 for k in CONTROL_KEYS])

        n, g = self.num_envs, self.map_size
        self._view = Raycaster(n, self.size, g, self.num_orbs)
        self.prompts: list[str] = [prompt] * n
        self.themes: list[Theme | None] = [None] * n
        self._is_reset = np.zeros(n, bool)
        self._walls = np.ones((n, g, g), np.uint8)
        self._walls_flat = self._walls.reshape(-1)
        self._orb_steps = np.full((n, g, g), FAR, np.int32)
        self._orb_steps_flat = self._orb_steps.reshape(-1)
        self._position = np.zeros((n, 2))
        self._yaw = np.zeros(n)
        self._heading = np.zeros((2, n))  # cos and sin of the yaw
        self._pitch = np.zeros(n)
        self._jump_height = np.zeros(n)
        self._jump_speed = np.zeros(n)
        self._orbs = np.zeros((n, self.num_orbs, 2))
        self._orb_alive = np.zeros((n, self.num_orbs), bool)
        self._elapsed = np.zeros(n, np.int64)

        # Lookup constants.
        self._map_offsets = np.arange(n, dtype=np.intp) * g * g
        self._corner_offsets = np.array([-AGENT_RADIUS, AGENT_RADIUS])[:, None]
        self._move_offsets = np.tile(self._map_offsets, 3)
        self._neighbour_steps = np.array([dy * g + dx for dx, dy in NEIGHBOURS], np.intp)
        self._neighbour_directions = np.array(NEIGHBOURS, np.float64)
        self._env_rows = np.arange(n)

    # -- episode control -------------------------------------------------------------------------------------

    def reset(
        self,
        seed: int | Sequence[int | None] | None = None,
        prompt: str | Sequence[str] | None = None,
        env_indices: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in the chosen worlds (all by default); returns all frames and the info.

        An int `seed` seeds world i with `seed + i`; a sequence gives one seed per chosen world. `prompt` is
        one caption for all chosen worlds or one per world; None keeps the constructor's prompt.
        """
        indices = list(range(self.num_envs)) if env_indices is None else list(env_indices)
        for index in indices:
            if not is_int(index) or not 0 <= index < self.num_envs:
                raise IndexError(f"env index {index!r} out of range for {self.num_envs} worlds")
        indices = [int(i) for i in indices]
        if is_int(seed):  # world i takes seed + i, whichever worlds are chosen; the seed itself checked first
            (base,) = per_env_seeds(seed, 1)
            seed = [base + i for i in indices]
        seeds = per_env_seeds(seed, len(indices))  # all checked before any world changes
        if prompt is None or isinstance(prompt, str):
            prompts = [self.prompt if prompt is None else prompt] * len(indices)
        else:
            prompts = list(prompt)
            if len(prompts) != len(indices):
                raise ValueError(f"got {len(prompts)} prompts for {len(indices)} worlds")
        for world_prompt in prompts:
            parse_caption(world_prompt)  # raises TypeError for a non-str prompt, before any world changes
        for index, world_seed, world_prompt in zip(indices, seeds, prompts):
            rng, _ = seeding.np_random(world_seed)
            self.reset_world(index, rng, world_prompt)
        return self._render(), self.info()

    def reset_world(self, index: int, rng: np.random.Generator, prompt: str) -> None:
        """Draw a new world for one slot from `rng` (used by `ArenaEnv.reset` with its `np_random`)."""
        theme = parse_caption(prompt)
        if theme.unknown_words:
            logger.debug("prompt %r: ignoring unknown words %s", prompt, ", ".join(theme.unknown_words))
        look = theme_look(theme)
        layout = generate_layout(rng, look.layout, self.map_size, self.num_orbs)
        self.prompts[index], self.themes[index] = prompt, theme
        self._walls[index] = layout.walls
        self._position[index] = layout.start
        self._yaw[index] = _wrap_angle(np.float64(layout.start_yaw))
        self._heading = np.stack([np.cos(self._yaw), np.sin(self._yaw)])
        self._pitch[index] = self._jump_height[index] = self._jump_speed[index] = 0.0
        self._orbs[index] = layout.orbs
        self._orb_alive[index] = True
        self._elapsed[index] = 0
        self._view.set_theme(index, theme)
        self._is_reset[index] = True
        self._update_orb_steps(index)
        self._view.update_score(index, self._orb_alive[index])

    def teleport(self, index: int, position: Sequence[float], yaw: float | None = None,
                 pitch: float | None = None) -> None:
        """Put the agent of world `index` at `position` (x, y), optionally facing `yaw` (tests and demos)."""
        x, y = (float(value) for value in position)
        low, high = AGENT_RADIUS, self.map_size - AGENT_RADIUS
        inside = low <= x <= high and low <= y <= high
        if not inside or self._blocked(np.array([x]), np.array([y]), self._map_offsets[[index]])[0]:
            raise ValueError(
                f"position ({x:.2f}, {y:.2f}) is outside the map, inside a wall or too close to one")
        self._position[index] = (x, y)
        if yaw is not None:
            self._yaw[index] = _wrap_angle(np.float64(yaw))
            self._heading = np.stack([np.cos(self._yaw), np.sin(self._yaw)])
        if pitch is not None:
            self._pitch[index] = float(np.clip(pitch, -PITCH_LIMIT, PITCH_LIMIT))

    def step(
        self, keys: np.ndarray, mouse: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every world one step: frames, rewards, terminated, truncated and info (all batched)."""
        if not self._is_reset.all():
            never = np.flatnonzero(~self._is_reset).tolist()
            raise RuntimeError("call reset() before step()" + (f" (worlds {never} were never reset)"
                                                                if self.num_envs > 1 else ""))
        keys = np.asarray(keys)
        mouse = np.asarray(mouse, dtype=np.float64)
        if keys.shape != (self.num_envs, len(self.keys)):
            raise ValueError(f"keys must have shape {(self.num_envs, len(self.keys))}, got {keys.shape}")
        if mouse.shape != (self.num_envs, 2):
            raise ValueError(f"mouse must have shape {(self.num_envs, 2)}, got {mouse.shape}")
        if not (np.abs(mouse) <= 1.0).all():  # also catches NaN
            raise ValueError(f"mouse must be finite and within [-1, 1], got {mouse.tolist()}")
        pressed = (keys[:, self._control_columns] != 0) & self._control_present

        self._move(pressed, mouse)
        reward = self._collect_orbs()
        self._elapsed += 1
        terminated = ~self._orb_alive.any(axis=1)
        truncated = self._elapsed >= self.max_episode_steps
        return self._render(), reward, terminated, truncated, self.info()

    def render(self) -> np.ndarray:
        """The latest frames, (N, size, size, 3) uint8."""
        return self._view.frames

    # -- simulation ------------------------------------------------------------------------------------------

    def _blocked(self, x: np.ndarray, y: np.ndarray, map_offsets: np.ndarray) -> np.ndarray:
        """Whether an agent centred at (x, y) would overlap a wall; positions must lie inside the map."""
        columns = (x + self._corner_offsets).astype(np.intp)  # (2, M) left and right edge; x > 0: floors
        rows = (y + self._corner_offsets).astype(np.intp)
        corners = map_offsets + rows[:, None, :] * self.map_size + columns[None, :, :]
        return self._walls_flat[corners].reshape(4, -1).any(axis=0)

    def _move(self, pressed: np.ndarray, mouse: np.ndarray) -> None:
        n = self.num_envs
        self._yaw = (self._yaw + mouse[:, 0] * TURN_RATE + np.pi) % (2 * np.pi) - np.pi
        self._heading = np.stack([np.cos(self._yaw), np.sin(self._yaw)])
        pitch = self._pitch - mouse[:, 1] * PITCH_RATE
        self._pitch = np.minimum(np.maximum(pitch, -PITCH_LIMIT), PITCH_LIMIT)

        # Walk and strafe, in (forward, right) and then in map axes; diagonal moves are no faster.
        controls = pressed.T.astype(np.float64)
        forward = controls[_FORWARD] - controls[_BACK]
        strafe = controls[_RIGHT] - controls[_LEFT]
        speed = (WALK_SPEED + (SPRINT_SPEED - WALK_SPEED) * controls[_SPRINT]) / np.maximum(
            1.0, np.sqrt(forward * forward + strafe * strafe))
        cos_yaw, sin_yaw = self._heading
        x, y = self._position.T
        new_x = x + (cos_yaw * forward - sin_yaw * strafe) * speed
        new_y = y + (sin_yaw * forward + cos_yaw * strafe) * speed
        # Slide along walls: move in x if that is free, then in y from wherever x ended up.
        blocked = self._blocked(np.concatenate([new_x, x, new_x]), np.concatenate([y, new_y, new_y]),
                                self._move_offsets).reshape(3, n)
        x_free = ~blocked[0]
        y_free = np.where(x_free, ~blocked[2], ~blocked[1])
        self._position = np.stack([np.where(x_free, new_x, x), np.where(y_free, new_y, y)], axis=1)

        climb = np.where(pressed[:, _JUMP] & (self._jump_height == 0), JUMP_SPEED, self._jump_speed)
        self._jump_height = np.maximum(self._jump_height + climb, 0.0)
        self._jump_speed = np.where(self._jump_height > 0, climb - GRAVITY, 0.0)

    def _collect_orbs(self) -> np.ndarray:
        offset = self._orbs - self._position[:, None, :]
        squared = offset[..., 0] * offset[..., 0] + offset[..., 1] * offset[..., 1]
        collected = self._orb_alive & (squared < PICKUP_RADIUS ** 2)
        if collected.any():
            self._orb_alive &= ~collected
            for index in np.flatnonzero(collected.any(axis=1)):
                self._update_orb_steps(index)
                self._view.update_score(index, self._orb_alive[index])
        return collected.sum(axis=1).astype(np.float64)

    def _update_orb_steps(self, index: int) -> None:
        cells = np.floor(self._orbs[index][self._orb_alive[index]]).astype(int)
        self._orb_steps[index] = path_distances(self._walls[index] == 0, [tuple(cell) for cell in cells])

    # -- observation and info --------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Batched state for agents and logs: pose, orbs left, prompt, and where the nearest orb is.

        Bearings are radians relative to the view, positive to the right (turn right with mouse x > 0).
        `waypoint_bearing` points at the next cell on the shortest path to the orb nearest by path, and
        `path_distance` counts the cells on that path. Distances are inf once every orb is collected.
        """
        cos_yaw, sin_yaw = self._heading
        offset = self._orbs - self._position[:, None, :]
        offset_x, offset_y = offset[..., 0], offset[..., 1]
        distance = np.where(self._orb_alive, np.sqrt(offset_x * offset_x + offset_y * offset_y), np.inf)
        nearest = distance.argmin(axis=1)
        orbs_left = self._orb_alive.sum(axis=1)
        any_left = orbs_left > 0
        to_orb_x, to_orb_y = offset_x[self._env_rows, nearest], offset_y[self._env_rows, nearest]
        orb_bearing = np.arctan2(to_orb_y * cos_yaw - to_orb_x * sin_yaw,
                                 to_orb_x * cos_yaw + to_orb_y * sin_yaw)

        cell = self._position.astype(np.intp)  # positions are positive, so this floors
        here = self._map_offsets + cell[:, 1] * self.map_size + cell[:, 0]
        steps_here = self._orb_steps_flat[here]
        best = self._orb_steps_flat[here[:, None] + self._neighbour_steps].argmin(axis=1)
        direction = self._neighbour_directions[best] * (steps_here > 0)[:, None]
        to_target = cell + 0.5 + direction - self._position
        target_x, target_y = to_target[:, 0], to_target[:, 1]
        waypoint_bearing = np.arctan2(target_y * cos_yaw - target_x * sin_yaw,
                                      target_x * cos_yaw + target_y * sin_yaw)
        return {
            "position": self._position.copy(),
            "yaw": self._yaw.copy(),
            "pitch": self._pitch.copy(),
            "jump_height": self._jump_height.copy(),
            "orbs_left": orbs_left,
            "score": self.num_orbs - orbs_left,
            "elapsed_steps": self._elapsed.copy(),
            "prompt": list(self.prompts),
            "nearest_orb_bearing": np.where(any_left, orb_bearing, 0.0),
            "nearest_orb_distance": distance[self._env_rows, nearest],
            "waypoint_bearing": np.where(any_left, waypoint_bearing, 0.0),
            "path_distance": np.where(any_left, steps_here, np.inf),
        }

    def _render(self) -> np.ndarray:
        """Draw every world's view (see `Raycaster.render`); returns the frames."""
        return self._view.render(self._walls, self._position, self._heading, self._yaw, self._pitch,
                                 self._jump_height, self._orbs, self._orb_alive, self._elapsed)

# ----------------------------------------------------------------------------------------------------------
# Gymnasium environment


class ArenaEnv(gym.Env[np.ndarray, dict[str, np.ndarray]]):
    """
    ## Description

    A first-person orb hunt in a procedurally generated 3D world, drawn by a raycaster written in numpy.
    The agent walks through a grid of textured walls (a maze, caves, an open canyon or rooms and corridors)
    and collects the floating orbs. A text prompt picks the look of the world from a small caption grammar
    (see `waypoint_gym.worlds.captions`): "a mossy stone dungeon", "a sunny desert canyon at noon",
    "a snowy ice cave at night", ... Adjectives, materials, places and times of day each change palette,
    textures, light, fog, sky and map layout. This is the ground-truth game the world models are compared
    with.

    ## Action Space

    The same as the world-model environment: a `Dict` with

    - `"keys"`: `MultiBinary(len(keys))`, one entry per key name in `keys` (1 = held this step).
      W/S walk forward/back, A/D strafe left/right, SPACE jumps (the camera rises and falls over about
      8 steps), SHIFT sprints. Other key names are accepted and do nothing.
    - `"mouse"`: `Box(-1, 1, (2,), float32)`, relative mouse motion. `mouse[0] > 0` turns right
      (up to 0.2 rad per step), `mouse[1] > 0` tilts the view down (up to 0.1 rad per step, within
      ±0.45 rad).

    ## Observation Space

    `Box(0, 255, (size, size, 3), uint8)`: the first-person RGB view. Walls, floor and ceiling are shaded by
    distance, orbs are sprites hidden behind nearer walls, and a row of pips in the top-left corner shows the
    score (one pip per orb, lit once collected).

    ## Rewards

    +1 for each orb collected (the agent walks within 0.5 cells of its centre), 0 otherwise.

    ## Starting State

    Each reset draws a new map from the seed: the layout given by the prompt's place, `num_orbs` orbs at the
    centres of reachable floor cells, and the agent at the centre of a floor cell, facing an open neighbour.

    ## Episode End

    1. Termination: every orb has been collected.
    2. Truncation: the episode reaches `max_episode_steps` steps.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> env = gym.make("WaypointArena-v0", prompt="a sunny desert canyon at noon", render_mode="rgb_array")
    >>> obs, info = env.reset(seed=0, options={"prompt": "a snowy ice cave at night"})
    ```

    | Parameter           | Type       | Default                   | Description                            |
    |---------------------|------------|---------------------------|----------------------------------------|
    | `render_mode`       | **str**    | `None`                    | `"rgb_array"` or `"human"` (OpenCV)    |
    | `size`              | **int**    | `64`                      | height and width of the view in pixels |
    | `keys`              | **tuple**  | `DEFAULT_KEYS`            | key names of the `"keys"` action       |
    | `prompt`            | **str**    | `"a mossy stone dungeon"` | caption choosing the theme             |
    | `max_episode_steps` | **int**    | `500`                     | steps before truncation                |
    | `num_orbs`          | **int**    | `6`                       | orbs per map                           |
    | `map_size`          | **int**    | `15`                      | side of the square map in cells (odd)  |

    `reset` takes `options={"prompt": caption}` to use another caption for that episode (later resets without
    it go back to the constructor's prompt). `info` holds the agent's `position` (x, y in cells), `yaw`,
    `pitch`, `jump_height`, `orbs_left`, `score`, `elapsed_steps`, `prompt`, and for scripted agents the
    `nearest_orb_bearing` / `nearest_orb_distance` (straight line; bearing in radians, positive to the right)
    and `waypoint_bearing` / `path_distance` (along the shortest path through the maze). `teleport` moves the
    agent, for tests and demos.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        size: int = 64,
        keys: Sequence[str] = DEFAULT_KEYS,
        prompt: str = DEFAULT_PROMPT,
        max_episode_steps: int = 500,
        num_orbs: int = 6,
        map_size: int = 15,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = self.metadata["render_modes"]
            raise ValueError(f"render_mode must be one of {modes} or None, got {render_mode!r}")
        if render_mode == "human":
            require_display("render_mode='human'")
        self.metadata = usable_render_modes(self.metadata)  # what gymnasium's check_env tries
        self.render_mode = render_mode
        self._world = ArenaBatch(
            1, size=size, keys=keys, prompt=prompt, max_episode_steps=max_episode_steps, num_orbs=num_orbs,
            map_size=map_size,
        )
        self.keys = self._world.keys
        self.prompt = prompt
        self.action_space = spaces.Dict({
            "keys": spaces.MultiBinary(len(self.keys)),
            "mouse": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
        })
        self.observation_space = spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
        self._window: str | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        unknown = sorted(set(options) - {"prompt"})
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: ['prompt']")
        prompt = options.get("prompt", self.prompt)
        if not isinstance(prompt, str):
            raise TypeError(f"options['prompt'] must be a str caption, got {type(prompt).__name__}")
        super().reset(seed=check_seed(seed))
        self._world.reset_world(0, self.np_random, prompt)
        observation = self._world._render()[0]
        if self.render_mode == "human":
            self.render()
        return observation, self._info(self._world.info())

    def step(self, action: dict[str, np.ndarray]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        pressed, mouse = check_actions(action, len(self.keys))
        frames, reward, terminated, truncated, info = self._world.step(pressed[None], mouse[None])
        if self.render_mode == "human":
            self.render()
        return frames[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        frame = self._world.render()[0]
        if self.render_mode == "rgb_array":
            return frame.copy()
        if self._window is None:
            self._window = "WaypointArena"
            cv2.namedWindow(self._window, cv2.WINDOW_NORMAL)
        scale = max(1, 512 // self._world.size)
        big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.imshow(self._window, cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)
        return None

    def close(self) -> None:
        if self._window is not None:
            cv2.destroyWindow(self._window)
            self._window = None

    # -- helpers ---------------------------------------------------------------------------------------------

    @property
    def theme(self) -> Theme | None:
        """The theme of the current episode (None before the first reset)."""
        return self._world.themes[0]

    @property
    def walls(self) -> np.ndarray:
        """The current map, (map_size, map_size) uint8 indexed [y, x]: 0 floor, 1 wall, 2 decorated wall."""
        return self._world._walls[0].copy()

    @property
    def orb_positions(self) -> np.ndarray:
        """Centres (x, y) of the orbs not yet collected."""
        return self._world._orbs[0][self._world._orb_alive[0]].copy()

    def teleport(self, position: Sequence[float], yaw: float | None = None,
                 pitch: float | None = None) -> None:
        """Move the agent to `position` (x, y in cells), optionally turning it to `yaw` (radians, 0 = +x,
        pi/2 = +y) and `pitch`. For tests and demos; the next step collects any orb within reach."""
        self._world.teleport(0, position, yaw, pitch)

    @staticmethod
    def _info(batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "position": batch["position"][0],
            "yaw": float(batch["yaw"][0]),
            "pitch": float(batch["pitch"][0]),
            "jump_height": float(batch["jump_height"][0]),
            "orbs_left": int(batch["orbs_left"][0]),
            "score": int(batch["score"][0]),
            "elapsed_steps": int(batch["elapsed_steps"][0]),
            "prompt": batch["prompt"][0],
            "nearest_orb_bearing": float(batch["nearest_orb_bearing"][0]),
            "nearest_orb_distance": float(batch["nearest_orb_distance"][0]),
            "waypoint_bearing": float(batch["waypoint_bearing"][0]),
            "path_distance": float(batch["path_distance"][0]),
        }


class ArenaStarts:
    """Episode starts taken from the real game, for the Waypoint envs' `start_fn`: each call opens a new
    arena (its seed drawn from the generator it is given, its prompt drawn from `prompts`) and returns the
    arena's first frame as the seed frame, so a dreamed episode begins where a real one would.

    `arena_kwargs` go to ArenaEnv (e.g. `size`). `last_seed` and `last_prompt` describe the latest start.
    """

    def __init__(self, prompts: Sequence[str] | None = None, **arena_kwargs: Any):
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of captions, not one str; wrap it in a list")
        self.prompts = list(prompts) if prompts is not None else [DEFAULT_PROMPT]
        if not self.prompts or not all(isinstance(p, str) for p in self.prompts):
            raise ValueError(f"prompts must be a non-empty sequence of str captions, got {prompts!r}")
        self.arena = ArenaEnv(**arena_kwargs)
        self.last_seed: int | None = None
        self.last_prompt: str | None = None

    def __call__(self, rng: np.random.Generator) -> dict[str, Any]:
        self.last_prompt = prompt = self.prompts[int(rng.integers(len(self.prompts)))]
        self.last_seed = int(rng.integers(2**31 - 1))
        frame, _ = self.arena.reset(seed=self.last_seed, options={"prompt": prompt})
        return {"prompt": prompt, "seed_frames": frame}


def random_rollout(out_dir: str | os.PathLike, frames: int = 32, batch_size: int = 1, prompt: str | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """`frames` steps of `batch_size` arenas (seeds `seed`, `seed + 1`, ...) under random keys and mouse, as
    `waypoint-gym rollout real` plays them. Writes `out_dir/rollout.json` (the returned summary) and
    `out_dir/frames.png` (8 frames of arena 0)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    game = ArenaBatch(batch_size, max_episode_steps=frames + 1)
    frame, _ = game.reset(seed=[seed + i for i in range(batch_size)], prompt=[prompt or DEFAULT_PROMPT] * batch_size)
    rng = np.random.default_rng(seed)
    shown, orbs, t0 = [frame[0].copy()], 0, time.perf_counter()
    for _ in range(frames):
        pressed = rng.random((batch_size, len(game.keys))) < 0.2
        mouse = np.clip(rng.normal(0, 0.3, (batch_size, 2)), -1, 1)
        frame, reward, *_ = game.step(pressed, mouse)
        orbs += int(np.sum(np.asarray(reward) > 0))
        shown.append(frame[0].copy())
    seconds = time.perf_counter() - t0
    summary = {"world": "WaypointArena-v0", "frames": frames, "batch_size": batch_size,
               "prompt": prompt or DEFAULT_PROMPT, "seconds": seconds, "frames_per_s": frames * batch_size / seconds,
               "orbs": orbs}
    (out / "rollout.json").write_text(json.dumps(summary, indent=2))
    strip = np.concatenate(shown[:: max(1, len(shown) // 8)][:8], axis=1)
    if not cv2.imwrite(str(out / "frames.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out / 'frames.png'}")
    return summary
