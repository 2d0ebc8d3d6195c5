"""A first-person orb-collecting game drawn by a numpy raycaster: the ground-truth world for the world models.

`ArenaBatch` holds N worlds as arrays and steps and renders all of them at once, vectorised over worlds,
screen columns and pixels. `ArenaEnv` is the Gymnasium environment: one world, run through the same code
with N = 1, so a batch and single environments given the same seeds produce the same frames.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from waypoint_gym.engine.keycodes import DEFAULT_KEYS, keycode
from waypoint_gym.worlds.themes import (
    SKY_SHAPE,
    SKY_TOP_ELEVATION,
    TEXTURE_SIZE,
    Theme,
    parse_caption,
    theme_look,
)

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "a mossy stone dungeon"

# The keys that do something; any other key in `keys` is accepted and ignored.
CONTROL_KEYS = ("W", "A", "S", "D", "SPACE", "SHIFT")
_FORWARD, _LEFT, _BACK, _RIGHT, _JUMP, _SPRINT = range(len(CONTROL_KEYS))

# Camera and movement, in map cells (a cell is as wide as a wall is high) and radians per step.
FIELD_OF_VIEW = math.radians(66.0)
EYE_HEIGHT = 0.5
WALK_SPEED = 0.1
SPRINT_SPEED = 0.18
TURN_RATE = 0.2
PITCH_RATE = 0.1
PITCH_LIMIT = 0.45
JUMP_SPEED = 0.1
GRAVITY = 0.025
AGENT_RADIUS = 0.2

# Orbs: drawn as spheres floating above the floor, picked up by walking within PICKUP_RADIUS of their centre.
PICKUP_RADIUS = 0.5
ORB_RADIUS = 0.16
ORB_HEIGHT = 0.36
ORB_BOB = 0.04

# Shading: every texture is pre-lit at LIGHT_LEVELS distances, so a frame is a single lookup per pixel.
LIGHT_LEVELS = 32
SHADE_DISTANCE = 12.0
_LEVELS_PER_CELL = (LIGHT_LEVELS - 1) / SHADE_DISTANCE
SIDE_SHADE = 0.78  # walls facing north/south are a little darker, the classic raycaster look

# Texture slots of the atlas.
WALL, WALL_SIDE, FEATURE_WALL, FEATURE_WALL_SIDE, FLOOR, CEILING, SKY, ORB = range(8)
_SLOTS = 8
_TEXELS = TEXTURE_SIZE * TEXTURE_SIZE
_SKY_ROWS, _SKY_COLUMNS = SKY_SHAPE
assert _SKY_ROWS * _SKY_COLUMNS == LIGHT_LEVELS * _TEXELS, "the sky fills its atlas slot exactly"

_FAR = 1 << 20  # path distance of cells no orb can be reached from


@functools.lru_cache(maxsize=32)  # about 1 MB each
def _theme_atlas(key: tuple[str | None, str, str, str]) -> np.ndarray:
    """All textures of a theme pre-lit at every light level, as packed RGBX: (slots, levels, S, S) uint32."""
    look = theme_look(Theme(caption="", adjective=key[0], material=key[1], place=key[2], time=key[3]))
    distance = (np.arange(LIGHT_LEVELS, dtype=np.float32) + 0.5) / _LEVELS_PER_CELL
    surface_visibility = np.exp(-look.fog_density * distance)[:, None, None, None]
    orb_visibility = np.exp(-0.5 * look.fog_density * distance)[:, None, None, None]

    def lit(albedo: np.ndarray, emissive: np.ndarray | None, visibility: np.ndarray) -> np.ndarray:
        color = albedo * look.light if emissive is None else albedo * look.light + emissive
        return color[None] * visibility + look.fog_color * (1 - visibility)

    albedo, emissive = look.albedo, look.emissive
    slots = np.empty((_SLOTS, LIGHT_LEVELS, TEXTURE_SIZE, TEXTURE_SIZE, 3), np.float32)
    slots[WALL] = lit(albedo["wall"], emissive["wall"], surface_visibility)
    slots[WALL_SIDE] = lit(albedo["wall"] * SIDE_SHADE, emissive["wall"], surface_visibility)
    slots[FEATURE_WALL] = lit(albedo["wall_feature"], emissive["wall_feature"], surface_visibility)
    slots[FEATURE_WALL_SIDE] = lit(
        albedo["wall_feature"] * SIDE_SHADE, emissive["wall_feature"], surface_visibility)
    slots[FLOOR] = lit(albedo["floor"], emissive["floor"], surface_visibility)
    slots[CEILING] = lit(albedo["ceiling"], None, surface_visibility)
    slots[SKY] = albedo["sky"].reshape(LIGHT_LEVELS, TEXTURE_SIZE, TEXTURE_SIZE, 3)  # one big texture, unlit
    slots[ORB] = albedo["orb"][None] * orb_visibility + look.fog_color * (1 - orb_visibility)
    rgb = np.clip(slots * 255 + 0.5, 0, 255).astype(np.uint32)
    packed = rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
    packed = packed.astype("<u4")
    packed.flags.writeable = False
    return packed


# ----------------------------------------------------------------------------------------------------------
# Maps


@dataclass
class ArenaLayout:
    """A generated world: wall grid (0 floor, 1 wall, 2 decorated wall; row = y, column = x), start, orbs."""

    walls: np.ndarray
    start: np.ndarray
    start_yaw: float
    orbs: np.ndarray


_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (dx, dy): east, west, south, north


def _carve_maze(walls: np.ndarray, rng: np.random.Generator) -> None:
    """Recursive-backtracker maze on the odd cells."""
    size = walls.shape[0]
    cells_per_side = (size - 1) // 2
    start = (int(rng.integers(cells_per_side)), int(rng.integers(cells_per_side)))
    visited = {start}
    stack = [start]
    walls[2 * start[1] + 1, 2 * start[0] + 1] = 0
    while stack:
        cx, cy = stack[-1]
        options = [(cx + dx, cy + dy) for dx, dy in _NEIGHBOURS
                   if 0 <= cx + dx < cells_per_side and 0 <= cy + dy < cells_per_side
                   and (cx + dx, cy + dy) not in visited]
        if not options:
            stack.pop()
            continue
        nx, ny = options[int(rng.integers(len(options)))]
        walls[cy + ny + 1, cx + nx + 1] = 0
        walls[2 * ny + 1, 2 * nx + 1] = 0
        visited.add((nx, ny))
        stack.append((nx, ny))


def _open_walls(walls: np.ndarray, rng: np.random.Generator, fraction: float) -> None:
    """Knock out a fraction of the walls that separate two floor cells, making loops and open spaces."""
    inner = walls[1:-1, 1:-1]
    free = walls == 0
    between_x = free[1:-1, :-2] & free[1:-1, 2:]
    between_y = free[:-2, 1:-1] & free[2:, 1:-1]
    separating = (inner != 0) & (between_x | between_y)
    inner[separating & (rng.random(inner.shape) < fraction)] = 0


def _carve_rooms(walls: np.ndarray, rng: np.random.Generator) -> None:
    """Rectangular rooms joined in a chain by L-shaped corridors."""
    size = walls.shape[0]
    rooms: list[tuple[int, int, int, int]] = []
    for _ in range(40):
        width, height = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        x, y = int(rng.integers(1, size - width)), int(rng.integers(1, size - height))
        touches = (x <= ox + ow and ox <= x + width and y <= oy + oh and oy <= y + height
                   for ox, oy, ow, oh in rooms)
        if any(touches):  # keep at least one wall between rooms
            continue
        rooms.append((x, y, width, height))
        walls[y:y + height, x:x + width] = 0
        if len(rooms) == 7:
            break
    centres = [(x + int(rng.integers(w)), y + int(rng.integers(h))) for x, y, w, h in rooms]
    for (x0, y0), (x1, y1) in zip(centres, centres[1:]):
        corner = (x1, y0) if rng.random() < 0.5 else (x0, y1)
        for (ax, ay), (bx, by) in (((x0, y0), corner), (corner, (x1, y1))):
            walls[min(ay, by):max(ay, by) + 1, min(ax, bx):max(ax, bx) + 1] = 0


def path_distances(free: np.ndarray, sources: Sequence[tuple[int, int]]) -> np.ndarray:
    """Steps from every floor cell to the nearest source cell (x, y), moving between 4-neighbours."""
    size_y, size_x = free.shape
    distance = np.full(free.shape, _FAR, np.int32)
    queue: collections.deque[tuple[int, int]] = collections.deque()
    for x, y in sources:
        distance[y, x] = 0
        queue.append((x, y))
    while queue:
        x, y = queue.popleft()
        next_distance = distance[y, x] + 1
        for dx, dy in _NEIGHBOURS:
            nx, ny = x + dx, y + dy
            if 0 <= nx < size_x and 0 <= ny < size_y and free[ny, nx] and distance[ny, nx] > next_distance:
                distance[ny, nx] = next_distance
                queue.append((nx, ny))
    return distance


def generate_layout(rng: np.random.Generator, layout: str, map_size: int, num_orbs: int) -> ArenaLayout:
    """Draw a map of the given layout ("rooms", "maze", "caves" or "open"), a start pose and the orbs."""
    for _ in range(20):
        walls = np.ones((map_size, map_size), np.uint8)
        if layout == "rooms":
            _carve_rooms(walls, rng)
        elif layout in ("maze", "caves", "open"):
            _carve_maze(walls, rng)
            _open_walls(walls, rng, {"maze": 0.08, "caves": 0.3, "open": 0.6}[layout])
        else:
            raise ValueError(f"unknown layout {layout!r}")
        walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = 1
        free = walls == 0
        free_cells = np.argwhere(free)
        start_y, start_x = free_cells[int(rng.integers(len(free_cells)))]
        steps = path_distances(free, [(start_x, start_y)])
        reachable = np.argwhere(free & (steps < _FAR) & (steps > 0))
        if len(reachable) >= num_orbs:
            break
    else:
        raise ValueError(
            f"could not fit {num_orbs} orbs in a {map_size}x{map_size} {layout} map; use fewer orbs")

    border = np.zeros_like(free)
    border[:-1] |= free[1:]
    border[1:] |= free[:-1]
    border[:, :-1] |= free[:, 1:]
    border[:, 1:] |= free[:, :-1]
    decorated = (walls == 1) & border & (rng.random(walls.shape) < 0.12)
    walls[decorated] = 2

    far_enough = reachable[steps[reachable[:, 0], reachable[:, 1]] >= 3]
    candidates = far_enough if len(far_enough) >= num_orbs else reachable
    chosen = candidates[rng.choice(len(candidates), size=num_orbs, replace=False)]
    orbs = chosen[:, ::-1].astype(np.float64) + 0.5

    open_directions = [math.atan2(dy, dx) for dx, dy in _NEIGHBOURS if free[start_y + dy, start_x + dx]]
    yaw = open_directions[int(rng.integers(len(open_directions)))] + float(rng.uniform(-0.25, 0.25))
    return ArenaLayout(walls=walls, start=np.array([start_x + 0.5, start_y + 0.5]), start_yaw=yaw, orbs=orbs)


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
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(size, (int, np.integer)) or not 16 <= size <= 512:
            raise ValueError(f"size must be an int between 16 and 512, got {size!r}")
        if isinstance(keys, str) or len(keys) == 0:
            raise ValueError(f"keys must be a non-empty sequence of key names, got {keys!r}")
        for name in keys:
            keycode(name)  # raises KeyError naming the unknown key
        self.keys = tuple(name.upper() for name in keys)
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys must not repeat, got {keys!r}")
        if not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if not isinstance(map_size, (int, np.integer)) or map_size % 2 == 0 or not 7 <= map_size <= 63:
            raise ValueError(f"map_size must be an odd int between 7 and 63, got {map_size!r}")
        pip_scale = max(1, size // 64)
        max_orbs = (size // pip_scale - 4) // 3
        if not isinstance(num_orbs, (int, np.integer)) or not 1 <= num_orbs <= max_orbs:
            raise ValueError(
                f"num_orbs must be an int between 1 and {max_orbs} at size {size}, got {num_orbs!r}")
        parse_caption(prompt)  # raises TypeError for a non-str prompt

        self.num_envs, self.size, self.map_size = int(num_envs), int(size), int(map_size)
        self.num_orbs, self.max_episode_steps = int(num_orbs), int(max_episode_steps)
        self.prompt = prompt
        # Column of each control key in the keys action (0 and masked out when the control has no key).
        self._control_present = np.array([k in self.keys for k in CONTROL_KEYS])
        self._control_columns = np.array([self.keys.index(k) if k in self.keys else 0 for k in CONTROL_KEYS])

        n, g = self.num_envs, self.map_size
        self._hud_pips = self._score_pip_map(pip_scale)
        self.prompts: list[str] = [prompt] * n
        self.themes: list[Theme | None] = [None] * n
        self._is_reset = np.zeros(n, bool)
        self._walls = np.ones((n, g, g), np.uint8)
        self._walls_flat = self._walls.reshape(-1)
        self._orb_steps = np.full((n, g, g), _FAR, np.int32)
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
        self._open_sky = np.zeros(n, bool)
        self._atlas = np.zeros((n, _SLOTS, LIGHT_LEVELS, TEXTURE_SIZE, TEXTURE_SIZE), "<u4")
        self._atlas_flat = self._atlas.reshape(-1)
        self._frames = np.zeros((n, size, size, 3), np.uint8)
        self._pip_colors = np.zeros((n, 3), np.uint8)  # score pips of collected orbs take the orb colour
        self._score_pixels = np.zeros((n, *self._hud_pips.shape, 3), np.uint8)

        # Camera and lookup constants.
        self._tan_half_fov = math.tan(FIELD_OF_VIEW / 2)
        self._focal = size / 2 / self._tan_half_fov
        self._camera_x = (2 * (np.arange(size) + 0.5) / size - 1) * self._tan_half_fov
        self._signed_camera_x = np.stack([-self._camera_x, self._camera_x])[:, None, :]  # times (sin, cos)
        self._ray_length = np.sqrt(1 + self._camera_x ** 2)
        self._column_azimuth = np.arctan(self._camera_x)
        self._pixel_rows = (np.arange(size) + 0.5).astype(np.float32)[None, :, None]
        self._pixel_centres = (np.arange(size) + 0.5).astype(np.float32)
        self._map_offsets = np.arange(n, dtype=np.intp) * g * g
        self._crossings = np.arange(g - 2, dtype=np.float64)  # a ray meets the border within g - 2 crossings
        self._crossing_strides = (np.array([[1, g], [g, 1]], np.float64)[:, :, None, None, None])
        self._crossing_starts = np.arange(2 * n * size, dtype=np.intp).reshape(2, n, size) * (g - 2)
        self._corner_offsets = np.array([-AGENT_RADIUS, AGENT_RADIUS])[:, None]
        self._move_offsets = np.tile(self._map_offsets, 3)
        self._neighbour_steps = np.array([dy * g + dx for dx, dy in _NEIGHBOURS], np.intp)
        self._neighbour_directions = np.array(_NEIGHBOURS, np.float64)
        self._env_atlas_offsets = np.arange(n, dtype=np.intp) * (_SLOTS * LIGHT_LEVELS * _TEXELS)
        self._sky_offsets = (self._env_atlas_offsets + SKY * LIGHT_LEVELS * _TEXELS)[:, None]
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
        indices = list(range(self.num_envs)) if env_indices is None else [int(i) for i in env_indices]
        for index in indices:
            if not 0 <= index < self.num_envs:
                raise IndexError(f"env index {index} out of range for {self.num_envs} worlds")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in indices]
        else:
            seeds = list(seed)
            if len(seeds) != len(indices):
                raise ValueError(f"got {len(seeds)} seeds for {len(indices)} worlds")
        if prompt is None or isinstance(prompt, str):
            prompts = [self.prompt if prompt is None else prompt] * len(indices)
        else:
            prompts = list(prompt)
            if len(prompts) != len(indices):
                raise ValueError(f"got {len(prompts)} prompts for {len(indices)} worlds")
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
        self._open_sky[index] = look.open_sky
        self._atlas[index] = _theme_atlas(theme.key)
        middle = TEXTURE_SIZE // 2
        self._pip_colors[index] = self._atlas[index, ORB, 0, middle, middle:middle + 1].view(np.uint8)[:3]
        self._is_reset[index] = True
        self._update_orb_steps(index)
        self._update_score_pixels(index)

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
            raise RuntimeError("call reset() on every world before step()")
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
        return self._frames

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
                self._update_score_pixels(index)
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

    def _cast_rays(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First wall along each ray (rays: (2, N, W) x and y components), all grid crossings at once.

        Axis 0 of the intermediate arrays is the kind of grid line crossed: 0 vertical (x = const), 1
        horizontal.
        Returns the perpendicular distance, the atlas slot of the wall and the texture column, each (N, W).
        """
        limit = self.map_size - 1
        position = self._position.T[:, :, None]  # (2, N, 1)
        positive = rays > 0
        inverse = 1.0 / np.where(positive, np.maximum(rays, 1e-12), np.minimum(rays, -1e-12))
        first_line = np.floor(position) + positive
        walk = np.where(positive[..., None], self._crossings, -self._crossings)  # (2, N, W, K)
        distance = (first_line[..., None] + walk - position[..., None]) * inverse[..., None]
        cell_along = np.minimum(np.maximum((first_line + positive - 1)[..., None] + walk, 0), limit)
        cell_across = np.floor(position[::-1, :, :, None] + distance * rays[::-1, :, :, None])
        cell_across = np.minimum(np.maximum(cell_across, 0), limit)
        strides = self._crossing_strides
        cells = (cell_along * strides[0] + cell_across * strides[1]).astype(np.intp)
        cells += self._map_offsets[:, None, None]
        first = (self._walls_flat[cells] != 0).argmax(axis=-1) + self._crossing_starts
        hit_distance, hit_cell = distance.reshape(-1)[first], cells.reshape(-1)[first]

        y_side = hit_distance[1] < hit_distance[0]
        wall_distance = np.where(y_side, hit_distance[1], hit_distance[0])
        wall_kind = self._walls_flat[np.where(y_side, hit_cell[1], hit_cell[0])].astype(np.intp)
        hit_point = position + wall_distance * rays
        along_wall = np.where(y_side, hit_point[0], hit_point[1])
        flip = np.where(y_side, positive[1], ~positive[0])  # so textures read left to right from either side
        u = np.abs(flip - (along_wall - np.floor(along_wall)))
        texture_column = np.minimum((u * TEXTURE_SIZE).astype(np.intp), TEXTURE_SIZE - 1)
        return wall_distance, wall_kind * 2 - 2 + y_side, texture_column

    def _render(self) -> np.ndarray:
        """Draw every world's view: walls, floor, ceiling or sky, orbs, and the score pips."""
        n, size = self.num_envs, self.size
        s, levels, focal = TEXTURE_SIZE, LIGHT_LEVELS, self._focal
        cos_yaw, sin_yaw = self._heading[:, :, None]
        # Ray through each column: view direction + camera_x * right, with right = (-sin, cos).
        rays = self._heading[:, :, None] + self._heading[::-1, :, None] * self._signed_camera_x
        env_base = self._env_atlas_offsets[:, None]

        # Walls, one column per ray.
        wall_distance, wall_slot, wall_u = self._cast_rays(rays)
        eye = (EYE_HEIGHT + self._jump_height)[:, None]
        horizon = (size / 2 + np.tan(self._pitch) * focal)[:, None]
        wall_pixels = focal / wall_distance
        texels_per_pixel = s / wall_pixels
        wall_level = (wall_distance * self._ray_length * _LEVELS_PER_CELL).astype(np.intp)
        wall_level = np.minimum(wall_level, levels - 1)
        wall_base = env_base + (wall_slot * levels + wall_level) * _TEXELS + wall_u
        wall_v = self._pixel_rows * texels_per_pixel.astype(np.float32)[:, None, :]
        wall_v -= ((horizon - (1 - eye) * wall_pixels) * texels_per_pixel).astype(np.float32)[:, None, :]
        is_wall = (wall_v >= 0) & (wall_v < s)
        index = wall_base[:, None, :] + (wall_v.astype(np.intp) & (s - 1)) * s

        # Floor and ceiling: distance of the plane seen through each row, then its texel under each pixel.
        below = self._pixel_rows[:, :, 0] - horizon
        is_floor = below > 0
        plane_distance = np.where(is_floor, eye, 1 - eye) * focal / np.maximum(np.abs(below), 1e-3)
        plane_distance = np.minimum(plane_distance, 64.0)
        plane_level = np.minimum((plane_distance * _LEVELS_PER_CELL).astype(np.intp), levels - 1)
        plane_base = env_base + (np.where(is_floor, FLOOR, CEILING) * levels + plane_level) * _TEXELS
        distance = plane_distance.astype(np.float32)[:, :, None]
        texel_rays = (rays * s).astype(np.float32)[:, :, None, :]
        texel_origin = (self._position * s).astype(np.float32).T[:, :, None, None]
        texel_x = (texel_origin[0] + texel_rays[0] * distance).astype(np.intp) & (s - 1)
        texel_y = (texel_origin[1] + texel_rays[1] * distance).astype(np.intp) & (s - 1)
        plane_index = plane_base[:, :, None] + texel_y * s + texel_x

        if self._open_sky.any():
            # Sky texel row by elevation above the horizon, column by compass direction.
            elevation = np.arctan(np.maximum(-below, 0) * (1 / focal))
            sky_v = np.maximum(((1 - elevation / SKY_TOP_ELEVATION) * (_SKY_ROWS - 1)).astype(np.intp), 0)
            sky_rows = self._sky_offsets + sky_v * _SKY_COLUMNS
            azimuth = (self._yaw[:, None] + self._column_azimuth) * (_SKY_COLUMNS / (2 * np.pi))
            sky_columns = np.floor(azimuth).astype(np.intp) & (_SKY_COLUMNS - 1)
            sky_index = sky_rows[:, :, None] + sky_columns[:, None, :]
            shows_sky = ~is_floor & self._open_sky[:, None]
            np.copyto(plane_index, sky_index, where=shows_sky[:, :, None])
        np.copyto(index, plane_index, where=~is_wall)

        self._draw_orbs(index, wall_distance, horizon[:, 0], eye[:, 0], cos_yaw[:, 0], sin_yaw[:, 0])

        texels = np.take(self._atlas_flat, index).view(np.uint8).reshape(n * size, size, 4)
        self._frames = cv2.cvtColor(texels, cv2.COLOR_RGBA2RGB).reshape(n, size, size, 3)
        self._draw_score()
        return self._frames

    def _draw_orbs(self, index: np.ndarray, wall_distance: np.ndarray, horizon: np.ndarray, eye: np.ndarray,
                   cos_yaw: np.ndarray, sin_yaw: np.ndarray) -> None:
        """Write orb sprites into the atlas index image, far to near, hidden where a wall is closer."""
        offset = self._orbs - self._position[:, None, :]
        depth = offset[..., 0] * cos_yaw[:, None] + offset[..., 1] * sin_yaw[:, None]
        lateral = offset[..., 1] * cos_yaw[:, None] - offset[..., 0] * sin_yaw[:, None]
        in_view = np.abs(lateral) - ORB_RADIUS < depth * self._tan_half_fov * 1.2
        visible = self._orb_alive & (depth > 0.1) & in_view
        if not visible.any():
            return
        count = int(visible.sum(axis=1).max())
        if count == 1:
            order = visible.argmax(axis=1)[:, None]
        else:  # far to near, so nearer orbs are drawn over farther ones
            order = np.argsort(np.where(visible, -depth, np.inf), axis=1, kind="stable")[:, :count]
        rows = self._env_rows[:, None]
        depth, lateral, visible = depth[rows, order], lateral[rows, order], visible[rows, order]
        depth = np.where(visible, depth, 1.0)
        height = ORB_HEIGHT + ORB_BOB * np.sin(0.15 * self._elapsed[:, None] + order)
        s, focal = TEXTURE_SIZE, self._focal
        pixels_per_cell = focal / depth
        radius = (ORB_RADIUS * pixels_per_cell)[..., None]
        level = np.minimum((depth * _LEVELS_PER_CELL).astype(np.intp), LIGHT_LEVELS - 1)
        base = self._env_atlas_offsets[:, None] + (ORB * LIGHT_LEVELS + level) * _TEXELS

        # Sprite coordinates in units of the orb radius, per screen column (across) and row (down).
        centre_column = self.size / 2 + lateral * pixels_per_cell
        centre_row = horizon[:, None] + (eye[:, None] - height) * pixels_per_cell
        across = (self._pixel_centres - centre_column[..., None]) / radius
        down = (self._pixel_centres - centre_row[..., None]) / radius
        in_front = visible[..., None] & (depth[..., None] < wall_distance[:, None, :])
        across_squared = np.where(in_front, across * across, 2.0)  # 2.0: never inside the disc
        down_squared = down * down
        # Texel coordinates; out of range only outside the disc, where they are never used.
        u = ((across + 1) * (s / 2)).astype(np.intp)
        row_index = base[..., None] + ((down + 1) * (s / 2)).astype(np.intp) * s

        # Per-pixel work only inside the screen box that holds each orb in any world.
        columns_hit = (across_squared < 1).any(axis=0)
        rows_hit = (down_squared < 1).any(axis=0)
        for j in range(count):
            columns, lines = np.flatnonzero(columns_hit[j]), np.flatnonzero(rows_hit[j])
            if columns.size == 0 or lines.size == 0:
                continue
            left, right, top, bottom = columns[0], columns[-1] + 1, lines[0], lines[-1] + 1
            inside = across_squared[:, j, None, left:right] + down_squared[:, j, top:bottom, None] < 1
            texel = row_index[:, j, top:bottom, None] + u[:, j, None, left:right]
            np.copyto(index[:, top:bottom, left:right], texel, where=inside)

    def _score_pip_map(self, scale: int) -> np.ndarray:
        """Top-left score display: which orb each pixel shows (-1 is the dark backing)."""
        pips = np.full((5, 3 * self.num_orbs + 3), -1, np.int64)
        for orb in range(self.num_orbs):
            pips[2:4, 2 + 3 * orb:4 + 3 * orb] = orb
        return np.kron(pips, np.ones((scale, scale), np.int64)) if scale > 1 else pips

    def _update_score_pixels(self, index: int) -> None:
        """One pip per orb: lit in the orb colour once collected, dim while still out there."""
        palette = np.empty((self.num_orbs + 1, 3), np.uint8)
        palette[:-1] = np.where(self._orb_alive[index, :, None], np.uint8(70), self._pip_colors[index])
        palette[-1] = 15
        self._score_pixels[index] = palette[self._hud_pips]

    def _draw_score(self) -> None:
        height, width = self._hud_pips.shape
        self._frames[:, :height, :width] = self._score_pixels


# ----------------------------------------------------------------------------------------------------------
# Gymnasium environment


class ArenaEnv(gym.Env[np.ndarray, dict[str, np.ndarray]]):
    """
    ## Description

    A first-person orb hunt in a procedurally generated 3D world, drawn by a raycaster written in numpy.
    The agent walks through a grid of textured walls (a maze, caves, an open canyon or rooms and corridors)
    and collects the floating orbs. A text prompt picks the look of the world from a small caption grammar
    (see `waypoint_gym.worlds.themes`): "a mossy stone dungeon", "a sunny desert canyon at noon",
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
        super().reset(seed=seed)
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        unknown = sorted(set(options) - {"prompt"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; the only option is 'prompt'")
        prompt = options.get("prompt", self.prompt)
        if not isinstance(prompt, str):
            raise TypeError(f"options['prompt'] must be a str caption, got {type(prompt).__name__}")
        self._world.reset_world(0, self.np_random, prompt)
        observation = self._world._render()[0]
        if self.render_mode == "human":
            self.render()
        return observation, self._info(self._world.info())

    def step(self, action: dict[str, np.ndarray]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        keys, mouse = self._check_action(action)
        frames, reward, terminated, truncated, info = self._world.step(keys[None], mouse[None])
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

    def _check_action(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(action, Mapping):
            raise TypeError(f"action must be a dict with 'keys' and 'mouse', got {type(action).__name__}")
        if set(action) != {"keys", "mouse"}:
            missing = sorted({"keys", "mouse"} - set(action))
            extra = sorted(set(action) - {"keys", "mouse"}, key=str)
            raise ValueError(f"action must have exactly the entries 'keys' and 'mouse'; missing {missing}, "
                             f"unexpected {extra}")
        keys = np.asarray(action["keys"])
        if keys.shape != (len(self.keys),):
            raise ValueError(f"action['keys'] must have shape ({len(self.keys)},), one entry per key of "
                             f"{self.keys}, got shape {keys.shape}")
        if not ((keys == 0) | (keys == 1)).all():
            raise ValueError(f"action['keys'] must hold only 0 and 1, got {keys.tolist()}")
        try:
            mouse = np.asarray(action["mouse"], dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"action['mouse'] must be two numbers, got {action['mouse']!r}") from None
        if mouse.shape != (2,):
            raise ValueError(f"action['mouse'] must have shape (2,), got shape {mouse.shape}")
        if not np.isfinite(mouse).all():
            raise ValueError(f"action['mouse'] must be finite, got {mouse.tolist()} (NaN or inf)")
        if not (np.abs(mouse) <= 1.0).all():
            raise ValueError(f"action['mouse'] must lie within [-1, 1], got {mouse.tolist()}")
        return keys, mouse

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
