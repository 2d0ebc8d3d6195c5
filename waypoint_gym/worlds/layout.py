"""Map generation for the arena: a wall grid (maze, caves, open or rooms), a start pose and orbs on reachable cells."""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FAR = 1 << 20  # path distance of cells no orb can be reached from
NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (dx, dy): east, west, south, north


@dataclass
class ArenaLayout:
    """A generated world: wall grid (0 floor, 1 wall, 2 decorated wall; row = y, column = x), start, orbs."""

    walls: np.ndarray
    start: np.ndarray
    start_yaw: float
    orbs: np.ndarray


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
        options = [(cx + dx, cy + dy) for dx, dy in NEIGHBOURS
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
    distance = np.full(free.shape, FAR, np.int32)
    queue: collections.deque[tuple[int, int]] = collections.deque()
    for x, y in sources:
        distance[y, x] = 0
        queue.append((x, y))
    while queue:
        x, y = queue.popleft()
        next_distance = distance[y, x] + 1
        for dx, dy in NEIGHBOURS:
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
        reachable = np.argwhere(free & (steps < FAR) & (steps > 0))
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

    open_directions = [math.atan2(dy, dx) for dx, dy in NEIGHBOURS if free[start_y + dy, start_x + dx]]
    yaw = open_directions[int(rng.integers(len(open_directions)))] + float(rng.uniform(-0.25, 0.25))
    return ArenaLayout(walls=walls, start=np.array([start_x + 0.5, start_y + 0.5]), start_yaw=yaw, orbs=orbs)
