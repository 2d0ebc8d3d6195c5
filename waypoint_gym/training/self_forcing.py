"""Self-forcing post-training with distribution matching distillation (DMD): a few-step, drift-resistant student.

Waypoint-1's second training stage. Diffusion forcing (`world_model.py`) trains every frame from clean *recorded*
context; at inference the context is the model's own imperfect frames, and errors pile up. Here a student,
initialised from the diffusion-forcing teacher, generates its training clips itself, autoregressively, through
the same cached path as `WorldEngine` (KV cache, few-step Euler schedule, clean frame stored at sigma 0):

1. Rollout. Frame 0 of a clip is a recorded seed latent; frames 1..F-1 are generated under recorded controls
   and prompts. Each frame runs its denoising steps up to a randomly chosen exit step without gradient; the
   exit step runs with gradient, and its x0 estimate is the frame (the last step's x0 estimate is exactly the
   Euler result). The frame is then stored in the cache, detached, so gradients stop at each frame's exit step.
2. DMD. The generated frames are noised to a random sigma; the frozen teacher (with classifier-free guidance on
   controls and prompt together, through the checkpoint's null embeddings) and an online critic (the "fake"
   score) predict their x0, and the student is pushed along (fake - real) / mean|student - real|. Two ways
   to score: "joint" (default) noises the whole generated clip to one sigma after its clean seed frame
   (`FrameCausalMask`, as diffusion forcing trains), so the teacher judges the rollout against the seed;
   "context" scores each frame, at its own sigma, from the student's clean frames before it
   (`CleanContextMask`: one pass over the clean clip followed by the noisy copies), so the teacher judges each
   step given the student's own history.
3. Critic. The critic, initialised from the teacher, learns the student's samples with the ordinary diffusion
   loss (several updates per student update).

The student exports as an ordinary Waypoint checkpoint whose `scheduler_sigmas` is its few-step schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.kv_cache import CleanContextMask, FrameCausalMask, KVCache
from waypoint_gym.engine.model import WaypointModel, previous_frames
from waypoint_gym.engine.prompt import CaptionEncoder

from .data import ClipSampler

log = logging.getLogger(__name__)


@dataclass
class SelfForcingTraining:
    steps: int = 1000  # student updates
    batch_size: int = 8
    clip_frames: int = 16  # frame 0 is a recorded seed, the rest the student generates
    student_sigmas: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.0])  # 2 steps
    lr: float = 2e-5  # student
    critic_lr: float = 1e-4
    critic_steps: int = 2  # critic updates per student update (one on the student's batch, the rest on new rollouts)
    guidance: float = 1.5  # classifier-free guidance of the teacher's ("real") score; 1 = none (3 saturated)
    sigma_min: float = 0.02  # noise levels of the DMD and critic losses, U(sigma_min, sigma_max)
    sigma_max: float = 0.98
    scoring: str = "joint"  # "joint": seed frame clean, generated frames noisy; "context": each from clean context
    random_exit: bool = True  # exit step of each frame drawn at random (else always the last step)
    warmup: int = 20
    weight_decay: float = 0.0
    ema_decay: float = 0.99
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    ckpt_every: int = 100
    time_limit: float | None = None  # seconds: stop (saving the state) after this long; a rerun resumes

    def check(self) -> None:
        """Raise ValueError naming every bad field."""
        problems = []
        for name in ("steps", "batch_size", "critic_steps", "log_every", "ckpt_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.clip_frames, int) or self.clip_frames < 2:
            problems.append(f"clip_frames must be an integer >= 2 (a seed frame and a generated one), "
                            f"got {self.clip_frames!r}")
        sig = [float(s) for s in self.student_sigmas]
        if len(sig) < 2 or sig[0] != 1.0 or sig[-1] != 0.0 or any(a <= b for a, b in zip(sig, sig[1:])):
            problems.append(f"student_sigmas must descend strictly from 1.0 to 0.0, got {self.student_sigmas}")
        if not 0.0 < self.sigma_min < self.sigma_max <= 1.0:
            problems.append(f"need 0 < sigma_min < sigma_max <= 1, got {self.sigma_min} and {self.sigma_max}")
        if self.scoring not in ("joint", "context"):
            problems.append(f"scoring must be 'joint' or 'context', got {self.scoring!r}")
        if not self.guidance >= 1.0:
            problems.append(f"guidance must be >= 1 (1 = no guidance), got {self.guidance}")
        if self.lr <= 0 or self.critic_lr <= 0:
            problems.append(f"learning rates must be positive, got lr={self.lr}, critic_lr={self.critic_lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if problems:
            raise ValueError("invalid self-forcing settings: " + "; ".join(problems))


def student_config(teacher_cfg: WaypointConfig, sigmas: list[float]) -> WaypointConfig:
    """The teacher's config with the student's few-step schedule."""
    return WaypointConfig.from_dict({**teacher_cfg.to_dict(), "scheduler_sigmas": list(sigmas)})


# ---------------------------------------------------------------------------------------------- scoring


def velocity(model: WaypointModel, frames, noisy, sigma, ctrl, prompt, mask, ctrl_null=None) -> torch.Tensor:
    """The model's velocity [B, F-1, C, H, W] for the noisy frames 1..F-1 of a clip whose clean frames are `frames`.

    With a `CleanContextMask` every noisy frame is seen after the clean clip (its context is the student's clean
    frames); with a `FrameCausalMask` of F frames ("joint" scoring) the clip is the clean seed frame followed by
    all the noisy frames, as diffusion forcing trains. noisy [B, F-1, C, H, W] at sigma [B, F-1]; ctrl
    [B, F, nb + 3]; prompt [B, P, Dp].
    """
    B, n = frames.shape[:2]
    clean_sigma = torch.zeros(B, n, device=sigma.device)
    if isinstance(mask, CleanContextMask):
        x, s, t, c, last = clean_then_noisy(frames, noisy, clean_sigma, sigma, ctrl)
    else:
        x, s, c = torch.cat([frames[:, :1], noisy], 1), torch.cat([clean_sigma[:, :1], sigma], 1), ctrl
        t = torch.arange(n, device=frames.device).expand(B, -1)
        last = previous_frames(frames)
    return model(x, s, t, c, prompt, cache=mask, ctrl_null=ctrl_null, last_frame=last)[:, 1 - n:].float()


def clean_then_noisy(frames, noisy, clean_sigma, sigma, ctrl):
    """The one-pass sequence a `CleanContextMask` scores: the clip's clean frames [B, F, C, H, W] at clean_sigma
    [B, F], then frames 1..F-1 [B, F-1, C, H, W] at sigma [B, F-1], each at its own frame index and with its
    own control [B, F, nb + 3] -> (x [B, 2F-1, ...], sigma, frame index [B, 2F-1], ctrl, and each frame's clean
    last frame [B, 2F-1, ...] for `last_frame`)."""
    B, n = frames.shape[:2]
    t = torch.cat([torch.arange(n), torch.arange(1, n)]).to(frames.device).expand(B, -1)
    last = torch.cat([previous_frames(frames), frames[:, :-1]], 1)
    return (torch.cat([frames, noisy], 1), torch.cat([clean_sigma, sigma], 1), t, torch.cat([ctrl, ctrl[:, 1:]], 1),
            last)


def predict_x0(model: WaypointModel, frames, noisy, sigma, ctrl, prompt, mask, ctrl_null=None) -> torch.Tensor:
    """x0 estimates [B, F-1, C, H, W] of the noisy frames 1..F-1 (see `velocity`)."""
    v = velocity(model, frames, noisy, sigma, ctrl, prompt, mask, ctrl_null)
    return noisy - sigma[..., None, None, None] * v


def guided_x0(teacher: WaypointModel, frames, noisy, sigma, ctrl, prompt, mask, guidance: float) -> torch.Tensor:
    """The teacher's x0 with classifier-free guidance over controls and prompt together (one batched pass)."""
    if guidance == 1.0:
        return predict_x0(teacher, frames, noisy, sigma, ctrl, prompt, mask)
    B = frames.shape[0]
    two = lambda t: torch.cat([t, t])  # noqa: E731
    uncond_prompt = teacher.null_prompt(prompt) if teacher.cfg.prompt_conditioning else prompt
    drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(frames.device)
    x0 = predict_x0(teacher, two(frames), two(noisy), two(sigma), two(ctrl), torch.cat([prompt, uncond_prompt]),
                    mask, ctrl_null=drop if teacher.cfg.ctrl_conditioning else None)
    cond, uncond = x0.chunk(2)
    return uncond + guidance * (cond - uncond)


def noised(x0: torch.Tensor, tc: SelfForcingTraining, g: torch.Generator, per_clip: bool = False):
    """x0 [B, F', C, H, W] -> (noisy, sigma [B, F'], noise), sigma ~ U(sigma_min, sigma_max) per frame or per clip."""
    B, n = x0.shape[:2]
    sigma = torch.rand(B, 1 if per_clip else n, generator=g).expand(B, n)
    sigma = tc.sigma_min + (tc.sigma_max - tc.sigma_min) * sigma
    noise = torch.randn(x0.shape, generator=g)
    sigma, noise = sigma.to(x0.device), noise.to(x0.device)
    s = sigma[..., None, None, None]
    return (1 - s) * x0 + s * noise, sigma, noise


def dmd_loss(frames, teacher, critic, ctrl, prompt, mask, tc: SelfForcingTraining, g: torch.Generator):
    """DMD loss of the generated frames frames[:, 1:] (with grad) -> (loss, mean |gradient|).

    d loss / d x0 = (x0_fake - x0_real) / mean|x0 - x0_real| per sample, spread over the elements.
    """
    x0 = frames[:, 1:]
    with torch.no_grad():
        context = frames.detach()
        noisy, sigma, _ = noised(x0.detach(), tc, g, per_clip=not isinstance(mask, CleanContextMask))
        real = guided_x0(teacher, context, noisy, sigma, ctrl, prompt, mask, tc.guidance)
        fake = predict_x0(critic, context, noisy, sigma, ctrl, prompt, mask)
        scale = (x0.detach() - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp(min=1e-6)
        grad = (fake - real) / scale
    loss = 0.5 * F.mse_loss(x0, (x0 - grad).detach())
    return loss, grad.abs().mean().item()


def critic_loss(critic, frames, ctrl, prompt, mask, tc: SelfForcingTraining, g: torch.Generator) -> torch.Tensor:
    """The ordinary diffusion (velocity) loss of the critic on the student's frames, scored as `mask` says."""
    frames = frames.detach()
    x0 = frames[:, 1:]
    noisy, sigma, noise = noised(x0, tc, g, per_clip=not isinstance(mask, CleanContextMask))
    return F.mse_loss(velocity(critic, frames, noisy, sigma, ctrl, prompt, mask), noise - x0)


# ---------------------------------------------------------------------------------------------- rollout


def rollout(
    student: WaypointModel,
    seed_latent: torch.Tensor,  # [B, C, H, W] recorded frame 0
    ctrl: torch.Tensor,  # [B, F, nb + 3]; ctrl[:, 0] goes with the seed frame
    prompt: torch.Tensor | None,  # [B, P, Dp]
    noise: torch.Tensor,  # [B, F, C, H, W] starting noise of each frame (frame 0's unused)
    exit_steps: list[int] | None = None,  # per frame, the denoising step that runs with gradient (default: last)
    grad: bool = True,
) -> torch.Tensor:
    """Generate frames 1..F-1 autoregressively through the KV cache, as `WorldEngine.gen_latent` does.

    Returns the clip [B, F, C, H, W]: the seed, then each frame's x0 estimate at its exit step (with gradient
    through that one pass when `grad`). The cache holds the clean frames, detached.
    """
    B, n = ctrl.shape[:2]
    sigmas = student.cfg.scheduler_sigmas
    last = len(sigmas) - 2
    exit_steps = exit_steps or [last] * n
    if len(exit_steps) != n or not all(0 <= k <= last for k in exit_steps):
        raise ValueError(f"exit_steps must give one step in [0, {last}] per frame, got {exit_steps}")
    device = seed_latent.device
    cache = KVCache(student.cfg, B, device)
    ids = torch.arange(B, device=device)  # explicit rows: attention reads copies, so the buffers stay out of autograd
    full = lambda s: torch.full((B,), float(s), device=device)  # noqa: E731
    frames = [seed_latent]
    for f in range(n):
        plan = cache.plan(ids, commit=False)
        with torch.set_grad_enabled(grad):
            last_frame = frames[-1].detach() if f > 0 else torch.zeros_like(seed_latent)
            inputs = student.frame_inputs(cache.frame[ids], ctrl[:, f], prompt, plan, cache, last_frame=last_frame)
        if f > 0:
            k = exit_steps[f]
            x = noise[:, f]
            with torch.no_grad():
                for i in range(k):
                    x = x + (sigmas[i + 1] - sigmas[i]) * student(x, full(sigmas[i]), inputs=inputs).float()
            with torch.set_grad_enabled(grad):
                v = student(x, full(sigmas[k]), inputs=inputs).float()
                frames.append(x + (0.0 - sigmas[k]) * v)  # the x0 estimate; for the last step, the Euler step
        with torch.no_grad():  # the cache pass at sigma 0 stores the clean frame, then the ring moves on
            committing = dataclasses.replace(inputs, plan=dataclasses.replace(plan, commit=True))
            student(frames[f].detach(), full(0.0), inputs=committing)
            cache.advance(committing.plan)
    return torch.stack(frames, 1)


# ---------------------------------------------------------------------------------------------- training


def lr_factor(step: int, tc: SelfForcingTraining) -> float:
    return min(1.0, (step + 1) / max(1, tc.warmup))


def train_self_forcing(
    data: dict,
    key_names: list[str],
    teacher: WaypointModel,
    encoder: CaptionEncoder,
    run_dir: str | Path,
    tc: SelfForcingTraining | None = None,
) -> WaypointModel:
    """Distil `teacher` into a few-step student on its own rollouts (resuming `run_dir`); returns the EMA student.

    `data` is what `ClipSampler` reads (latents, keys, mouse, prompt, length); `encoder` encodes the prompts
    and stays frozen, as does the teacher.
    """
    tc = tc or SelfForcingTraining()
    tc.check()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(tc.device)
    torch.manual_seed(tc.seed)
    teacher = teacher.to(device).float().eval().requires_grad_(False)
    encoder = encoder.to(device).float().eval().requires_grad_(False)
    student = WaypointModel(student_config(teacher.cfg, tc.student_sigmas)).to(device)
    student.load_state_dict(teacher.state_dict())
    critic = copy.deepcopy(teacher).train().requires_grad_(True)
    ema = copy.deepcopy(student).requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.0, 0.99))
    opt_critic = torch.optim.AdamW(critic.parameters(), lr=tc.critic_lr, weight_decay=tc.weight_decay,
                                   betas=(0.0, 0.99))
    step = 0
    state_path = run_dir / "train_state.pt"
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        for module, key in ((student, "student"), (ema, "ema"), (critic, "critic"), (opt, "opt"),
                            (opt_critic, "opt_critic")):
            module.load_state_dict(state[key])
        step = state["step"]
        log.info("resumed %s at step %d", run_dir, step)
    (run_dir / "config.json").write_text(json.dumps({"model": student.cfg.to_dict(), "training": asdict(tc)}, indent=2))

    sampler = ClipSampler(data, key_names, teacher.cfg, tc.clip_frames, tc.seed + step, device)
    mask = (CleanContextMask if tc.scoring == "context" else FrameCausalMask)(teacher.cfg, tc.clip_frames, device)
    g = torch.Generator().manual_seed(tc.seed * 1000 + step)
    rng = np.random.default_rng(tc.seed * 1000 + step)
    n_steps = len(tc.student_sigmas) - 1
    cuda = device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else (
        lambda: torch.autocast("cpu", enabled=False))

    def generate(grad: bool):
        x0, ctrl, prompts = sampler.sample(tc.batch_size)
        with torch.no_grad():
            emb, _ = encoder(prompts)
        noise = torch.randn(x0.shape, generator=g).to(device)
        exits = (rng.integers(n_steps, size=tc.clip_frames) if tc.random_exit else np.full(tc.clip_frames,
                                                                                           n_steps - 1)).tolist()
        with autocast():
            frames = rollout(student, x0[:, 0], ctrl, emb, noise, exits, grad=grad)
        return frames, ctrl, emb

    def critic_update(frames, ctrl, emb) -> float:
        with autocast():
            loss = critic_loss(critic, frames, ctrl, emb, mask, tc, g)
        opt_critic.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        opt_critic.step()
        return loss.item()

    log_file = open(run_dir / "log.jsonl", "a")
    bar = tqdm(total=tc.steps, initial=step, desc="self forcing", unit="step")
    t0, rows = time.time(), {"dmd_loss": [], "dmd_grad": [], "critic_loss": [], "sample_std": []}
    while step < tc.steps and (tc.time_limit is None or time.time() - t0 < tc.time_limit):
        for group in opt.param_groups:
            group["lr"] = tc.lr * lr_factor(step, tc)
        for group in opt_critic.param_groups:
            group["lr"] = tc.critic_lr * lr_factor(step, tc)
        # student: a rollout with gradient through each frame's exit step, pushed along the DMD gradient
        frames, ctrl, emb = generate(grad=True)
        with autocast():
            loss, grad_size = dmd_loss(frames, teacher, critic, ctrl, emb, mask, tc, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(tc.ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), student.parameters()):
                pe.lerp_(pm, 1 - decay)
        # critic: the diffusion loss on the student's samples, this batch and fresh rollouts
        critic_losses = [critic_update(frames, ctrl, emb)]
        for _ in range(tc.critic_steps - 1):
            critic_losses.append(critic_update(*generate(grad=False)))
        step += 1
        rows["dmd_loss"].append(loss.item())
        rows["dmd_grad"].append(grad_size)
        rows["critic_loss"].append(float(np.mean(critic_losses)))
        rows["sample_std"].append(frames[:, 1:].detach().std().item())
        bar.update(1)
        if step % tc.log_every == 0 or step == tc.steps:
            rec = {"step": step, **{k: float(np.mean(v)) for k, v in rows.items()}, "s": time.time() - t0}
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
            bar.set_postfix(dmd=f"{rec['dmd_grad']:.3f}", critic=f"{rec['critic_loss']:.4f}")
            rows = {k: [] for k in rows}
        out_of_time = tc.time_limit is not None and time.time() - t0 >= tc.time_limit
        if step % tc.ckpt_every == 0 or step == tc.steps or out_of_time:
            state = {"student": student.state_dict(), "ema": ema.state_dict(), "critic": critic.state_dict(),
                     "opt": opt.state_dict(), "opt_critic": opt_critic.state_dict(), "step": step}
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)
    bar.close()
    log_file.close()
    return ema.eval()


@torch.no_grad()
def rollout_error(model: WaypointModel, encoder: CaptionEncoder, data: dict, key_names: list[str], clip_frames: int,
                  n_clips: int = 32, seed: int = 1) -> list[float]:
    """Mean squared error against the recorded frames of an open-loop rollout from a recorded seed, per frame."""
    device = next(model.parameters()).device
    x0, ctrl, prompts = ClipSampler(data, key_names, model.cfg, clip_frames, seed, device).sample(n_clips)
    emb, _ = encoder(prompts)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    frames = rollout(model, x0[:, 0], ctrl, emb, noise, grad=False)
    return (frames[:, 1:] - x0[:, 1:]).pow(2).mean(dim=(0, 2, 3, 4)).tolist()


def write_report(run_dir: str | Path, teacher: WaypointModel, student: WaypointModel, encoder: CaptionEncoder,
                 data: dict, key_names: list[str]) -> dict:
    """`run_dir/report.json`: the open-loop error per frame of teacher and student on recorded clips (rollouts
    from their first frame, up to 16 frames)."""
    frames = min(16, int(np.asarray(data["length"]).max()))
    report = {"open_loop_mse_per_frame": {
        f"teacher ({len(teacher.cfg.scheduler_sigmas) - 1} steps)": rollout_error(teacher, encoder, data, key_names,
                                                                                  frames),
        f"student ({len(student.cfg.scheduler_sigmas) - 1} steps)": rollout_error(student, encoder, data, key_names,
                                                                                  frames)}}
    (Path(run_dir) / "report.json").write_text(json.dumps(report, indent=2))
    return report
