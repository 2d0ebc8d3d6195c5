"""Paired rollouts: the real game and a world model's dream of it, from the same start under the same actions.

The world model and the real game (`ArenaBatch`) start from the same seed frames of held-out worlds (seeds from
`EVAL_SEED` up, far from the seeds training collections use) and get the same actions. Frame 0 is the reset
observation, appended to the model as a seed frame with no keys held; frame t is the result of action t.
Worlds run in chunks of the engine's batch size; world i of a metric has seed `seed + i` and caption
`captions[i % len(captions)]`. Every metric module loops over `Harness.pairs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from waypoint_gym.engine import WorldEngine
from waypoint_gym.envs.world_batch import WorldBatch
from waypoint_gym.training.collect import ExplorationPolicy
from waypoint_gym.worlds import all_captions
from waypoint_gym.worlds.arena import ArenaBatch

EVAL_SEED = 1_000_000  # world seeds of evaluations start here; training collections use 0, 1, 2, ...
SEED_BLOCK = 100_000  # seed distance between the metrics of one evaluation, so they play different worlds
CALIBRATION_SEED = 5_000_000  # world seeds of calibrations (the reward threshold): apart from the evaluation's
STRIP_FRAMES = 16  # frames per strip row
STRIP_WORLDS = 4  # worlds per strip

# Captions that differ in material, place and time of day: a colour test can tell their worlds apart.
DEFAULT_CAPTIONS = (
    "a mossy stone dungeon",
    "a sunny desert canyon at noon",
    "a snowy ice cave at night",
    "a rusty metal temple",
    "a foggy brick castle at dusk",
    "a glowing wood maze at night",
    "a dusty desert castle at dawn",
    "a mossy wood maze at noon",
)


def validation_captions(n_sets: int, seed: int) -> list[list[str]]:
    """`n_sets` sets of 8 captions drawn from the grammar without the evaluation's, for choosing settings
    without looking at the evaluation's prompts."""
    pool = [c for c in all_captions() if c not in DEFAULT_CAPTIONS]
    rng = np.random.default_rng(seed)
    return [[pool[i] for i in rng.choice(len(pool), 8, replace=False)] for _ in range(n_sets)]


class Policy(Protocol):
    """What plays the game: the next keys [N, K] (0/1) and mouse [N, 2] from the game's batched info."""

    def act(self, info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


PolicyFactory = Callable[[int, int], Policy]  # (num_envs, seed) -> policy


def exploration(seek_prob: float, keys: Sequence[str]) -> PolicyFactory:
    """`ExplorationPolicy`, as in the training data, seeking orbs in a `seek_prob` share of the worlds."""
    return lambda num_envs, seed: ExplorationPolicy(num_envs, keys, seed, seek_prob=seek_prob)


class HeldAction:
    """The same action in every world at every step: the keys at indices `pressed` (none by default) and mouse
    x = `mouse_x` (no key and 0: standing still)."""

    def __init__(self, num_envs: int, n_keys: int, mouse_x: float, pressed: Sequence[int] = ()):
        self.pressed = np.zeros((num_envs, n_keys), np.uint8)
        self.pressed[:, list(pressed)] = 1
        self.mouse = np.tile(np.array([[mouse_x, 0.0]], np.float32), (num_envs, 1))

    def act(self, info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.pressed, self.mouse


def held_action(mouse_x: float, keys: Sequence[str]) -> PolicyFactory:
    """`HeldAction` in every world: with mouse_x 0, a player who stands still."""
    return lambda num_envs, seed: HeldAction(num_envs, len(keys), mouse_x)


def strip_samples(real: list[np.ndarray], dreamed: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-step frame batches [n, H, W, 3] -> strip samples {"real", "dreamed"} [worlds, T, H, W, 3]."""
    pick = lambda frames: np.stack(frames[:STRIP_FRAMES], 1)[:STRIP_WORLDS]
    return {"real": pick(real), "dreamed": pick(dreamed)}


class Pair:
    """One chunk of worlds, played in the real game and dreamed in rows 0..n-1 of the world model."""

    def __init__(self, harness: Harness, chunk: range, seed: int, captions: Sequence[str], n_steps: int,
                 policy: PolicyFactory | None, bar: tqdm | None):
        self.world, self.n, self.bar = harness.world, len(chunk), bar
        self.rows = list(range(self.n))
        self.prompts = [captions[i % len(captions)] for i in chunk]
        self.game = ArenaBatch(self.n, size=harness.size, keys=harness.keys, max_episode_steps=n_steps + 1)
        frames, self.info = self.game.reset(seed=[seed + i for i in chunk], prompt=self.prompts)
        self.frames = frames.copy()  # the real game's latest frames [n, H, W, 3]
        self.player = None if policy is None else policy(self.n, seed + chunk.start)

    def start(self, seed_frames: bool = True) -> torch.Tensor | None:
        """New dreams under the worlds' prompts from the game's first frames (or, without `seed_frames`, from an
        empty history) -> the seed frames' latents [n, C, h, w], or None."""
        conditioned = self.world.config.prompt_conditioning
        self.world.begin(self.rows, self.prompts if conditioned else [None] * self.n)
        if not seed_frames:
            return None
        latent = self.world.encode(self.frames)
        self.world.append(self.rows, latent)
        return latent

    def act(self) -> tuple[np.ndarray, np.ndarray]:
        """The policy's next action (keys [n, K], mouse [n, 2]) for the game's current state."""
        return self.player.act(self.info)

    def play(self, pressed: np.ndarray, mouse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of the real game -> (its new frames [n, H, W, 3], rewards [n])."""
        frames, reward, _, _, self.info = self.game.step(pressed, mouse)
        self.frames = frames.copy()
        if self.bar is not None:
            self.bar.update()
        return self.frames, reward

    def dream(self, pressed: np.ndarray, mouse: np.ndarray, store: bool = True) -> torch.Tensor:
        """The model's next frame under this action -> latents [n, C, h, w]; kept in its history unless `store`
        is False (a one-step prediction: `observe` the real frame next)."""
        return self.world.dream(self.rows, pressed, mouse, store=store)

    def observe(self, frames: np.ndarray, pressed: np.ndarray, mouse: np.ndarray) -> torch.Tensor:
        """Append real frames [n, H, W, 3] made by this action to the model's history -> their latents."""
        latent = self.world.encode(frames)
        self.world.append(self.rows, latent, pressed, mouse)
        return latent

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        return self.world.decode(latent)

    def reconstruct(self, frames: np.ndarray) -> np.ndarray:
        """Real frames [n, H, W, 3] through the autoencoder: what a world with exactly the real latents shows."""
        return self.decode(self.world.encode(frames))


class Harness:
    """A world model (its engine) and the ground-truth game it is measured against, with the checks metrics share."""

    def __init__(self, engine: WorldEngine, captions: Sequence[str] | None = None, mouse_scale: float | None = None,
                 progress: bool = True):
        if engine.autoencoder is None:
            raise ValueError("the checkpoint has no autoencoder (ae_uri): it cannot be compared with game frames")
        height, width = engine.autoencoder.output_size
        if height != width or tuple(engine.autoencoder.encoder.config.input_size) != (height, width):
            raise ValueError(f"need an autoencoder of square images in and out, got {engine.autoencoder.output_size}")
        captions = list(DEFAULT_CAPTIONS if captions is None else captions)
        if not captions or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"captions must be a non-empty sequence of str, got {captions!r}")
        self.engine, self.captions, self.progress = engine, captions, progress
        self.world = WorldBatch(engine, mouse_scale=mouse_scale)
        self.keys, self.size, self.mouse_scale = self.world.keys, int(height), self.world.mouse_scale

    def chunks(self, total: int) -> list[range]:
        size = self.engine.batch_size
        return [range(first, min(first + size, total)) for first in range(0, total, size)]

    def bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="step", disable=not self.progress)

    def pairs(self, n_worlds: int, n_steps: int, seed: int, policy: PolicyFactory | None, desc: str,
              captions: Sequence[str] | None = None) -> Iterator[Pair]:
        """The chunks of `n_worlds` worlds, each a Pair ready for `n_steps` steps, under one progress bar."""
        chunks = self.chunks(n_worlds)
        with self.bar(len(chunks) * n_steps, desc) as bar:
            for chunk in chunks:
                yield Pair(self, chunk, seed, captions or self.captions, n_steps, policy, bar)
