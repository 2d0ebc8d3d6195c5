"""Training a small member of the Waypoint autoencoder family on collected frames.

The loss, on images in [-1, 1]:

    mse(x_hat, x) + l1_weight * l1(x_hat, x) + latent_weight * mean_c (E[z_c^2] - 1)^2
        [+ equivariance_weight * (mse + l1_weight * l1)(decoder(T z), T x)
         + latent_equivariance_weight * mse(encoder(T x), T z) / E[z^2]]
        [+ adversarial_weight * balance * hinge generator loss, once step >= adversarial_start]

where x_hat decodes z + latent_noise * eps. The latent_weight term pulls the second moment of every latent channel (over
the batch and positions) to 1, so latents stay at unit scale, the scale the world model's noise assumes. The
noise keeps the encoder from shrinking information into tiny latents and teaches the decoder to tolerate
latents that are a little off, as generated ones are. The optional equivariance term (after EQ-VAE, Kouzelis
et al. 2025) draws a random shift and zoom T per frame, applies it to the latent and to the image alike (the
same sampling grid in normalised coordinates) and asks the decoder to turn the moved latent into the moved
image: a latent that must survive being moved by a fraction of a pixel is smooth, so that a turn or a step of
the game moves it rather than redrawing it. The decoder's
part alone leaves the encoder free to redraw the latent under a move of a fraction of a latent pixel; the
latent part asks the encoder itself to move its latent with the frame (measured in
docs/lab/2026-12-06-a-latent-that-moves.md: smoother, softer reconstructions). The optional adversarial term
(`adversarial.py`) makes the decoder draw texture a squared error averages away; `balance` scales its gradient
at the decoder's last layer to the reconstruction's.

Outputs in `out_dir`: `train_state.pt` (for resuming), `autoencoder/` (the four files `Autoencoder` loads),
`report.json` (losses, held-out PSNR, per-channel latent mean and std) and `ae_samples.png` (held-out frames,
originals above reconstructions).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from waypoint_gym.engine.autoencoder import Autoencoder, AutoencoderConfig
from waypoint_gym.training.adversarial import Critic, balanced_weight, generator_loss
from waypoint_gym.training.data import load_chunks

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
AE_FOLDER = "autoencoder"


def autoencoder_config(
    latent_channels: int = 16,
    stages: int = 3,
    ch_0: int = 32,
    ch_max: int = 128,
    blocks_per_stage: int = 1,
    size: tuple[int, int] = (64, 64),
) -> AutoencoderConfig:
    """An RGB autoencoder of `stages` halvings (64 -> 8 for 3) working at `size`, the frames' own size."""
    return AutoencoderConfig(
        channels=3, ch_0=ch_0, ch_max=ch_max, encoder_blocks_per_stage=[blocks_per_stage] * stages,
        decoder_blocks_per_stage=[blocks_per_stage] * stages, latent_channels=latent_channels, skip_logvar=True,
        input_size=size, output_size=size,
    )


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1


def ae_loss(
    model: Autoencoder, x: torch.Tensor, latent_noise: float, l1_weight: float, latent_weight: float,
    generator: torch.Generator | None = None, equivariance_weight: float = 0.0, equivariance_shift: float = 0.125,
    equivariance_zoom: float = 1.25, latent_equivariance_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The reconstruction loss of a batch x [N, 3, H, W] in [-1, 1] -> (loss, its parts, the decoded batch)."""
    z = model.encoder(x)  # [N, C, h, w]
    noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)
    noisy = z + latent_noise * noise
    y = model.decoder(noisy)[:, :3].float()  # [N, 3, H, W]
    mse = F.mse_loss(y, x)
    l1 = F.l1_loss(y, x)
    second_moment = z.float().pow(2).mean(dim=(0, 2, 3))  # [C]
    reg = (second_moment - 1).pow(2).mean()
    loss = mse + l1_weight * l1 + latent_weight * reg
    parts = {"mse": mse.item(), "l1": l1.item(), "latent_reg": reg.item()}
    if equivariance_weight > 0 or latent_equivariance_weight > 0:
        decoded, latent = equivariance_loss(model, x, z, noisy, equivariance_shift, equivariance_zoom, l1_weight,
                                            latent_equivariance_weight > 0, generator)
        loss = loss + equivariance_weight * decoded + latent_equivariance_weight * latent
        parts.update(equivariance=decoded.item(), latent_equivariance=latent.item())
    return loss, {"loss": loss.item(), **parts}, y


def random_moves(n: int, shift: float, zoom: float, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """n random affine maps [n, 2, 3] for `F.affine_grid`: a shift of up to `shift` of the frame's width and
    height each way and a zoom by a factor in [1 / zoom, zoom] (log-uniform), about the centre."""
    u = torch.rand(n, 3, generator=generator, device=device) * 2 - 1  # [n, 3] in [-1, 1]
    scale = torch.exp(-u[:, 2] * math.log(zoom))  # the grid's scale: below 1 zooms in
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = u[:, :2] * 2 * shift  # normalised coordinates span 2 per frame width
    return theta


def moved(x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, C, H, W] resampled (bilinear) on the grids of theta, and where the grid fell inside x [N, 1, H, W]."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [N, H, W, 2]
    inside = (grid.abs() <= 1).all(dim=-1)[:, None].to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), inside


def equivariance_loss(model: Autoencoder, x: torch.Tensor, z: torch.Tensor, noisy: torch.Tensor, shift: float,
                      zoom: float, l1_weight: float, latent_term: bool,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For a random move T per frame of x [N, 3, H, W]: how far the decoded moved latent (noisy [N, C, h, w]) is
    from the moved image, and (with `latent_term`; else 0) how far the moved image's latent is from the moved
    latent z, over z's mean square (a latent cannot shrink its way out); both inside the frame."""
    theta = random_moves(len(x), shift, zoom, generator, x.device)
    half = len(x) // 2  # half the frames only shift, by whole pixels
    width, height = x.shape[-1], x.shape[-2]
    theta[:half, 0, 0] = theta[:half, 1, 1] = 1
    theta[:half, 0, 2] = torch.round(theta[:half, 0, 2] * width / 2) * 2 / width
    theta[:half, 1, 2] = torch.round(theta[:half, 1, 2] * height / 2) * 2 / height
    target, inside = moved(x, theta)
    y = model.decoder(moved(noisy, theta)[0])[:, :3].float()
    decoded = (((y - target) ** 2 + l1_weight * (y - target).abs()) * inside).sum() / (inside.sum().clamp(min=1) * 3)
    if not latent_term:
        return decoded, torch.zeros((), device=x.device)
    z_moved, z_inside = moved(z, theta)
    gap = (model.encoder(target) - z_moved).float().pow(2) * z_inside
    latent = gap.sum() / (z_inside.sum().clamp(min=1) * z.shape[1]) / z.float().pow(2).mean()
    return decoded, latent


def cosine_lr(step: int, steps: int, lr: float, warmup: int, final_fraction: float = 0.1) -> float:
    """Linear warmup, then cosine decay from lr to final_fraction * lr at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def split_segments(n_segments: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) segment indices: the last `val_fraction` of the segments are held out (at least one)."""
    if n_segments < 2:
        log.warning("only %d segment: evaluating on the training segment", n_segments)
        return np.arange(n_segments), np.arange(n_segments)
    n_val = min(n_segments - 1, max(1, round(n_segments * val_fraction)))
    return np.arange(n_segments - n_val), np.arange(n_segments - n_val, n_segments)


def _frame_indices(segments: np.ndarray, length: np.ndarray, segment_len: int) -> np.ndarray:
    """Flat indices s * L + t of the valid frames of the given segments."""
    t = np.arange(segment_len)
    valid = t[None, :] < length[segments, None]  # [S', L]
    return (segments[:, None] * segment_len + t[None, :])[valid]


def sample_strip(*rows: np.ndarray, scale: int = 2) -> np.ndarray:
    """Rows of uint8 frames [N, H, W, 3] (e.g. originals over reconstructions), top to bottom, as one RGB image."""
    strip = np.concatenate([np.concatenate(list(row), 1) for row in rows], 0)
    return cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


@torch.no_grad()
def evaluate_autoencoder(
    model: Autoencoder, frames: np.ndarray, batch: int = 256
) -> tuple[float, np.ndarray, np.ndarray]:
    """uint8 frames [N, H, W, 3] -> (PSNR in dB of the rounded reconstructions, latent mean [C], latent std [C])."""
    squared_error, latents = 0.0, []
    for b in range(0, len(frames), batch):
        x = frames[b:b + batch]
        z = model.encode(x)  # [B, C, h, w]
        y = model.decode(z)  # [B, H, W, 3] uint8
        squared_error += float(((y.astype(np.float64) - x) ** 2).sum())
        latents.append(z.float().cpu())
    mse = squared_error / frames.size
    z = torch.cat(latents).transpose(0, 1).flatten(1)  # [C, N*h*w]
    psnr = 10 * math.log10(255**2 / max(mse, 1e-10))
    return psnr, z.mean(1).numpy(), z.std(1).numpy()


def train_autoencoder(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    latent_channels: int = 16,
    stages: int = 3,
    ch_0: int = 32,
    ch_max: int = 128,
    blocks_per_stage: int = 1,
    encoder: str | os.PathLike | None = None,
    init_decoder: bool = False,
    adversarial_weight: float = 0.0,
    adversarial_start: int = 0,
    equivariance_weight: float = 0.0,
    equivariance_shift: float = 0.125,
    equivariance_zoom: float = 1.25,
    latent_equivariance_weight: float = 0.0,
    steps: int = 20_000,
    batch_size: int = 64,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    warmup: int = 500,
    l1_weight: float = 0.1,
    latent_weight: float = 0.01,
    latent_noise: float = 0.05,
    val_fraction: float = 0.05,
    ckpt_every: int = 1000,
    log_every: int = 50,
    eval_frames: int = 2048,
    seed: int = 0,
    resume: bool = True,
    stop_at: int | None = None,
    time_limit: float | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an autoencoder on the frames of a collection (see `collect`); returns the report.

    Resumes from `out_dir/train_state.pt` when `resume` and it exists (the architecture must match; `steps`
    may grow). With `encoder` (an autoencoder folder) only a new decoder of the given `ch_0`, `ch_max` and
    `blocks_per_stage` is trained, for that autoencoder's frozen encoder, whose latent shape it keeps: a cheaper
    decoder for latents a world model was already trained on; `init_decoder` starts it from that autoencoder's
    own decoder, which must have the asked architecture (a fine-tune). `adversarial_weight` > 0 adds the
    adversarial term from step `adversarial_start` on, with a patch discriminator trained from step 0.
    `equivariance_weight` > 0 adds the equivariance term: moves of up to `equivariance_shift` of the frame each
    way and zooms up to `equivariance_zoom`; `latent_equivariance_weight` > 0 its latent part.
    `stop_at` (a step) and `time_limit` (seconds) end this call early, with the state saved, so a long run can
    be split over sessions; the LR schedule still runs over `steps`. bf16 autocast on CUDA.
    Writes `autoencoder/`, `report.json` and `ae_samples.png` at the end of every call.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = load_chunks(data_dir, ["frames", "length"])
    n_segments, segment_len = data["frames"].shape[:2]
    frames = data["frames"].reshape(-1, *data["frames"].shape[2:])  # [S*L, H, W, 3]
    train_segments, val_segments = split_segments(n_segments, val_fraction)
    train_idx = _frame_indices(train_segments, data["length"], segment_len)
    val_idx = _frame_indices(val_segments, data["length"], segment_len)
    val_idx = val_idx[np.linspace(0, len(val_idx) - 1, min(eval_frames, len(val_idx))).astype(np.int64)]

    if init_decoder and encoder is None:
        raise ValueError("init_decoder starts from the decoder of the `encoder` folder; no encoder was given")
    if adversarial_weight < 0 or adversarial_start < 0:
        raise ValueError(f"adversarial_weight and adversarial_start must be >= 0, got {adversarial_weight} "
                         f"and {adversarial_start}")
    given = Autoencoder.from_pretrained(encoder, device=device) if encoder is not None else None
    frozen = given.encoder if given is not None else None
    if frozen is not None:  # the decoder takes the frozen encoder's latents and makes its input size
        latent_channels, stages = frozen.config.latent_channels, len(frozen.config.encoder_blocks_per_stage)
    config = autoencoder_config(latent_channels, stages, ch_0, ch_max, blocks_per_stage, tuple(frames.shape[1:3]))
    if frozen is not None:  # the conf describes the pair: the encoder's blocks, the new decoder's
        config.encoder_blocks_per_stage = list(frozen.config.encoder_blocks_per_stage)
    hparams = {"encoder": None if encoder is None else str(encoder), "steps": steps, "batch_size": batch_size,
               "lr": lr, "weight_decay": weight_decay, "warmup": warmup, "l1_weight": l1_weight,
               "latent_weight": latent_weight, "latent_noise": latent_noise, "init_decoder": init_decoder,
               "adversarial_weight": adversarial_weight, "adversarial_start": adversarial_start,
               "equivariance_weight": equivariance_weight, "equivariance_shift": equivariance_shift,
               "equivariance_zoom": equivariance_zoom,
               "latent_equivariance_weight": latent_equivariance_weight, "val_fraction": val_fraction, "seed": seed,
               "data_dir": str(data_dir)}
    torch.manual_seed(seed)
    model = Autoencoder(config if frozen is None else frozen.config, config).to(device)
    if frozen is not None:
        model.encoder.load_state_dict(frozen.state_dict())
        model.encoder.requires_grad_(False)
    if init_decoder:
        if given.decoder.config.to_dict() != config.to_dict():
            raise ValueError(f"init_decoder: {encoder}'s decoder is {given.decoder.config.to_dict()}, not the asked "
                             f"{config.to_dict()}; give its ch_0, ch_max and blocks_per_stage")
        model.decoder.load_state_dict(given.decoder.state_dict())
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=weight_decay)
    critic = Critic(lr, device) if adversarial_weight > 0 else None
    last_layer = model.decoder.conv_out.proj.parametrizations.weight.original1  # the balance is taken here
    rng = np.random.default_rng(seed)
    noise_gen = torch.Generator(device).manual_seed(seed)
    step, seconds, history = 0, 0.0, []

    state_path = out_dir / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["config"] != config.to_dict():
            raise ValueError(f"{state_path} holds another architecture: {state['config']}; "
                             f"use another out_dir or resume=False")
        if (critic is not None) != ("disc" in state):
            raise ValueError(f"{state_path} was trained {'with' if 'disc' in state else 'without'} the adversarial "
                             f"term; resume it the same way, or use another out_dir")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        noise_gen.set_state(state["noise_gen"].cpu())
        step, seconds, history = state["step"], state["seconds"], state["history"]
        if critic is not None:
            critic.load_state_dict(state)
        log.info("resuming %s from step %d", state_path, step)

    def save_state() -> None:
        state = {"step": step, "config": config.to_dict(), "hparams": hparams, "model": model.state_dict(),
                 "opt": opt.state_dict(), "rng": rng.bit_generator.state, "noise_gen": noise_gen.get_state(),
                 "seconds": seconds, "history": history}
        if critic is not None:
            state.update(critic.state_dict())
        torch.save(state, state_path.with_suffix(".tmp"))
        os.replace(state_path.with_suffix(".tmp"), state_path)

    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(total=steps, initial=step, unit="step", desc="autoencoder", disable=not progress)
    interval: list[dict[str, float]] = []
    started = call_started = time.perf_counter()
    last = min(steps, stop_at or steps)
    while step < last:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        batch = frames[np.sort(rng.choice(train_idx, batch_size))]  # [B, H, W, 3] uint8
        x = to_unit(torch.from_numpy(batch).to(device))  # [B, 3, H, W]
        with autocast:
            loss, parts, decoded = ae_loss(model, x, latent_noise, l1_weight, latent_weight, noise_gen,
                                           equivariance_weight, equivariance_shift, equivariance_zoom,
                                           latent_equivariance_weight)
            if critic is not None and step >= adversarial_start:
                adversarial = generator_loss(critic.net(decoded))
                weight = adversarial_weight * balanced_weight(loss, adversarial, last_layer)
                loss = loss + weight * adversarial
                parts.update(loss=loss.item(), adversarial=adversarial.item(), adversarial_scale=weight.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        if critic is not None:
            parts["discriminator"] = critic.update(x, decoded, autocast)
        step += 1
        interval.append(parts)
        bar.update(1)
        if step % log_every == 0 or step == steps:
            mean = {k: float(np.mean([p[k] for p in interval if k in p])) for k in interval[-1]}
            history.append({"step": step, **mean})
            interval = []
            bar.set_postfix(loss=f"{mean['loss']:.4f}", mse=f"{mean['mse']:.4f}")
        out_of_time = time_limit is not None and time.perf_counter() - call_started > time_limit
        if step % ckpt_every == 0 or step == last or out_of_time:
            seconds += time.perf_counter() - started
            started = time.perf_counter()
            save_state()
        if out_of_time:
            log.info("time limit reached at step %d of %d", step, steps)
            break
    bar.close()

    model.eval()
    model.save_pretrained(out_dir / AE_FOLDER)
    psnr, _, _ = evaluate_autoencoder(model, frames[val_idx])
    stats_idx = np.sort(rng.choice(train_idx, min(eval_frames, len(train_idx)), replace=False))
    _, latent_mean, latent_std = evaluate_autoencoder(model, frames[stats_idx])
    shown = frames[val_idx[np.linspace(0, len(val_idx) - 1, 8).astype(np.int64)]]
    strip = sample_strip(shown, model.decode(model.encode(shown)))
    cv2.imwrite(str(out_dir / "ae_samples.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))

    report = {
        "step": step, "steps": steps, "complete": step >= steps,
        "train_loss": history[-1] if history else None, "val_psnr": psnr,
        "latent_mean": latent_mean.tolist(), "latent_std": latent_std.tolist(),
        "latent_rms": float(np.sqrt(np.mean(latent_mean**2 + latent_std**2))),
        "n_train_frames": int(len(train_idx)), "n_val_frames": int(len(val_idx)), "seconds": round(seconds, 1),
        "device": str(device), "config": config.to_dict(), "hparams": hparams, "history": history,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    log.info("autoencoder: step %d, held-out PSNR %.2f dB, saved to %s", step, psnr, out_dir / AE_FOLDER)
    return report
