"""The arena's numpy raycaster: draws N first-person views of N wall grids at once (walls, floor, ceiling or sky,
orb sprites, score pips), vectorised over views, screen columns and pixels."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from waypoint_gym.worlds.captions import Theme
from waypoint_gym.worlds.textures import SKY_SHAPE, SKY_TOP_ELEVATION, TEXTURE_SIZE, theme_look

# Camera, in map cells (a cell is as wide as a wall is high) and radians.
FIELD_OF_VIEW = math.radians(66.0)
EYE_HEIGHT = 0.5

# Orbs: drawn as spheres floating above the floor.
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


def pip_scale(size: int) -> int:
    """Pixels per score-pip pixel: the score display grows with the view."""
    return max(1, size // 64)


def max_orbs(size: int) -> int:
    """The most orbs whose score pips fit across a view of `size` pixels."""
    return (size // pip_scale(size) - 4) // 3


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


class Raycaster:
    """Draws the views of N worlds: each world's theme (atlas, sky) and score pips live here, its pose and map are
    passed to `render`. Frames are (N, size, size, 3) uint8; a new array each `render`."""

    def __init__(self, num_envs: int, size: int, map_size: int, num_orbs: int):
        n, g = num_envs, map_size
        self.num_envs, self.size, self.map_size, self.num_orbs = num_envs, size, map_size, num_orbs
        self._hud_pips = self._score_pip_map(pip_scale(size))
        self._open_sky = np.zeros(n, bool)
        self._atlas = np.zeros((n, _SLOTS, LIGHT_LEVELS, TEXTURE_SIZE, TEXTURE_SIZE), "<u4")
        self._atlas_flat = self._atlas.reshape(-1)
        self.frames = np.zeros((n, size, size, 3), np.uint8)
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
        self._env_atlas_offsets = np.arange(n, dtype=np.intp) * (_SLOTS * LIGHT_LEVELS * _TEXELS)
        self._sky_offsets = (self._env_atlas_offsets + SKY * LIGHT_LEVELS * _TEXELS)[:, None]
        self._env_rows = np.arange(n)

    def set_theme(self, index: int, theme: Theme) -> None:
        """Draw world `index` with the textures, light and sky of `theme`."""
        self._open_sky[index] = theme_look(theme).open_sky
        self._atlas[index] = _theme_atlas(theme.key)
        middle = TEXTURE_SIZE // 2
        self._pip_colors[index] = self._atlas[index, ORB, 0, middle, middle:middle + 1].view(np.uint8)[:3]

    def update_score(self, index: int, orb_alive: np.ndarray) -> None:
        """One pip per orb (orb_alive: [num_orbs] bool): lit in the orb colour once collected, dim while out there."""
        palette = np.empty((self.num_orbs + 1, 3), np.uint8)
        palette[:-1] = np.where(orb_alive[:, None], np.uint8(70), self._pip_colors[index])
        palette[-1] = 15
        self._score_pixels[index] = palette[self._hud_pips]

    def render(self, walls: np.ndarray, position: np.ndarray, heading: np.ndarray, yaw: np.ndarray,
               pitch: np.ndarray, jump_height: np.ndarray, orbs: np.ndarray, orb_alive: np.ndarray,
               elapsed: np.ndarray) -> np.ndarray:
        """Draw every world's view: walls, floor, ceiling or sky, orbs, and the score pips.

        walls (N, G, G) uint8, position (N, 2) x y, heading (2, N) cos sin of yaw (N,), pitch (N,),
        jump_height (N,), orbs (N, K, 2), orb_alive (N, K) bool, elapsed (N,) steps (the orbs bob with it).
        """
        n, size = self.num_envs, self.size
        s, levels, focal = TEXTURE_SIZE, LIGHT_LEVELS, self._focal
        cos_yaw, sin_yaw = heading[:, :, None]
        # Ray through each column: view direction + camera_x * right, with right = (-sin, cos).
        rays = heading[:, :, None] + heading[::-1, :, None] * self._signed_camera_x
        env_base = self._env_atlas_offsets[:, None]

        # Walls, one column per ray.
        wall_distance, wall_slot, wall_u = self._cast_rays(rays, position, walls.reshape(-1))
        eye = (EYE_HEIGHT + jump_height)[:, None]
        horizon = (size / 2 + np.tan(pitch) * focal)[:, None]
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
        texel_origin = (position * s).astype(np.float32).T[:, :, None, None]
        texel_x = (texel_origin[0] + texel_rays[0] * distance).astype(np.intp) & (s - 1)
        texel_y = (texel_origin[1] + texel_rays[1] * distance).astype(np.intp) & (s - 1)
        plane_index = plane_base[:, :, None] + texel_y * s + texel_x

        if self._open_sky.any():
            # Sky texel row by elevation above the horizon, column by compass direction.
            elevation = np.arctan(np.maximum(-below, 0) * (1 / focal))
            sky_v = np.maximum(((1 - elevation / SKY_TOP_ELEVATION) * (_SKY_ROWS - 1)).astype(np.intp), 0)
            sky_rows = self._sky_offsets + sky_v * _SKY_COLUMNS
            azimuth = (yaw[:, None] + self._column_azimuth) * (_SKY_COLUMNS / (2 * np.pi))
            sky_columns = np.floor(azimuth).astype(np.intp) & (_SKY_COLUMNS - 1)
            sky_index = sky_rows[:, :, None] + sky_columns[:, None, :]
            shows_sky = ~is_floor & self._open_sky[:, None]
            np.copyto(plane_index, sky_index, where=shows_sky[:, :, None])
        np.copyto(index, plane_index, where=~is_wall)

        self._draw_orbs(index, wall_distance, horizon[:, 0], eye[:, 0], cos_yaw[:, 0], sin_yaw[:, 0],
                        position, orbs, orb_alive, elapsed)

        texels = np.take(self._atlas_flat, index).view(np.uint8).reshape(n * size, size, 4)
        self.frames = cv2.cvtColor(texels, cv2.COLOR_RGBA2RGB).reshape(n, size, size, 3)
        self._draw_score()
        return self.frames

    def _cast_rays(self, rays: np.ndarray, position: np.ndarray,
                   walls_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First wall along each ray (rays: (2, N, W) x and y components), all grid crossings at once.

        Axis 0 of the intermediate arrays is the kind of grid line crossed: 0 vertical (x = const), 1
        horizontal.
        Returns the perpendicular distance, the atlas slot of the wall and the texture column, each (N, W).
        """
        limit = self.map_size - 1
        position = position.T[:, :, None]  # (2, N, 1)
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
        first = (walls_flat[cells] != 0).argmax(axis=-1) + self._crossing_starts
        hit_distance, hit_cell = distance.reshape(-1)[first], cells.reshape(-1)[first]

        y_side = hit_distance[1] < hit_distance[0]
        wall_distance = np.where(y_side, hit_distance[1], hit_distance[0])
        wall_kind = walls_flat[np.where(y_side, hit_cell[1], hit_cell[0])].astype(np.intp)
        hit_point = position + wall_distance * rays
        along_wall = np.where(y_side, hit_point[0], hit_point[1])
        flip = np.where(y_side, positive[1], ~positive[0])  # so textures read left to right from either side
        u = np.abs(flip - (along_wall - np.floor(along_wall)))
        texture_column = np.minimum((u * TEXTURE_SIZE).astype(np.intp), TEXTURE_SIZE - 1)
        return wall_distance, wall_kind * 2 - 2 + y_side, texture_column

    def _draw_orbs(self, index: np.ndarray, wall_distance: np.ndarray, horizon: np.ndarray, eye: np.ndarray,
                   cos_yaw: np.ndarray, sin_yaw: np.ndarray, position: np.ndarray, orbs: np.ndarray,
                   orb_alive: np.ndarray, elapsed: np.ndarray) -> None:
        """Write orb sprites into the atlas index image, far to near, hidden where a wall is closer."""
        offset = orbs - position[:, None, :]
        depth = offset[..., 0] * cos_yaw[:, None] + offset[..., 1] * sin_yaw[:, None]
        lateral = offset[..., 1] * cos_yaw[:, None] - offset[..., 0] * sin_yaw[:, None]
        in_view = np.abs(lateral) - ORB_RADIUS < depth * self._tan_half_fov * 1.2
        visible = orb_alive & (depth > 0.1) & in_view
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
        height = ORB_HEIGHT + ORB_BOB * np.sin(0.15 * elapsed[:, None] + order)
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

    def _draw_score(self) -> None:
        height, width = self._hud_pips.shape
        self.frames[:, :height, :width] = self._score_pixels
