"""The reward and termination head: (previous latent, latent, action) -> did this step collect an orb, end the episode.

Like the reward-end models world-model agents train beside their dynamics model: a small conv net reads both
latents and their difference (an orb vanishing, a score pip lighting up), an MLP adds the action, and two
logits come out. The latents are the autoencoder's own (as `Autoencoder.encode` returns them); the head
normalises them with per-channel statistics of its training data, stored in its config.

A folder holds `reward_head.safetensors` and `reward_head.yaml` (the config, with the decision thresholds that
maximise F1 on held-out data).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from waypoint_gym.engine.loading import load_strict
from waypoint_gym.training.data import load_chunks, load_latents

log = logging.getLogger(__name__)

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
    def predict(self, prev: Any, latent: Any, keys: Any, mouse: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(prev [N, C, h, w], latent [N, C, h, w], keys [N, K], mouse [N, 2]) -> (reward [N], terminated [N]).

        The reward (float) is 1.0 where the probability of "orb collected" passes the saved threshold, else 0.0.
        """
        device = self.conv1.weight.device
        args = [torch.as_tensor(a).to(device) for a in (prev, latent, keys, mouse)]
        probs = torch.sigmoid(self(*args).float())  # [N, 2]
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


# -----------------------------------------------------------------------------
# training


@dataclass
class Transitions:
    """Steps (segment s, frame t >= 1) of a collection, with what the head reads and predicts."""

    latents: np.ndarray  # [S, L, C, h, w]
    keys: np.ndarray  # [S, L, K]
    mouse: np.ndarray  # [S, L, 2]
    reward: np.ndarray  # [S, L]
    terminated: np.ndarray  # [S, L]
    index: np.ndarray  # [M, 2] (s, t) of each transition
    current: np.ndarray | None = None  # [S, L, C, h, w] what the head reads as frame t, if not `latents`

    def batch(self, rows: np.ndarray, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Inputs (prev, latent, keys, mouse) and targets [B, 2] of the transitions `rows` of `index`."""
        s, t = self.index[rows, 0], self.index[rows, 1]
        order = np.lexsort((t, s))  # sorted reads are kinder to a memory-mapped file
        s, t, back = s[order], t[order], np.argsort(order)
        current = self.latents if self.current is None else self.current
        prev, latent = self.latents[s, t - 1][back], current[s, t][back]
        inputs = [torch.from_numpy(np.asarray(a, np.float32)).to(device) for a in
                  (prev, latent, self.keys[s, t][back], self.mouse[s, t][back])]
        target = np.stack([self.reward[s, t] > 0, self.terminated[s, t]], 1)[back]
        return inputs, torch.from_numpy(target.astype(np.float32)).to(device)

    def targets(self) -> np.ndarray:
        s, t = self.index[:, 0], self.index[:, 1]
        return np.stack([self.reward[s, t] > 0, self.terminated[s, t]], 1)  # [M, 2] bool


def best_threshold(probs: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """The threshold on probs [M] that maximises F1 for bool target [M], with its precision and recall."""
    n_pos = int(target.sum())
    if n_pos == 0:
        return {"threshold": 0.5, "precision": None, "recall": None, "f1": None, "positives": 0}
    order = np.argsort(-probs, kind="stable")
    hits = np.cumsum(target[order])  # true positives when predicting the top k+1 as positive
    precision = hits / np.arange(1, len(probs) + 1)
    recall = hits / n_pos
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    k = int(f1.argmax())
    below = probs[order[k + 1]] if k + 1 < len(probs) else 0.0
    threshold = float((probs[order[k]] + below) / 2)  # between the last positive and the next one
    return {"threshold": threshold, "precision": float(precision[k]), "recall": float(recall[k]),
            "f1": float(f1[k]), "positives": n_pos}


@torch.no_grad()
def _probabilities(head: RewardHead, data: Transitions, device: torch.device, batch: int = 1024) -> np.ndarray:
    out = []
    for b in range(0, len(data.index), batch):
        inputs, _ = data.batch(np.arange(b, min(b + batch, len(data.index))), device)
        out.append(torch.sigmoid(head(*inputs)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)  # [M, 2]


@torch.no_grad()
def one_step_latents(engine: Any, latents: np.ndarray, data: dict[str, np.ndarray], key_names: list[str],
                     progress: bool = True) -> np.ndarray:
    """A world's one-step prediction of every recorded frame from the real frames before it [S, L, C, h, w].

    `engine` is a `WorldEngine` (its batch size sets how many segments run at once); `data` holds the
    collection's keys, mouse, prompt and length. Frame 0 (the seed) stays the real latent. These are the
    latents a reward head reads in a dreamed step, so a head trained on them learns to judge generated frames.
    """
    from waypoint_gym.envs.spaces import default_mouse_scale, resolve_keys, to_ctrl

    _, keycodes = resolve_keys(key_names, engine.config.n_buttons)
    scale = default_mouse_scale(engine.config)  # as the env maps its mouse Box
    n_segments, segment_len = latents.shape[:2]
    out = np.array(latents, np.float32)  # frame 0 stays real; the others are overwritten
    bar = tqdm(total=n_segments * (segment_len - 1), desc="one-step latents", unit="frame", disable=not progress)
    for start in range(0, n_segments, engine.batch_size):
        rows = np.arange(start, min(start + engine.batch_size, n_segments))
        ids = None if len(rows) == engine.batch_size else list(range(len(rows)))
        engine.reset(ids)
        if engine.config.prompt_conditioning:
            engine.set_prompt([str(p) for p in data["prompt"][rows]], ids)
        engine.append_latent(torch.from_numpy(out[rows, 0]), env_ids=ids)
        for t in range(1, segment_len):
            ctrls = [to_ctrl(data["keys"][s, t] != 0, data["mouse"][s, t], keycodes, scale) for s in rows]
            out[rows, t] = engine.gen_latent(ctrls, env_ids=ids, store=False).reshape(len(rows), *out.shape[2:])
            engine.append_latent(torch.from_numpy(np.asarray(latents[rows, t], np.float32)), ctrls, env_ids=ids)
            bar.update(len(rows))
    bar.close()
    return out


def train_reward_head(
    latents: str | os.PathLike | np.ndarray,
    data: str | os.PathLike | dict[str, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    dreamed: np.ndarray | None = None,
    dreamed_by: str | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a `RewardHead` on cached latents [S, L, C, h, w] and a collection's actions and rewards.

    `latents` is an array or a file from `encode_dataset`; `data` a collection folder or `load_chunks` output.
    With `dreamed` (`one_step_latents` of a world on the same segments) the head reads the world's prediction
    as the step's latent (the previous one stays real), for training and for choosing the thresholds;
    `dreamed_by` (that world's name) goes into the report as `one_step_latents_of`.
    The loss is binary cross-entropy per output, positives weighted by negatives / positives of the training
    split (class-balanced). The last `val_fraction` of the segments is held out to choose the thresholds and
    to report precision and recall. Saves the head in `out_dir` with `report.json`; returns the report.
    """
    out_dir = Path(out_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(latents, np.ndarray):
        latents = load_latents(latents)
    meta_keys = None
    if not isinstance(data, dict):
        meta_path = Path(data) / "meta.json"
        meta_keys = json.loads(meta_path.read_text()).get("keys") if meta_path.exists() else None
        data = load_chunks(data, ["keys", "mouse", "reward", "terminated", "length"])
    n_segments, segment_len = data["keys"].shape[:2]
    if tuple(latents.shape[:2]) != (n_segments, segment_len):
        raise ValueError(f"latents {tuple(latents.shape)} do not match {n_segments} segments of {segment_len}")
    if dreamed is not None and dreamed.shape != latents.shape:
        raise ValueError(f"dreamed latents {tuple(dreamed.shape)} do not match the latents {tuple(latents.shape)}")

    # Transitions into frames 1 .. length-1; the last segments are held out.
    n_val = min(n_segments - 1, max(1, round(n_segments * val_fraction))) if n_segments > 1 else 0
    t = np.arange(1, segment_len)
    pairs = [np.stack(np.broadcast_arrays(s, t[t < data["length"][s]]), 1) for s in range(n_segments)]
    index = np.concatenate(pairs).astype(np.int64)  # [M, 2]
    is_val = index[:, 0] >= n_segments - n_val
    arrays = {k: data[k] for k in ("keys", "mouse", "reward", "terminated")}
    train = Transitions(latents, **arrays, index=index[~is_val], current=dreamed)
    val = Transitions(latents, **arrays, index=index[is_val] if n_val else index, current=dreamed)

    rng = np.random.default_rng(seed)
    stats_rows = np.sort(rng.choice(len(train.index), min(4096, len(train.index)), replace=False))
    sample = np.asarray(latents[train.index[stats_rows, 0], train.index[stats_rows, 1]], np.float32)
    config = RewardHeadConfig(
        latent_channels=latents.shape[2], latent_size=tuple(latents.shape[3:]), n_keys=data["keys"].shape[2],
        hidden=hidden, keys=meta_keys, latent_mean=sample.mean((0, 2, 3)).tolist(),
        latent_std=(sample.std((0, 2, 3)) + 1e-6).tolist(),
    )
    torch.manual_seed(seed)
    head = RewardHead(config).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    counts = train.targets().sum(0)  # [2] positives per output
    negatives = len(train.index) - counts
    pos_weight = torch.tensor(np.clip(negatives / np.maximum(counts, 1), 1.0, 1000.0), dtype=torch.float32)
    log.info("reward head: %d training transitions, %d rewards, %d terminations", len(train.index), *counts)

    head.train()
    history = []
    for step in tqdm(range(steps), unit="step", desc="reward head", disable=not progress):
        inputs, target = train.batch(rng.integers(len(train.index), size=batch_size), device)
        loss = F.binary_cross_entropy_with_logits(head(*inputs), target, pos_weight=pos_weight.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 20) == 0:
            history.append({"step": step + 1, "loss": loss.item()})

    head.eval()
    probs, target = _probabilities(head, val, device), val.targets()
    reward_eval, termination_eval = best_threshold(probs[:, 0], target[:, 0]), best_threshold(probs[:, 1], target[:, 1])
    head.config.reward_threshold = reward_eval["threshold"]
    head.config.termination_threshold = termination_eval["threshold"]
    head.save_pretrained(out_dir)
    report = {
        "reward": reward_eval, "termination": termination_eval, "n_train": len(train.index),
        "n_val": len(val.index), "train_positives": counts.tolist(), "pos_weight": pos_weight.tolist(),
        "steps": steps, "history": history, "config": dataclasses.asdict(head.config),
    }
    if dreamed_by is not None:
        report["one_step_latents_of"] = dreamed_by
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    log.info("reward head: held-out reward precision %s recall %s; saved to %s",
             reward_eval["precision"], reward_eval["recall"], out_dir)
    return report
