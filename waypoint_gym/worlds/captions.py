"""The arena's caption grammar: a prompt such as "a snowy ice cave at night" read as one word per slot (`THEMES`).

`parse_caption` takes any text: the first known word (or synonym) of each slot wins, the rest is ignored."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Mood:
    """An adjective: an overlay on the textures and a change of light and fog."""

    overlay: str | None
    light_tint: tuple[float, float, float]
    extra_fog: float
    fog_color: RGB | None = None  # None: fog of the sky's colour (outdoors) or of darkness (indoors)


@dataclass(frozen=True)
class Material:
    """A wall material: texture pattern and palette, and an orb colour that stands out on it."""

    wall_pattern: str
    wall_color: RGB
    accent_color: RGB
    floor_color: RGB
    orb_color: RGB


@dataclass(frozen=True)
class Place:
    """A kind of place: map layout, sky or ceiling, floor texture, and the decoration on some walls."""

    layout: str
    open_sky: bool
    floor_pattern: str
    ceiling_pattern: str
    wall_feature: str


@dataclass(frozen=True)
class TimeOfDay:
    """A time of day: light colour and the sky's gradient."""

    light: tuple[float, float, float]
    sky_zenith: RGB
    sky_horizon: RGB
    stars: bool = False
    sun_color: RGB | None = None  # the sun (or moon) in the sky, if it is low enough to be seen
    sun_elevation: float = 0.0
    sun_radius: float = 0.06


# The four slots, each a table of words and what they mean (textures.py turns them into a look):
# adjective: a mood laid over everything ("mossy" grows moss, "snowy" covers the floor, "foggy" thickens fog),
# material: what the walls are made of (wall texture, floor colour, orb colour),
# place: the layout of the map, open sky or a ceiling, floor and ceiling textures,
# time of day: the colour of the light and of the sky.
# Generated captions read "a <adjective> <material> <place>[ at <time>]"; empty slots take DEFAULT_WORDS.
ADJECTIVES: dict[str, Mood] = {
    "mossy": Mood("moss", (0.9, 1.0, 0.85), 0.03),
    "sunny": Mood(None, (1.25, 1.15, 0.95), -0.02),
    "snowy": Mood("snow", (0.95, 1.0, 1.1), 0.02),
    "foggy": Mood(None, (0.9, 0.92, 0.95), 0.22, (170, 176, 184)),
    "dusty": Mood("dust", (1.1, 0.98, 0.8), 0.09, (176, 150, 108)),
    "rusty": Mood("rust", (1.05, 0.95, 0.88), 0.0),
    "glowing": Mood("glow", (0.6, 0.65, 0.8), 0.0),
}

MATERIALS: dict[str, Material] = {
    "stone": Material("blocks", (118, 114, 106), (62, 60, 56), (96, 92, 86), (255, 205, 60)),
    "brick": Material("bricks", (150, 66, 48), (170, 160, 150), (110, 90, 80), (70, 220, 255)),
    "desert": Material("strata", (214, 150, 88), (170, 98, 52), (222, 182, 120), (40, 220, 190)),
    "ice": Material("ice", (150, 200, 235), (240, 250, 255), (200, 225, 240), (255, 60, 150)),
    "wood": Material("planks", (132, 88, 50), (90, 56, 30), (120, 84, 52), (120, 255, 120)),
    "metal": Material("panels", (120, 128, 136), (70, 76, 84), (88, 92, 98), (255, 120, 40)),
}

PLACES: dict[str, Place] = {
    "dungeon": Place("rooms", False, "flagstones", "slabs", "torch"),
    "cave": Place("caves", False, "rock", "rock", "torch"),
    "canyon": Place("open", True, "sand", "", "darker"),
    "castle": Place("rooms", True, "cobbles", "", "banner"),
    "temple": Place("rooms", False, "tiles", "coffers", "torch"),
    "maze": Place("maze", True, "grass", "", "vines"),
}

TIMES: dict[str, TimeOfDay] = {
    "dawn": TimeOfDay((1.0, 0.82, 0.72), (92, 112, 178), (246, 172, 128), sun_color=(255, 226, 170),
                      sun_elevation=0.12),
    "noon": TimeOfDay((1.0, 1.0, 1.0), (58, 118, 218), (176, 208, 240)),
    "dusk": TimeOfDay((0.78, 0.6, 0.62), (52, 40, 98), (232, 118, 78), sun_color=(255, 176, 96),
                      sun_elevation=0.08, sun_radius=0.08),
    "night": TimeOfDay((0.32, 0.36, 0.5), (4, 6, 22), (22, 28, 58), stars=True, sun_color=(232, 232, 214),
                       sun_elevation=0.45, sun_radius=0.04),
}

# The grammar as data: slot name -> the words of that slot and what each means.
THEMES: dict[str, dict] = {"adjective": ADJECTIVES, "material": MATERIALS, "place": PLACES, "time": TIMES}

# What a slot means when the caption names no word for it.
DEFAULT_WORDS: dict[str, str | None] = {
    "adjective": None, "material": "stone", "place": "dungeon", "time": "noon",
}

# Other words read as a word of the grammar.
SYNONYMS: dict[str, str] = {
    "moss": "mossy", "sunlit": "sunny", "bright": "sunny", "snow": "snowy", "frosty": "snowy",
    "fog": "foggy", "misty": "foggy", "dust": "dusty", "sandy": "dusty", "rust": "rusty", "rusted": "rusty",
    "glow": "glowing", "rock": "stone", "rocky": "stone", "stones": "stone", "bricks": "brick",
    "sand": "desert", "sandstone": "desert", "icy": "ice", "frozen": "ice", "wooden": "wood",
    "timber": "wood", "steel": "metal", "iron": "metal", "metallic": "metal", "dungeons": "dungeon",
    "cavern": "cave", "caves": "cave",
    "canyons": "canyon", "valley": "canyon", "fortress": "castle", "castles": "castle", "shrine": "temple",
    "labyrinth": "maze", "sunrise": "dawn", "morning": "dawn", "midday": "noon", "day": "noon",
    "daytime": "noon", "sunset": "dusk", "evening": "dusk", "twilight": "dusk", "midnight": "night",
}

_FILLER_WORDS = frozenset({"a", "an", "the", "at", "in", "of", "on", "with", "during", "and", "by"})
_WORD_SLOT = {word: slot for slot, words in THEMES.items() for word in words}


@dataclass(frozen=True)
class Theme:
    """A caption read through the grammar: one word per slot, and the words that were not understood."""

    caption: str
    adjective: str | None
    material: str
    place: str
    time: str
    unknown_words: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        """The words that decide the look; two captions with the same key render identically."""
        return (self.adjective, self.material, self.place, self.time)

    @property
    def canonical_caption(self) -> str:
        """The caption in the grammar's own words, e.g. 'a mossy stone dungeon at noon'."""
        return caption_from_words(self.adjective, self.material, self.place, self.time)


def caption_from_words(adjective: str | None, material: str, place: str, time: str | None = None) -> str:
    """Write a caption of the grammar from its words."""
    words = [adjective, material, place]
    text = " ".join(word for word in words if word)
    article = "an" if text[:1] in "aeiou" else "a"
    return f"{article} {text}" + (f" at {time}" if time else "")


def parse_caption(text: str) -> Theme:
    """Read a caption: the first known word of each slot wins; other words are ignored (see DEFAULT_WORDS)."""
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, got {type(text).__name__}")
    chosen: dict[str, str | None] = {}
    unknown = []
    for token in re.findall(r"[a-z]+", text.lower()):
        word = SYNONYMS.get(token, token)
        slot = _WORD_SLOT.get(word)
        if slot is None:
            if token not in _FILLER_WORDS:
                unknown.append(token)
        elif slot not in chosen:
            chosen[slot] = word
    words = {slot: chosen.get(slot, default) for slot, default in DEFAULT_WORDS.items()}
    return Theme(caption=text, unknown_words=tuple(unknown), **words)


def all_captions() -> list[str]:
    """Every caption of the grammar, in a fixed order (adjective, material, place, then time or none)."""
    times: list[str | None] = [None, *TIMES]
    return [
        caption_from_words(adjective, material, place, time)
        for adjective, material, place, time in itertools.product(ADJECTIVES, MATERIALS, PLACES, times)
    ]


def sample_caption(rng: np.random.Generator) -> str:
    """Draw a caption of the grammar uniformly, slot by slot (the time is left out one time in five)."""
    times: list[str | None] = [None, *TIMES]
    adjective = list(ADJECTIVES)[int(rng.integers(len(ADJECTIVES)))]
    material = list(MATERIALS)[int(rng.integers(len(MATERIALS)))]
    place = list(PLACES)[int(rng.integers(len(PLACES)))]
    time = times[int(rng.integers(len(times)))]
    return caption_from_words(adjective, material, place, time)
