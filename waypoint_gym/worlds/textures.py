"""Procedural textures and lighting of a theme (wall, floor, ceiling, sky, orb), synthesised once per caption key."""

from __future__ import annotations

import functools
import itertools
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from waypoint_gym.worlds.captions import ADJECTIVES, MATERIALS, PLACES, RGB, TIMES, Mood, Theme, TimeOfDay

TEXTURE_SIZE = 32  # texels per wall/floor cell side; a power of two so texture coordinates wrap with a mask
SKY_SHAPE = (64, 512)  # sky texels: rows from zenith down to the horizon, columns once round the compass
SKY_TOP_ELEVATION = 1.05  # radians above the horizon at the sky texture's first row

# Light of torches, which indoor places mix half-and-half with the time of day.
_TORCH_LIGHT = np.array([1.0, 0.85, 0.65], np.float32)


@dataclass
class ThemeLook:
    """Everything the renderer needs from a theme: textures (RGB in [0, 1], indexed [v, u]) and lighting.

    `albedo` and `emissive` map surface names ("wall", "wall_feature", "floor", "ceiling", "sky", "orb")
    to (TEXTURE_SIZE, TEXTURE_SIZE, 3) float32 arrays. Emissive light is not dimmed by the scene light.
    """

    albedo: dict[str, np.ndarray]
    emissive: dict[str, np.ndarray]
    light: np.ndarray
    fog_color: np.ndarray
    fog_density: float
    open_sky: bool
    layout: str


def theme_look(theme: Theme) -> ThemeLook:
    """Textures and lighting of a theme (cached by the theme's words)."""
    return _look_for_key(theme.key)


# ----------------------------------------------------------------------------------------------------------
# Texture synthesis. Runs once per theme, so clarity matters more than speed here.


def _color(rgb: RGB | np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float32) / 255.0


def _noise(rng: np.random.Generator, cells: int | tuple[int, int],
           shape: tuple[int, int] = (TEXTURE_SIZE, TEXTURE_SIZE)) -> np.ndarray:
    """Smooth value noise in [0, 1] over `shape`, from a grid of random `cells`, tiling seamlessly."""
    cells_y, cells_x = (cells, cells) if isinstance(cells, int) else cells
    height, width = shape
    tiled = np.tile(rng.random((cells_y, cells_x)).astype(np.float32), (3, 3))
    smooth = cv2.resize(tiled, (3 * width, 3 * height), interpolation=cv2.INTER_CUBIC)
    smooth = smooth[height:2 * height, width:2 * width]
    low, high = float(smooth.min()), float(smooth.max())
    return (smooth - low) / max(high - low, 1e-6)


def _fractal_noise(rng: np.random.Generator,
                   shape: tuple[int, int] = (TEXTURE_SIZE, TEXTURE_SIZE)) -> np.ndarray:
    aspect = shape[1] // shape[0]
    octaves = [(0.5, 4), (0.3, 8), (0.2, 16)]
    return sum(weight * _noise(rng, (cells, cells * aspect), shape) for weight, cells in octaves)


def _mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray | float) -> np.ndarray:
    weight = np.asarray(weight, np.float32)
    if weight.ndim == 2:
        weight = weight[..., None]
    return a * (1 - weight) + b * weight


def _grid() -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    return v, u


def _wall_texture(pattern: str, base: np.ndarray, accent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v, u = _grid()
    grain = _fractal_noise(rng)
    if pattern == "blocks":
        row = v // 8
        offset = (row * 11) % 16
        block = (u + offset) // 16
        block_shade = rng.uniform(0.8, 1.15, size=(4, 3))[row, block % 3]
        mortar = (v % 8 == 7) | ((u + offset) % 16 == 15)
        texture = base * (block_shade * (0.75 + 0.45 * grain))[..., None]
        texture[mortar] = accent
    elif pattern == "bricks":
        row = v // 8
        offset = (row % 2) * 8
        brick = (u + offset) // 16
        brick_shade = rng.uniform(0.78, 1.15, size=(4, 3))[row, brick % 3]
        mortar = (v % 8 == 7) | ((u + offset) % 16 == 15)
        texture = base * (brick_shade * (0.85 + 0.25 * grain))[..., None]
        texture[mortar] = accent * (0.85 + 0.2 * grain[mortar])[..., None]
    elif pattern == "strata":
        bands = 0.5 + 0.5 * np.sin(v * 0.55 + 3.0 * _noise(rng, 4))
        texture = _mix(base, accent, bands * 0.7) * (0.85 + 0.25 * grain)[..., None]
    elif pattern == "ice":
        cracks = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE), np.uint8)
        for _ in range(4):
            points = rng.integers(0, TEXTURE_SIZE, size=(3, 2)).astype(np.int32)
            cv2.polylines(cracks, [points.reshape(-1, 1, 2)], False, 1, 1)
        gloss = _noise(rng, 4)
        texture = base * (0.8 + 0.3 * gloss)[..., None] + 0.12 * (1 - v / TEXTURE_SIZE)[..., None]
        texture[cracks > 0] = accent
    elif pattern == "planks":
        plank = u // 8
        stripes = 0.5 + 0.5 * np.sin(v * 0.25 + 8 * _noise(rng, 4) + plank * 1.7)
        texture = _mix(base, accent, stripes * 0.45) * rng.uniform(0.85, 1.1, 4)[plank][..., None]
        texture[u % 8 == 0] = accent * 0.55
        texture[((v == 4) | (v == 27)) & (u % 8 == 4)] = accent * 0.3
    elif pattern == "panels":
        local_v, local_u = v % 16, u % 16
        lit_edge, shaded_edge = (local_v == 0) | (local_u == 0), (local_v == 15) | (local_u == 15)
        bevel = np.where(lit_edge, 1.25, np.where(shaded_edge, 0.6, 1.0))
        brushed = 0.9 + 0.2 * _noise(rng, 16)[:, :1].repeat(TEXTURE_SIZE, axis=1)
        texture = base * (bevel * brushed)[..., None]
        rivets = np.isin(local_v, (2, 13)) & np.isin(local_u, (2, 13))
        texture[rivets] = accent * 0.6
    else:
        raise ValueError(f"unknown wall pattern {pattern!r}")
    return texture.astype(np.float32)


def _floor_texture(pattern: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v, u = _grid()
    grain = _fractal_noise(rng)
    if pattern == "flagstones":
        offset = (v // 16) * 8
        tile = (v // 16) * 2 + (u + offset) // 16 % 2
        shade = rng.uniform(0.8, 1.1, 4)[tile]
        texture = base * (shade * (0.8 + 0.3 * grain))[..., None]
        texture[(v % 16 == 0) | ((u + offset) % 16 == 0)] = base * 0.45
    elif pattern == "rock":
        texture = base * (0.55 + 0.6 * grain)[..., None]
        pebbles = _noise(rng, 16) > 0.82
        texture[pebbles] = base * 1.2
    elif pattern == "sand":
        ripples = 0.5 + 0.5 * np.sin(u * 0.8 + 5 * _noise(rng, 4))
        texture = base * (0.85 + 0.12 * ripples + 0.1 * grain)[..., None]
    elif pattern == "cobbles":
        seeds = rng.uniform(0, TEXTURE_SIZE, size=(14, 2))
        distances = []
        for dv, du in itertools.product((-TEXTURE_SIZE, 0, TEXTURE_SIZE), repeat=2):
            distances.append(np.hypot(v[..., None] - seeds[:, 0] - dv, u[..., None] - seeds[:, 1] - du))
        nearest = np.sort(np.concatenate(distances, axis=-1), axis=-1)
        edge = np.clip((nearest[..., 1] - nearest[..., 0]) / 2.5, 0, 1)
        texture = base * ((0.45 + 0.6 * edge) * (0.85 + 0.25 * grain))[..., None]
    elif pattern == "tiles":
        checker = ((v // 16 + u // 16) % 2).astype(np.float32)
        texture = _mix(base * 1.15, base * 0.55, checker) * (0.92 + 0.12 * grain)[..., None]
        texture[(v % 16 == 0) | (u % 16 == 0)] = base * 0.35
    elif pattern == "grass":
        green = _mix(base, _color((66, 128, 44)), 0.75)
        blades = rng.random((TEXTURE_SIZE, TEXTURE_SIZE)) * 0.25
        texture = green * (0.7 + 0.4 * grain + blades)[..., None]
    else:
        raise ValueError(f"unknown floor pattern {pattern!r}")
    return texture.astype(np.float32)


def _ceiling_texture(pattern: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v, u = _grid()
    grain = _fractal_noise(rng)
    if pattern == "slabs":
        texture = base * (0.55 + 0.3 * grain)[..., None]
        texture[(v % 16 == 0) | (u == 0)] = base * 0.25
    elif pattern == "rock":
        texture = base * (0.35 + 0.45 * grain)[..., None]
    elif pattern == "coffers":
        local_v, local_u = v % 16, u % 16
        inner = (local_v > 3) & (local_v < 12) & (local_u > 3) & (local_u < 12)
        texture = base * np.where(inner, 0.45, 0.75)[..., None] * (0.9 + 0.15 * grain)[..., None]
    else:  # open sky: the ceiling is never drawn
        texture = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE, 3), np.float32)
    return texture.astype(np.float32)


def _add_wall_feature(
    feature: str, wall: np.ndarray, emissive: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The decorated wall variant: a torch, a banner, vines, or just a darker stone."""
    v, u = _grid()
    wall, emissive = wall.copy(), emissive.copy()
    if feature == "torch":
        flame = ((u - 15.5) / 2.6) ** 2 + ((v - 9.5) / 4.2) ** 2 < 1
        halo = np.clip(1 - np.hypot(u - 15.5, v - 10) / 9, 0, 1)
        wall = wall * (1 + 0.8 * halo)[..., None]
        wall[(v >= 13) & (v <= 21) & (u >= 15) & (u <= 16)] = _color((70, 45, 25))
        wall[(v >= 19) & (v <= 21) & (u >= 13) & (u <= 18)] = _color((40, 40, 44))
        emissive[flame] = _color((255, 170, 60))
        emissive[flame & (((u - 15.5) / 1.2) ** 2 + ((v - 11) / 2.2) ** 2 < 1)] = _color((255, 240, 170))
    elif feature == "banner":
        swallowtail = (v <= 27) & (np.abs(u - 15.5) > (v - 22) * 1.3)
        cloth = (u >= 9) & (u <= 22) & (v >= 2) & ((v <= 22) | swallowtail)
        wall[cloth] = _color((160, 28, 36))
        wall[cloth & ((u == 9) | (u == 22) | (v == 2))] = _color((220, 180, 60))
        wall[cloth & (np.abs(u - 15.5) < 2.5) & (np.abs(v - 11) < 2.5)] = _color((220, 180, 60))
    elif feature == "vines":
        for _ in range(5):
            column = rng.uniform(0, TEXTURE_SIZE)
            length = rng.uniform(12, TEXTURE_SIZE)
            strand = (np.abs(u - column - 1.5 * np.sin(v * 0.45 + column)) < 1.2) & (v < length)
            wall[strand] = _color((40, 110, 36)) * rng.uniform(0.8, 1.2)
    elif feature == "darker":
        wall = wall * 0.72
        wall[(v >= 20) & (v <= 22)] *= 0.7
    else:
        raise ValueError(f"unknown wall feature {feature!r}")
    return wall.astype(np.float32), emissive.astype(np.float32)


def _apply_overlay(overlay: str | None, surface: str, texture: np.ndarray, emissive: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lay an adjective's overlay (moss, snow, dust, rust, glowing veins) over a wall or floor texture."""
    if overlay is None:
        return texture, emissive
    v, u = _grid()
    blotches = _fractal_noise(rng)
    texture, emissive = texture.copy(), emissive.copy()
    is_wall = surface.startswith("wall")
    if overlay == "moss":
        lower = v / TEXTURE_SIZE if is_wall else 0.6
        mask = blotches + 0.5 * lower > 0.85
        texture[mask] = _color((58, 108, 38)) * (0.7 + 0.5 * blotches[mask])[..., None]
    elif overlay == "snow":
        if is_wall:
            mask = (v < 3 + 4 * blotches) | (rng.random(v.shape) < 0.04)
        else:
            mask = blotches > 0.3
        texture[mask] = _color((236, 242, 250)) * (0.9 + 0.1 * blotches[mask])[..., None]
    elif overlay == "dust":
        texture = _mix(texture, _color((190, 160, 112)), 0.3 * blotches + (0.0 if is_wall else 0.25))
    elif overlay == "rust":
        if is_wall:
            columns = rng.random(TEXTURE_SIZE) < 0.3
            mask = columns[u] & (v < 6 + 22 * blotches)
            texture[mask] = _mix(texture[mask], _color((142, 70, 28)), 0.75)
        else:
            mask = blotches > 0.6
            texture[mask] = _mix(texture[mask], _color((120, 62, 30)), 0.6)
    elif overlay == "glow":
        veins = np.abs(_noise(rng, 4) - 0.5) < 0.03
        emissive[veins] = _color((50, 220, 200))
    else:
        raise ValueError(f"unknown overlay {overlay!r}")
    return texture.astype(np.float32), emissive.astype(np.float32)


def _sky_texture(time: TimeOfDay, mood: Mood, rng: np.random.Generator) -> np.ndarray:
    """Sky of SKY_SHAPE: row 0 is SKY_TOP_ELEVATION above the horizon, the last row the horizon; columns go
    once round the compass. Gradient, then clouds or stars, the sun or moon, and the mood's haze."""
    height, width = SKY_SHAPE
    v, u = np.mgrid[0:height, 0:width]
    light = np.asarray(time.light, np.float32)
    sky = _mix(_color(time.sky_zenith), _color(time.sky_horizon), (v / (height - 1)) ** 1.6)
    if time.stars:
        stars = (rng.random(v.shape) < 0.006) & (v < height * 0.85)
        sky[stars] = _color((230, 230, 255)) * rng.uniform(0.5, 1.0, (int(stars.sum()), 1))
    else:
        cover = 0.4 if mood.light_tint[0] > 1.2 else 0.85
        clouds = np.clip((_fractal_noise(rng, SKY_SHAPE) - 0.55) * 3.0, 0, 1) * cover
        sky = _mix(sky, _color((255, 255, 255)) * light, clouds)
    if time.sun_color is not None:
        radians_per_column, radians_per_row = 2 * np.pi / width, SKY_TOP_ELEVATION / (height - 1)
        sun_row = (1 - time.sun_elevation / SKY_TOP_ELEVATION) * (height - 1)
        away = np.hypot((u - width / 4) * radians_per_column, (v - sun_row) * radians_per_row)
        glow = np.exp(-away / (2.5 * time.sun_radius)) * (0.0 if time.stars else 0.6)
        sky = _mix(sky, _color(time.sun_color), np.maximum(glow, (away < time.sun_radius).astype(np.float32)))
    if mood.fog_color is not None:
        sky = _mix(sky, _color(mood.fog_color) * light, min(1.0, mood.extra_fog * 3))
    return sky.astype(np.float32)


def _orb_texture(color: RGB) -> np.ndarray:
    """A shaded sphere with a highlight (corners outside the disc are never drawn)."""
    v, u = _grid()
    x = (u + 0.5) / TEXTURE_SIZE * 2 - 1
    y = (v + 0.5) / TEXTURE_SIZE * 2 - 1
    normal_z = np.sqrt(np.clip(1 - x ** 2 - y ** 2, 0, 1))
    light = np.array([-0.45, -0.55, 0.7])
    diffuse = np.clip(x * light[0] + y * light[1] + normal_z * light[2], 0, 1)
    highlight = np.clip(1 - np.hypot(x + 0.35, y + 0.4) / 0.3, 0, 1) ** 2
    sphere = _color(color) * (0.45 + 0.75 * diffuse)[..., None] + highlight[..., None]
    return np.clip(sphere, 0, 1.5).astype(np.float32)


def _stable_seed(*words: str | None) -> int:
    return zlib.crc32("/".join(word or "" for word in words).encode())


@functools.lru_cache(maxsize=128)
def _look_for_key(key: tuple[str | None, str, str, str]) -> ThemeLook:
    adjective, material_name, place_name, time_name = key
    mood = ADJECTIVES[adjective] if adjective else Mood(None, (1.0, 1.0, 1.0), 0.0)
    material, place, time = MATERIALS[material_name], PLACES[place_name], TIMES[time_name]
    rng = np.random.default_rng(_stable_seed(*key))
    zero = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE, 3), np.float32)

    wall_colors = _color(material.wall_color), _color(material.accent_color)
    wall = _wall_texture(material.wall_pattern, *wall_colors, rng)
    wall, wall_glow = _apply_overlay(mood.overlay, "wall", wall, zero, rng)
    feature, feature_glow = _add_wall_feature(place.wall_feature, wall, wall_glow, rng)
    floor = _floor_texture(place.floor_pattern, _color(material.floor_color), rng)
    floor, floor_glow = _apply_overlay(mood.overlay, "floor", floor, zero, rng)
    ceiling = _ceiling_texture(place.ceiling_pattern, _color(material.wall_color), rng)

    time_light = np.asarray(time.light, np.float32)
    light = time_light if place.open_sky else 0.5 * time_light + 0.5 * _TORCH_LIGHT
    light = light * np.asarray(mood.light_tint, np.float32)
    if place.open_sky:
        fog_color = _color(time.sky_horizon)
        fog_density = 0.05 + (0.08 if time.stars else 0.0)
    else:
        fog_color = _color((10, 8, 7)) * time_light
        fog_density = 0.15
    if mood.fog_color is not None:
        fog_color = _color(mood.fog_color) * (time_light if place.open_sky else light * 0.6)
    fog_density = max(0.01, fog_density + mood.extra_fog)

    return ThemeLook(
        albedo={
            "wall": wall, "wall_feature": feature, "floor": floor, "ceiling": ceiling,
            "sky": _sky_texture(time, mood, rng), "orb": _orb_texture(material.orb_color),
        },
        emissive={"wall": wall_glow, "wall_feature": feature_glow, "floor": floor_glow},
        light=light.astype(np.float32),
        fog_color=fog_color.astype(np.float32),
        fog_density=float(fog_density),
        open_sky=place.open_sky,
        layout=place.layout,
    )
