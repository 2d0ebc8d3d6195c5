"""Training the reward and termination head (`waypoint_gym.engine.reward_head`) on a collection's cached latents,
optionally as a world's one-step predictions of them (what the head reads in a dreamed step)."""

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
from tqdm import tqdm

from waypoint_gym.engine import WorldEngine
from waypoint_gym.engine.reward_head import RewardHead, RewardHeadConfig
from waypoint_gym.envs.world_batch import WorldBatch
from waypoint_gym.training.data import load_chunks, load_latents

log = logging.getLogger(__name__)


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
    previous: np.ndarray | None = None  # [S, L, C, h, w] what it reads as frame t - 1, if not `latents`

    def batch(self, rows: np.ndarray, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Inputs (prev, latent, keys, mouse) and targets [B, 2] of the transitions `rows` of `index`."""
        s, t = self.index[rows, 0], self.index[rows, 1]
        order = np.lexsort((t, s))  # sorted reads are kinder to a memory-mapped file
        s, t, back = s[order], t[order], np.argsort(order)
        current = self.latents if self.current is None else self.current
        previous = self.latents if self.previous is None else self.previous
        prev, latent = previous[s, t - 1][back], current[s, t][back]
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
def one_step_latents(engine: WorldEngine, latents: np.ndarray, data: dict[str, np.ndarray], key_names: list[str],
                     progress: bool = True) -> np.ndarray:
    """A world's one-step prediction of every recorded frame from the real frames before it [S, L, C, h, w].

    `engine` is a `WorldEngine` (its batch size sets how many segments run at once); `data` holds the
    collection's keys, mouse, prompt and length. Frame 0 (the seed) stays the real latent. These are the
    latents a reward head reads in a dreamed step, so a head trained on them learns to judge generated frames.
    """
    world = WorldBatch(engine, keys=key_names)  # the mouse scaled as the env maps its mouse Box
    n_segments, segment_len = latents.shape[:2]
    out = np.array(latents, np.float32)  # frame 0 stays real; the others are overwritten
    bar = tqdm(total=n_segments * (segment_len - 1), desc="one-step latents", unit="frame", disable=not progress)
    for start in range(0, n_segments, engine.batch_size):
        segments = np.arange(start, min(start + engine.batch_size, n_segments))
        rows = list(range(len(segments)))
        conditioned = engine.config.prompt_conditioning
        world.begin(rows, [str(p) for p in data["prompt"][segments]] if conditioned else [None] * len(rows))
        world.append(rows, torch.from_numpy(out[segments, 0]))
        for t in range(1, segment_len):
            pressed, mouse = data["keys"][segments, t], data["mouse"][segments, t]
            out[segments, t] = world.dream(rows, pressed, mouse, store=False).reshape(len(rows), *out.shape[2:])
            world.append(rows, torch.from_numpy(np.asarray(latents[segments, t], np.float32)), pressed, mouse)
            bar.update(len(rows))
    bar.close()
    return out


@torch.no_grad()
def open_loop_latents(engine: WorldEngine, latents: np.ndarray, data: dict[str, np.ndarray], key_names: list[str],
                      n_context: int = 6, horizon: int = 16, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A world's open-loop dreams of the recorded frames, window after window along each segment: `n_context`
    real frames into its history (the first as a seed frame), then `horizon` frames it dreams on its own
    outputs under the recorded actions, as the evaluation's gate 4 and a dreamed episode read them.

    Returns (latents [S, L, C, h, w] float32: the real latents of context frames, the dreams elsewhere;
    dreamed [S, L] bool: which frames are dreams). `engine`'s batch size sets how many segments run at once.
    """
    if n_context < 1 or horizon < 1:
        raise ValueError(f"need n_context >= 1 and horizon >= 1, got {n_context} and {horizon}")
    world = WorldBatch(engine, keys=key_names)
    n_segments, segment_len = latents.shape[:2]
    out = np.array(latents, np.float32)  # context frames stay real
    dreamed = np.zeros((n_segments, segment_len), bool)
    starts = range(0, segment_len - n_context, n_context + horizon)
    bar = tqdm(total=n_segments * len(starts), desc="open-loop latents", unit="window", disable=not progress)
    conditioned = engine.config.prompt_conditioning
    for first in range(0, n_segments, engine.batch_size):
        segments = np.arange(first, min(first + engine.batch_size, n_segments))
        rows = list(range(len(segments)))
        prompts = [str(p) for p in data["prompt"][segments]] if conditioned else [None] * len(rows)
        for start in starts:
            world.begin(rows, prompts)
            world.append(rows, torch.from_numpy(out[segments, start]))
            for t in range(start + 1, start + n_context):
                pressed, mouse = data["keys"][segments, t], data["mouse"][segments, t]
                world.append(rows, torch.from_numpy(out[segments, t]), pressed, mouse)
            for t in range(start + n_context, min(start + n_context + horizon, segment_len)):
                pressed, mouse = data["keys"][segments, t], data["mouse"][segments, t]
                out[segments, t] = world.dream(rows, pressed, mouse).reshape(len(rows), *out.shape[2:])
                dreamed[segments, t] = True
            bar.update(len(rows))
    bar.close()
    return out, dreamed


def train_reward_head(
    latents: str | os.PathLike | np.ndarray,
    data: str | os.PathLike | dict[str, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    dreamed: np.ndarray | None = None,
    dreamed_by: str | None = None,
    dreamed_steps: np.ndarray | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: int = 64,
    val_fraction: float = 0.1,
    max_segments: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a `RewardHead` on cached latents [S, L, C, h, w] and a collection's actions and rewards.

    `latents` is an array or a file from `encode_dataset`; `data` a collection folder or `load_chunks` output.
    With `dreamed` (`one_step_latents` of a world on the same segments) the head reads the world's prediction
    as the step's latent (the previous one stays real), for training and for choosing the thresholds;
    `dreamed_by` (that world's name) goes into the report as `one_step_latents_of`. With `dreamed_steps` too
    ([S, L] bool, from `open_loop_latents`, whose latents are then `dreamed`), the head trains on the steps
    into dreamed frames only and reads the previous frame from `dreamed` as well: an open-loop dream's pair
    (the report names the world `open_loop_latents_of`).
    The loss is binary cross-entropy per output, positives weighted by negatives / positives of the training
    split (class-balanced). `max_segments` keeps the collection's first segments only. The last `val_fraction`
    of them is held out to choose the thresholds and to report precision and recall. Saves the head in
    `out_dir` with `report.json`; returns the report.
    """
    if max_segments is not None and max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    out_dir = Path(out_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(latents, np.ndarray):
        latents = load_latents(latents)
    meta_keys = None
    if not isinstance(data, dict):
        meta_path = Path(data) / "meta.json"
        meta_keys = json.loads(meta_path.read_text()).get("keys") if meta_path.exists() else None
        data = load_chunks(data, ["keys", "mouse", "reward", "terminated", "length"], max_segments)
    else:
        data = {k: v[:max_segments] for k, v in data.items()}
    latents = latents[:max_segments]
    n_segments, segment_len = data["keys"].shape[:2]
    if tuple(latents.shape[:2]) != (n_segments, segment_len):
        raise ValueError(f"latents {tuple(latents.shape)} do not match {n_segments} segments of {segment_len}")
    if dreamed is not None and dreamed.shape != latents.shape:
        raise ValueError(f"dreamed latents {tuple(dreamed.shape)} do not match the latents {tuple(latents.shape)}")
    if dreamed_steps is not None and (dreamed is None or dreamed_steps.shape != latents.shape[:2]):
        raise ValueError(f"dreamed_steps needs dreamed latents and one flag per frame {tuple(latents.shape[:2])}, "
                         f"got {None if dreamed_steps is None else tuple(dreamed_steps.shape)}")

    # Transitions into frames 1 .. length-1; the last segments are held out.
    n_val = min(n_segments - 1, max(1, round(n_segments * val_fraction))) if n_segments > 1 else 0
    t = np.arange(1, segment_len)
    pairs = [np.stack(np.broadcast_arrays(s, t[t < data["length"][s]]), 1) for s in range(n_segments)]
    index = np.concatenate(pairs).astype(np.int64)  # [M, 2]
    previous = None
    if dreamed_steps is not None:  # open-loop dreams: steps into dreamed frames, the previous frame as dreamed
        index, previous = index[dreamed_steps[index[:, 0], index[:, 1]]], dreamed
    is_val = index[:, 0] >= n_segments - n_val
    arrays = {k: data[k] for k in ("keys", "mouse", "reward", "terminated")}
    train = Transitions(latents, **arrays, index=index[~is_val], current=dreamed, previous=previous)
    val = Transitions(latents, **arrays, index=index[is_val] if n_val else index, current=dreamed, previous=previous)

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
        report["open_loop_latents_of" if dreamed_steps is not None else "one_step_latents_of"] = dreamed_by
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    log.info("reward head: held-out reward precision %s recall %s; saved to %s",
             reward_eval["precision"], reward_eval["recall"], out_dir)
    return report
