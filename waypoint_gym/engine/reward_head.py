"""The reward and termination head: (previous latent, latent, action) -> did this step collect an orb, end the episode.

Like the reward-end models world-model agents train beside their dynamics model: a small conv net reads both
latents and their difference (an orb vanishing, a score pip lighting up), an MLP adds the action, and two
logits come out. The latents are the autoencoder's own (as `Autoencoder.encode` returns them); the head
normalises them with per-channel statistics of its training data, stored in its config.

A folder holds `reward_head.safetensors` and `reward_head.yaml` (the config, with the decision thresholds chosen
on held-out data); a checkpoint ships one as `reward_head/` beside its config.
Training: `waypoint_gym.training.reward_head`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .loading import load_strict

# A checkpoint folder ships its reward and termination head in this folder beside config.yaml.
REWARD_HEAD_DIR = "reward_head"
WEIGHTS = "reward_head.safetensors"
CONFIG = "reward_head.yaml"


@dataclass
class RewardHeadConfig:
    latent_channels: int
    latent_size: tuple[int, int]  # (h, w)
    n_keys: int
    hidden: int = 64
    keys: list[str] | None = None  # key names of the keys input, for reference
    latent_mean: list[float] | None = None  # per-channel normalisation of the latents (None: 0 and 1)
    latent_std: list[float] | None = None
    reward_threshold: float = 0.5  # probabilities above these count as reward / termination
    termination_threshold: float = 0.5

    def __post_init__(self) -> None:
        self.latent_size = tuple(int(s) for s in self.latent_size)


class RewardHead(nn.Module):
    """Logits [N, 2] (reward > 0, terminated) of the step from latent `prev` to `latent` under an action."""

    def __init__(self, config: RewardHeadConfig):
        super().__init__()
        self.config = config
        c, (h, w), d = config.latent_channels, config.latent_size, config.hidden
        mean = torch.tensor(config.latent_mean or [0.0] * c).view(1, c, 1, 1)
        std = torch.tensor(config.latent_std or [1.0] * c).view(1, c, 1, 1)
        self.register_buffer("latent_mean", mean, persistent=False)
        self.register_buffer("latent_std", std, persistent=False)
        self.conv1 = nn.Conv2d(3 * c, d, 3, padding=1)
        self.conv2 = nn.Conv2d(d, d, 3, stride=2, padding=1)
        self.proj = nn.Linear(d * ((h + 1) // 2) * ((w + 1) // 2), d)  # flattened: where a change is matters
        self.mlp = nn.Sequential(nn.Linear(d + config.n_keys + 2, d), nn.SiLU(), nn.Linear(d, 2))

    def forward(
        self, prev: torch.Tensor, latent: torch.Tensor, keys: torch.Tensor, mouse: torch.Tensor
    ) -> torch.Tensor:
        prev = (prev.float() - self.latent_mean) / self.latent_std  # [N, C, h, w]
        latent = (latent.float() - self.latent_mean) / self.latent_std
        x = torch.cat([prev, latent, latent - prev], dim=1)  # [N, 3C, h, w]
        x = F.silu(self.conv1(x))  # [N, d, h, w]
        x = F.silu(self.conv2(x))  # [N, d, h/2, w/2]
        x = F.silu(self.proj(x.flatten(1)))  # [N, d]
        x = torch.cat([x, keys.float(), mouse.float()], dim=1)  # [N, d + K + 2]
        return self.mlp(x)  # [N, 2]

    @torch.no_grad()
    def probabilities(self, prev: Any, latent: Any, keys: Any, mouse: Any) -> torch.Tensor:
        """(prev [N, C, h, w], latent [N, C, h, w], keys [N, K], mouse [N, 2]), arrays or tensors on any device ->
        the probabilities [N, 2] of "orb collected" and "episode ended", on the head's device."""
        device = self.conv1.weight.device
        args = [torch.as_tensor(a).to(device) for a in (prev, latent, keys, mouse)]
        return torch.sigmoid(self(*args).float())

    def predict(self, prev: Any, latent: Any, keys: Any, mouse: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(prev [N, C, h, w], latent [N, C, h, w], keys [N, K], mouse [N, 2]) -> (reward [N], terminated [N]).

        The reward (float) is 1.0 where the probability of "orb collected" passes the saved threshold, else 0.0.
        """
        probs = self.probabilities(prev, latent, keys, mouse)  # [N, 2]
        reward = (probs[:, 0] > self.config.reward_threshold).float()
        terminated = probs[:, 1] > self.config.termination_threshold
        return reward, terminated

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> RewardHead:
        folder = Path(folder)
        for name in (CONFIG, WEIGHTS):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} has no {name}")
        config = RewardHeadConfig(**yaml.safe_load((folder / CONFIG).read_text()))
        head = cls(config)
        load_strict(head, load_file(folder / WEIGHTS), str(folder / WEIGHTS))
        return head.to(device).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = dataclasses.asdict(self.config)
        config["latent_size"] = list(self.config.latent_size)
        (folder / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS)


def checkpoint_reward_head(checkpoint_dir: str | os.PathLike | None,
                           device: str | torch.device = "cpu") -> RewardHead | None:
    """The reward head a checkpoint folder ships (`reward_head/` beside its config), or None if it has none."""
    if checkpoint_dir is None or not (Path(checkpoint_dir) / REWARD_HEAD_DIR).is_dir():
        return None
    return RewardHead.from_pretrained(Path(checkpoint_dir) / REWARD_HEAD_DIR, device=device)
