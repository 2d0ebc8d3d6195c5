"""Diffusion-forcing training of a Waypoint-format world model on cached latents.

Each training clip is F consecutive frames of a recorded segment, its frame 0 playing the seed frame of a
reset (as after `WorldEngine.reset`). Every frame gets its own noise level; the model sees the whole clip in
one pass with the ring's frame-causal mask (`FrameCausalMask`), so what it learns is exactly what cached
inference runs. The target is the rectified-flow velocity noise - x0, with x_sigma = (1 - sigma) x0 + sigma noise.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from waypoint_gym.engine.autoencoder import Autoencoder
from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.kv_cache import CleanContextMask, FrameCausalMask
from waypoint_gym.engine.model import WaypointModel, previous_frames
from waypoint_gym.engine.prompt import CaptionEncoder, words
from waypoint_gym.engine.sampler import euler_denoise

from .adversarial import Critic, balanced_weight, generator_loss
from .data import ClipSampler
from .export import load_teacher
from .self_forcing import clean_then_noisy, rollout, velocity

log = logging.getLogger(__name__)


LOSSES = ("velocity", "x0", "x0_l1")  # WorldModelTraining.loss
OPTIMIZERS = ("adamw", "muon")  # WorldModelTraining.optimizer
ADVERSARIAL_MIN_SIGMA = 0.5  # the adversarial term judges estimates from this noise level up, where the mean blurs
DISCRIMINATOR_LR = 2e-4


@dataclass
class WorldModelTraining:
    steps: int = 2000
    batch_size: int = 16
    clip_frames: int = 12
    lr: float = 4e-4
    warmup: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    schedule_sigma_prob: float = 0.5  # share of target frames whose sigma is one of the schedule's (else U(0,1))
    clean_context_prob: float = 0.5  # share of clips whose frames before a random cut are (nearly) clean
    teacher_forcing: bool = False  # every frame after the first predicted from the clean frames before it
    rollout_context: float = 0.0  # with teacher forcing: share of clips whose context is the model's own rollout
    predicted_context: float = 0.0  # with teacher forcing: share of clips whose context frames after the first are
    # the world's own sampled predictions of them, each from the recorded frames before it (one step of the open
    # loop's error, still in register with the recorded frames to predict)
    still_clips: float = 0.0  # share of each step's clips (teacher-forced and dreamed) that hold their first recorded
    # frame with nothing pressed, as the game's view does while a player stands still; they come first in the batch,
    # so the rollout_context and predicted_context shares cover them first
    context_noise: float = 0.05  # max sigma of "clean" context frames (noise augmentation; each frame's is told)
    ctrl_dropout: float = 0.1  # classifier-free-guidance dropout to the null embeddings
    ctrl_init_scale: float = 1.0  # initial weights on the control half of every fusion layer, times this
    start_frames: int = 0  # extra frames per step generated from the prompt alone, as an episode's first frame
    init: str | None = None  # a checkpoint folder whose weights and caption encoder to start from (fine-tuning)
    prompt_dropout: float = 0.1
    loss: str = "velocity"  # "velocity": the rectified-flow target; "x0": the clean frame's squared error,
    # unweighted; "x0_l1": its absolute error (the optimum is the per-value median of the possible next frames,
    # not their mean: an edge whose place is uncertain stays an edge instead of a ramp)
    optimizer: str = "adamw"  # "muon": the transformer blocks' weight matrices step by Muon (orthogonalised
    # momentum, its step scaled to AdamW's size so lr and weight decay carry over); everything else by AdamW
    seed: int = 0
    device: str = "cpu"
    log_every: int = 25
    ckpt_every: int = 200
    time_limit: float | None = None  # seconds: stop (saving the state) after this long; a rerun resumes
    compile: bool = False  # torch.compile the training pass (about 1.25x on a CPU core; compiling takes a minute)
    adversarial_weight: float = 0.0  # > 0: a patch discriminator judges the decoded clean-frame estimates of noisy
    # frames (sigma >= ADVERSARIAL_MIN_SIGMA) beside their previous frame; its term's gradient at the estimates is
    # scaled to the x0 error's, times this weight. Needs an x0 loss and `autoencoder` (its decoder draws the frames)
    adversarial_start: int = 0  # step from which the world takes the adversarial term (the discriminator trains from 0)
    adversarial_dreams: int = 0  # > 0: the discriminator judges, instead of one-step estimates, this many clips a step
    # that the world dreams itself, open loop from their recorded first frame under the recorded controls through its
    # own sampler (gradient through each frame's last step), each dreamed frame beside the one before it and the first
    dream_frames: int = 0  # frames of each dreamed clip, its recorded first frame included (0: clip_frames)
    adversarial_actions: bool = False  # with adversarial_dreams: the discriminator also reads each judged frame's
    # controls (a projection term), so a dream that moves otherwise than its controls say can score as fake
    discriminator_levels: int = 2  # stride-2 levels of the discriminator: 2 scores 26x26-pixel patches, 4 sees
    # the whole 64x64 frame (a fog is smooth everywhere, which a smooth wall patch is too)
    autoencoder: str | None = None  # the latents' autoencoder folder, for the adversarial term


@torch.no_grad()
def scale_ctrl_init(model: WaypointModel, scale: float) -> None:
    """Multiply the control half of each `ctrl_mlpfusion.fc1` by `scale` (a fresh model's initialisation).

    Larger weights there let the controls switch the fusion's SiLU units on and off from the start, so a
    control can gate what the block does with the frame's content; with the default initialisation the
    model is slow to learn any use of the controls that is not additive (docs/lab/2026-11-29-control-use.md).
    """
    D = model.cfg.d_model
    for blk in model.transformer.blocks:
        if hasattr(blk, "ctrl_mlpfusion"):
            blk.ctrl_mlpfusion.mlp.fc1.weight[:, D:] *= scale


def sample_sigmas(n: int, F: int, sched: list[float], tc: WorldModelTraining, g: torch.Generator, device):
    """[n, F] noise levels for diffusion forcing; returns sigmas and a mask of frames that carry loss."""
    uniform = torch.rand(n, F, generator=g)
    from_schedule = torch.tensor(sched[:-1])[torch.randint(len(sched) - 1, (n, F), generator=g)]
    pick = torch.rand(n, F, generator=g) < tc.schedule_sigma_prob
    sigma = torch.where(pick, from_schedule, uniform)
    # Some clips look like inference: clean (lightly noised) context up to a cut, noisy frames after it.
    cut = torch.randint(0, F, (n, 1), generator=g)
    clean_clip = torch.rand(n, 1, generator=g) < tc.clean_context_prob
    context = clean_clip & (torch.arange(F)[None] < cut)
    sigma = torch.where(context, torch.rand(n, F, generator=g) * tc.context_noise, sigma)
    return sigma.to(device), (~context).to(device)


class ClipPass(NamedTuple):
    """One training pass over a batch of clips: per-position errors and what the adversarial term judges."""

    err: torch.Tensor  # [B, T] each position's error
    carries: torch.Tensor  # [B, T] bool: positions that carry loss
    estimate: torch.Tensor  # [B, T, C, h, w] the clean frame each position's output implies, x - sigma v
    target: torch.Tensor  # [B, T, C, h, w] the clean frame it should be
    last: torch.Tensor  # [B, T, C, h, w] the clean frame before it
    sigma: torch.Tensor  # [B, T] its noise level


def clip_errors(model: WaypointModel, encoder: CaptionEncoder, x0: torch.Tensor, ctrl: torch.Tensor,
                prompts: list[str], mask: FrameCausalMask, tc: WorldModelTraining, g: torch.Generator) -> ClipPass:
    """Diffusion-forcing errors of clips x0 [B, F, C, h, w] (T positions: F, or 2F - 1 with teacher forcing)."""
    B, F_ = x0.shape[:2]
    device = x0.device
    t = torch.arange(F_, device=device).expand(B, -1)
    emb, _ = encoder(prompts)
    if isinstance(mask, CleanContextMask):
        # The clip twice in one pass: its lightly noised clean frames, then noisy copies of frames 1..F-1 that
        # each see only the clean frames before them, as cached inference sees its context.
        context = x0
        n_roll = round(B * tc.rollout_context)
        if n_roll:  # these clips' context is what the model dreams from their first frame, as in an open loop
            with torch.no_grad():
                noise = torch.randn((n_roll, *x0.shape[1:]), generator=g).to(device)
                dreamed = rollout(model, x0[:n_roll, 0], ctrl[:n_roll], emb[:n_roll], noise, grad=False)
            context = torch.cat([dreamed, x0[n_roll:]])
        n_pred = round(B * tc.predicted_context)
        if n_pred:  # the next clips' context is what the world draws of each frame from the recorded ones before it
            pick = slice(n_roll, n_roll + n_pred)
            predicted = one_step_samples(model, x0[pick], ctrl[pick], emb[pick], mask, g)
            context = torch.cat([context[:n_roll], torch.cat([x0[pick, :1], predicted], 1), x0[n_roll + n_pred:]])
        clean = (torch.rand(B, F_, generator=g) * tc.context_noise).to(device)
        target = sample_sigmas(B, F_, model.cfg.scheduler_sigmas, dataclasses.replace(tc, clean_context_prob=0.0),
                               g, device)[0][:, 1:]
        x0, sigma, t, ctrl, last = clean_then_noisy(context, x0[:, 1:], clean, target, ctrl)  # last: clean or dreamed
        carries_loss = torch.cat([torch.zeros(B, F_, dtype=torch.bool), torch.ones(B, F_ - 1, dtype=torch.bool)],
                                 1).to(device)
    else:
        sigma, carries_loss = sample_sigmas(B, F_, model.cfg.scheduler_sigmas, tc, g, device)
        last = previous_frames(x0)  # clean, as inference's last frame is, whatever the context's noise
    noise = torch.randn(x0.shape, generator=g).to(device)
    s = sigma[..., None, None, None]
    x = (1 - s) * x0 + s * noise
    drop_prompt = (torch.rand(B, generator=g) < tc.prompt_dropout).to(device)
    emb = torch.where(drop_prompt[:, None, None], model.null_prompt(emb), emb)
    drop_ctrl = (torch.rand(B, generator=g) < tc.ctrl_dropout).to(device)
    v = model(x, sigma, t, ctrl, emb, cache=mask, ctrl_null=drop_ctrl, last_frame=last).float()
    estimate = x - s * v
    if tc.loss in ("x0", "x0_l1"):  # the error of the clean frame the velocity implies, at every sigma
        err = estimate - x0
        err = (err.abs() if tc.loss == "x0_l1" else err.pow(2)).mean(dim=(2, 3, 4))
    else:
        err = (v - (noise - x0)).pow(2).mean(dim=(2, 3, 4))
    return ClipPass(err, carries_loss, estimate, x0, last, sigma)


@torch.no_grad()
def one_step_samples(model: WaypointModel, x0: torch.Tensor, ctrl: torch.Tensor, prompt: torch.Tensor,
                     mask: CleanContextMask, g: torch.Generator) -> torch.Tensor:
    """Frames 1..F-1 [B, F-1, C, h, w] of clips x0 [B, F, C, h, w] as the world's sampler draws each one (its whole
    schedule) from the recorded frames before it under its controls ctrl [B, F, nb + 3] and prompt [B, P, Dp]: the
    frames an open loop holds one step after it leaves the recording."""
    sigmas = model.cfg.scheduler_sigmas
    B, n = x0.shape[:2]
    noise = torch.randn((B, n - 1, *x0.shape[2:]), generator=g).to(x0.device)
    at = lambda i: torch.full((B, n - 1), float(sigmas[i]), device=x0.device)  # noqa: E731 step i's sigma per frame
    return euler_denoise(noise, sigmas, lambda x, i: velocity(model, x0, x, at(i), ctrl, prompt, mask))


def adversarial_pairs(p: ClipPass, decoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded (previous frame, real frame) and (previous frame, estimate) pairs [N, 6, H, W] in [-1, 1] of the
    positions that carry loss at sigma >= ADVERSARIAL_MIN_SIGMA; the estimates keep their gradient."""
    pick = p.carries & (p.sigma >= ADVERSARIAL_MIN_SIGMA)  # [B, T]
    with torch.no_grad():
        last, real = decoder(p.last[pick])[:, :3], decoder(p.target[pick])[:, :3]  # [N, 3, H, W]
    fake = decoder(p.estimate[pick])[:, :3]
    return torch.cat([last, real], 1), torch.cat([last, fake], 1)


class DreamTriples(NamedTuple):
    """Recorded clips and the world's open-loop dreams of them, as the adversarial term judges them: each frame
    beside the one before it and the clip's first (recorded) frame, decoded and stacked on channels."""

    real: torch.Tensor  # [B (F - 1), 9, H, W] (first frame, previous frame, frame) of the recorded clips, in [-1, 1]
    fake: torch.Tensor  # [B (F - 1), 9, H, W] the same of the dreams (their first frame is the recorded one)
    dreamed: torch.Tensor  # [B, F - 1, C, h, w] the dreamed latents, each with its last sampler step's gradient
    controls: torch.Tensor  # [B (F - 1), nb + 3] the controls under which each triple's last frame follows


def dream_triples(model: WaypointModel, encoder: CaptionEncoder, x0: torch.Tensor, ctrl: torch.Tensor,
                  prompts: list[str], decoder: torch.nn.Module, g: torch.Generator) -> DreamTriples:
    """Triples of recorded clips x0 [B, F, C, h, w] and of the clips the world dreams from their first frame under
    their controls ctrl [B, F, nb + 3], as a user's open loop runs (the sampler's steps, the KV cache). Each
    dreamed frame keeps the gradient of its last sampler step; the frames beside it are held fixed. The first
    frame lets the discriminator see a dream drift from where it started, which step-to-step pairs hide."""
    emb, _ = encoder(prompts)
    noise = torch.randn(x0.shape, generator=g).to(x0.device)
    dreamed = rollout(model, x0[:, 0], ctrl, emb, noise)[:, 1:]  # [B, F - 1, C, h, w]
    rgb = lambda z: decoder(z.flatten(0, 1))[:, :3].unflatten(0, z.shape[:2])  # noqa: E731 [B, n, 3, H, W]
    with torch.no_grad():
        real = rgb(x0)
    fake = rgb(dreamed)  # decoded once: judged with its gradient, and held fixed as the next frame's previous one
    before = torch.cat([real[:, :1], fake[:, :-1].detach()], 1)  # the first frame, then the dreamed ones
    first = real[:, :1].expand_as(before)
    triple = lambda a, b: torch.cat([first, a, b], 2).flatten(0, 1)  # noqa: E731
    return DreamTriples(triple(real[:, :-1], real[:, 1:]), triple(before, fake), dreamed, ctrl[:, 1:].flatten(0, 1))


def lr_at(step: int, tc: WorldModelTraining) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    progress = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizers(model: WaypointModel, encoder: CaptionEncoder, tc: WorldModelTraining) -> list:
    """[AdamW] or, with `tc.optimizer == "muon"`, [AdamW, Muon]: Muon takes the 2-D weights inside the
    transformer blocks; embeddings, the output head, norms, scalars and the caption encoder stay with AdamW."""
    if tc.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {tc.optimizer!r}")
    muon = tc.optimizer == "muon"
    matrices = [p for n, p in model.named_parameters() if muon and p.ndim == 2 and n.startswith("transformer.")]
    chosen = {id(p) for p in matrices}
    rest = [p for p in [*model.parameters(), *encoder.parameters()] if id(p) not in chosen]
    opts = [torch.optim.AdamW(rest, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99))]
    if matrices:
        opts.append(torch.optim.Muon(matrices, lr=tc.lr, weight_decay=tc.weight_decay,
                                     adjust_lr_fn="match_rms_adamw"))
    return opts


def train_world_model(
    data: dict,
    key_names: list[str],
    captions: list[str],
    run_dir: str | Path,
    cfg: WaypointConfig,
    tc: WorldModelTraining | None = None,
    on_checkpoint: Callable[[int, WaypointModel, CaptionEncoder], bool] | None = None,
) -> tuple[WaypointModel, CaptionEncoder]:
    """Train (or resume) in `run_dir`; returns the EMA model and the caption encoder.

    `on_checkpoint(step, ema, encoder)` runs after each checkpoint; training stops early when it returns True.
    """
    tc = tc or WorldModelTraining()
    if tc.loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {tc.loss!r}")
    if not 0.0 <= tc.rollout_context <= 1.0 or (tc.rollout_context and not tc.teacher_forcing):
        raise ValueError(f"rollout_context must be in [0, 1] and needs teacher_forcing, got {tc.rollout_context} "
                         f"with teacher_forcing={tc.teacher_forcing}")
    if not 0.0 <= tc.predicted_context <= 1.0 - tc.rollout_context or (tc.predicted_context and
                                                                        not tc.teacher_forcing):
        raise ValueError(f"predicted_context must be in [0, 1 - rollout_context] and needs teacher_forcing, got "
                         f"{tc.predicted_context} with rollout_context={tc.rollout_context}, "
                         f"teacher_forcing={tc.teacher_forcing}")
    if not 0.0 <= tc.still_clips <= 1.0:
        raise ValueError(f"still_clips must be a share in [0, 1], got {tc.still_clips}")
    if not 0.0 <= tc.context_noise < 1.0:
        raise ValueError(f"context_noise must be in [0, 1), got {tc.context_noise}")
    if tc.adversarial_weight < 0 or tc.adversarial_start < 0:
        raise ValueError(f"adversarial_weight and adversarial_start must be >= 0, got {tc.adversarial_weight} and "
                         f"{tc.adversarial_start}")
    if tc.adversarial_dreams < 0 or (tc.adversarial_dreams and not tc.adversarial_weight):
        raise ValueError(f"adversarial_dreams must be >= 0 and needs adversarial_weight > 0, got "
                         f"{tc.adversarial_dreams} with adversarial_weight={tc.adversarial_weight}")
    if tc.adversarial_actions and not tc.adversarial_dreams:
        raise ValueError("adversarial_actions needs adversarial_dreams: the discriminator reads the dreams' controls")
    if tc.dream_frames < 0 or tc.dream_frames == 1:
        raise ValueError(f"dream_frames must be 0 (clip_frames) or >= 2 (a recorded frame and a dreamed one), got "
                         f"{tc.dream_frames}")
    if tc.adversarial_weight and (tc.loss == "velocity" or tc.autoencoder is None):
        raise ValueError(f"the adversarial term needs an x0 loss and the latents' autoencoder, got loss={tc.loss!r} "
                         f"and autoencoder={tc.autoencoder!r}")
    if tc.compile and tc.rollout_context:
        raise ValueError("compile covers the training pass only; rollout_context also runs the model through its "
                         "KV cache, one shape per frame, which would recompile at every frame")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(tc.device)
    torch.manual_seed(tc.seed)
    model = WaypointModel(cfg).to(device)
    if tc.init is None:
        scale_ctrl_init(model, tc.ctrl_init_scale)
        encoder = CaptionEncoder.for_captions(captions, cfg.prompt_embedding_dim).to(device)
    elif tc.ctrl_init_scale != 1.0:
        raise ValueError("ctrl_init_scale shapes a fresh initialisation; it cannot be combined with init")
    else:
        start, encoder = load_teacher(tc.init, captions, device)
        encoder.train().requires_grad_(True)  # load_teacher hands it out frozen; a fine-tune trains it too
        state = start.state_dict()
        if cfg.last_frame_warp and not start.cfg.last_frame_warp:  # a world given the warp starts as a copy of its
            # last frame: the new flow head at zero, and the output head, which drew the whole frame, zeroed
            state.update({k: v for k, v in model.state_dict().items() if k.startswith("warp_flow.")})
            state.update({k: torch.zeros_like(state[k]) for k in ("unpatchify.weight", "unpatchify.bias")})
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{tc.init} holds another architecture than the config to train: {e}") from None
        for name in ("prediction", "ctrl_fusion"):  # same tensors, another function: the weights would mean nothing
            if getattr(start.cfg, name) != getattr(cfg, name):
                raise ValueError(f"{tc.init} was trained with {name}={getattr(start.cfg, name)!r}, the config to "
                                 f"train has {name}={getattr(cfg, name)!r}: another architecture")
        unknown = sorted({w for c in captions for w in words(c)} - set(encoder.vocab))
        if unknown:
            raise ValueError(f"{tc.init}'s caption encoder does not know the words {unknown[:10]}")
        changed = [f"{f.name} {getattr(start.cfg, f.name)!r} -> {getattr(cfg, f.name)!r}"
                   for f in dataclasses.fields(cfg) if getattr(start.cfg, f.name) != getattr(cfg, f.name)]
        if changed:  # same tensors, other attention windows, RoPE or schedule: allowed, but said
            log.warning("fine-tuning %s with config fields changed: %s", tc.init, "; ".join(changed))
    params = list(model.parameters()) + list(encoder.parameters())
    opts = make_optimizers(model, encoder, tc)
    ema = copy.deepcopy(model).requires_grad_(False)
    critic = decoder = None
    if tc.adversarial_weight:
        decoder = Autoencoder.from_pretrained(tc.autoencoder, device=device).decoder.eval().requires_grad_(False)
        critic = Critic(DISCRIMINATOR_LR, device, in_channels=9 if tc.adversarial_dreams else 6,  # frames on channels
                        condition_dim=cfg.n_buttons + 3 if tc.adversarial_actions else 0,
                        levels=tc.discriminator_levels)
    step = 0
    state_path = run_dir / "train_state.pt"
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        encoder.load_state_dict(state["encoder"])
        muon_states = state.get("muon", [])  # absent from states saved before the option existed
        if len(muon_states) != len(opts) - 1:
            raise ValueError(f"{state_path} was saved with another optimizer than {tc.optimizer!r}")
        for opt, opt_state in zip(opts, [state["opt"], *muon_states]):
            opt.load_state_dict(opt_state)
        if (critic is not None) != ("disc" in state):
            raise ValueError(f"{state_path} was saved {'with' if 'disc' in state else 'without'} the adversarial "
                             f"term; resume it the same way, or use another run folder")
        if critic is not None:
            critic.load_state_dict(state)
        step = state["step"]
        log.info("resumed %s at step %d", run_dir, step)
    # The training pass compiled (the same parameters: names, checkpoints and the EMA stay as they are); dreams run
    # the model through its KV cache, one shape per frame, so eager
    train_pass = torch.compile(model, dynamic=False) if tc.compile else model
    (run_dir / "config.json").write_text(json.dumps({"model": cfg.to_dict(), "training": asdict(tc)}, indent=2))

    sampler = ClipSampler(data, key_names, cfg, tc.clip_frames, tc.seed + step, device, tc.still_clips)
    dreams = ClipSampler(data, key_names, cfg, tc.dream_frames or tc.clip_frames, tc.seed + step + 2, device,
                         tc.still_clips) if tc.adversarial_dreams else None
    mask = (CleanContextMask if tc.teacher_forcing else FrameCausalMask)(cfg, tc.clip_frames, device)
    starts, start_mask = None, None
    if tc.start_frames < 0:
        raise ValueError(f"start_frames must be >= 0, got {tc.start_frames}")
    if tc.start_frames:
        starts = ClipSampler(data, key_names, cfg, 1, tc.seed + step + 1, device)
        start_mask = FrameCausalMask(cfg, 1, device)
    g = torch.Generator().manual_seed(tc.seed * 1000 + step)
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    log_file = open(run_dir / "log.jsonl", "a")
    bar = tqdm(total=tc.steps, initial=step, desc="world model", unit="step")
    t0, losses, parts = time.time(), [], []
    while step < tc.steps and (tc.time_limit is None or time.time() - t0 < tc.time_limit):
        for group in (group for opt in opts for group in opt.param_groups):
            group["lr"] = lr_at(step, tc)
        with autocast:
            clips = clip_errors(train_pass, encoder, *sampler.sample(tc.batch_size), mask, tc, g)
            err, carries = clips.err, clips.carries
            if starts is not None:  # single frames with an empty history: the frame a prompt alone opens with
                err0, carries0 = clip_errors(train_pass, encoder, *starts.sample(tc.start_frames), start_mask, tc,
                                             g)[:2]
                err = torch.cat([err.flatten(), err0.flatten()])
                carries = torch.cat([carries.flatten(), carries0.flatten()])
            loss = (err * carries).sum() / carries.sum().clamp(min=1)
            if critic is not None:
                condition = None
                if dreams is None:
                    real_pairs, fake_pairs = adversarial_pairs(clips, decoder)
                    judged = clips.estimate
                else:  # before adversarial_start the discriminator alone learns: no graph through the dreams
                    with torch.set_grad_enabled(step >= tc.adversarial_start):
                        real_pairs, fake_pairs, judged, controls = dream_triples(
                            model, encoder, *dreams.sample(tc.adversarial_dreams), decoder, g)
                    condition = controls if tc.adversarial_actions else None
                if step >= tc.adversarial_start and len(fake_pairs):
                    adversarial = generator_loss(critic.net(fake_pairs, condition))
                    weight = tc.adversarial_weight * balanced_weight(loss, adversarial, clips.estimate, judged)
                    parts.append({"x0": loss.item(), "adversarial": adversarial.item(), "scale": weight.item()})
                    loss = loss + weight * adversarial
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for opt in opts:
            opt.step()
        if critic is not None and len(fake_pairs):
            parts.append({"discriminator": critic.update(real_pairs, fake_pairs, autocast, condition)})
        with torch.no_grad():
            decay = min(tc.ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % tc.log_every == 0 or step == tc.steps:
            rec = {"step": step, "loss": float(np.mean(losses)), "lr": lr_at(step, tc), "s": time.time() - t0}
            rec.update({k: float(np.mean([q[k] for q in parts if k in q])) for k in {k for q in parts for k in q}})
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
            losses, parts = [], []
        out_of_time = tc.time_limit is not None and time.time() - t0 >= tc.time_limit
        if step % tc.ckpt_every == 0 or step == tc.steps or out_of_time:
            state = {"model": model.state_dict(), "ema": ema.state_dict(), "encoder": encoder.state_dict(),
                     "opt": opts[0].state_dict(), "muon": [o.state_dict() for o in opts[1:]], "step": step}
            if critic is not None:
                state.update(critic.state_dict())
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)
            if on_checkpoint is not None and on_checkpoint(step, ema.eval(), encoder.eval()):
                break
            encoder.train()
    bar.close()
    log_file.close()
    return ema.eval(), encoder.eval()


@torch.no_grad()
def teacher_forced_error(model: WaypointModel, encoder: CaptionEncoder, data: dict, key_names: list[str],
                         clip_frames: int, n_clips: int = 64, seed: int = 1,
                         controls: Callable[[torch.Tensor], torch.Tensor] | None = None, first_frame: int = 1) -> float:
    """Mean squared x0 error of a one-step prediction of each frame from `first_frame` on from clean context
    at sigma 1 (frame 0 has none: its prompt alone).

    `controls` edits the recorded control vectors [n, F, nb + 3] first (see `control_sensitivity`); the
    clips and the noise depend only on `seed`, so errors under different controls compare like for like.
    """
    device = next(model.parameters()).device
    sampler = ClipSampler(data, key_names, model.cfg, clip_frames, seed, device)
    x0, ctrl, prompts = sampler.sample(n_clips)
    if controls is not None:
        ctrl = controls(ctrl)
    emb, _ = encoder(prompts)
    last = previous_frames(x0)  # each frame's clean last frame (read by last_frame_warp)
    g = torch.Generator().manual_seed(seed)
    errs = []
    for f in range(first_frame, clip_frames):
        sigma = torch.zeros(n_clips, f + 1, device=device)
        sigma[:, f] = 1.0
        noise = torch.randn(x0[:, f].shape, generator=g).to(device)
        x = x0[:, : f + 1].clone()
        x[:, f] = noise
        t = torch.arange(f + 1, device=device).expand(n_clips, -1)
        v = model(x, sigma, t, ctrl[:, : f + 1], emb, cache=FrameCausalMask(model.cfg, f + 1, device),
                  last_frame=last[:, : f + 1])
        errs.append(F.mse_loss(noise - v[:, f], x0[:, f]).item())
    return float(np.mean(errs))


@torch.no_grad()
def prompt_start_error(model: WaypointModel, encoder: CaptionEncoder, data: dict, key_names: list[str],
                       n_frames: int = 256, seed: int = 1) -> float:
    """Mean squared x0 error of recorded frames predicted at sigma 1 from their prompt alone (an empty
    history), as an episode opened from a prompt begins."""
    return teacher_forced_error(model, encoder, data, key_names, 1, n_frames, seed, first_frame=0)


def control_sensitivity(model: WaypointModel, encoder: CaptionEncoder, data: dict, key_names: list[str],
                        clip_frames: int, n_clips: int = 64, seed: int = 1) -> dict:
    """Does the model use the controls? Its teacher-forced error with the recorded controls, with the mouse's
    x (turning) mirrored, and with no controls; a world that ignores the controls scores the three alike."""
    def mirrored(c):
        c = c.clone()
        c[..., 0] = -c[..., 0]
        return c

    args = (model, encoder, data, key_names, clip_frames, n_clips, seed)
    true = teacher_forced_error(*args)
    mirror = teacher_forced_error(*args, controls=mirrored)
    none = teacher_forced_error(*args, controls=torch.zeros_like)
    return {"recorded": true, "mirrored_mouse": mirror, "no_controls": none, "mirrored_mouse_cost": mirror / true - 1}


@torch.no_grad()
def write_report(run_dir: str | Path, model: WaypointModel, encoder: CaptionEncoder, data: dict, key_names: list[str],
                 autoencoder=None, clip_frames: int = 8, seed: int = 2) -> dict:
    """`run_dir/report.json` (loss curve summary, teacher-forced error) and, with an autoencoder,
    `run_dir/samples.png`: recorded frames (top) over one-step predictions from the recorded past (bottom)."""
    import cv2

    run_dir = Path(run_dir)
    log_rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    sensitivity = control_sensitivity(model, encoder, data, key_names, clip_frames, seed=seed)
    report = {
        "steps": log_rows[-1]["step"] if log_rows else 0,
        "first_loss": log_rows[0]["loss"] if log_rows else None,
        "final_loss": log_rows[-1]["loss"] if log_rows else None,
        "teacher_forced_x0_mse": sensitivity["recorded"],  # the error with the recorded controls
        "control_sensitivity": sensitivity,
        "prompt_start_x0_mse": prompt_start_error(model, encoder, data, key_names, seed=seed),
    }
    if autoencoder is not None:
        device = next(model.parameters()).device
        x0, ctrl, prompts = ClipSampler(data, key_names, model.cfg, clip_frames, seed, device).sample(4)
        emb, _ = encoder(prompts)
        n = x0.shape[0]
        last = previous_frames(x0)
        rows_real, rows_pred = [], []
        for f in range(1, clip_frames):
            sigma = torch.zeros(n, f + 1, device=device)
            sigma[:, f] = 1.0
            x = x0[:, : f + 1].clone()
            x[:, f] = torch.randn_like(x[:, f])
            t = torch.arange(f + 1, device=device).expand(n, -1)
            v = model(x, sigma, t, ctrl[:, : f + 1], emb, cache=FrameCausalMask(model.cfg, f + 1, device),
                      last_frame=last[:, : f + 1])
            rows_pred.append(autoencoder.decode(x[:, f] - v[:, f]))  # one Euler step from sigma 1 to 0
            rows_real.append(autoencoder.decode(x0[:, f]))
        real = np.concatenate([np.concatenate(list(r), axis=1) for r in zip(*rows_real)], axis=0)
        pred = np.concatenate([np.concatenate(list(r), axis=1) for r in zip(*rows_pred)], axis=0)
        strip = np.concatenate([real, pred], axis=0) if real.shape[0] <= 64 else np.concatenate(
            [np.concatenate([a, b], axis=0) for a, b in zip(np.split(real, n), np.split(pred, n))], axis=0)
        cv2.imwrite(str(run_dir / "samples.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
