"""Self-forcing with DMD: the student's rollout is WorldEngine's cached inference, the scores see clean context,
the DMD gradient vanishes when critic and teacher agree, and the few-step student trains, resumes and exports."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from test_train_world_model import CAPTIONS, CFG, KEYS, toy_data

from waypoint_gym.engine import CtrlInput, WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.engine.keycodes import keycode
from waypoint_gym.engine.kv_cache import CleanContextMask, FrameCausalMask, KVCache
from waypoint_gym.engine.model import WaypointModel
from waypoint_gym.engine.prompt import CaptionEncoder
from waypoint_gym.engine.world_engine import random_model
from waypoint_gym.training.data import ClipSampler
from waypoint_gym.training.export import export_checkpoint, load_teacher
from waypoint_gym.training.self_forcing import (
    SelfForcingTraining,
    critic_loss,
    dmd_loss,
    predict_x0,
    rollout,
    student_config,
    train_self_forcing,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEACHER = WaypointConfig(**{**CFG, "scheduler_sigmas": [1.0, 0.75, 0.5, 0.25, 0.0]})
STUDENT_SIGMAS = [1.0, 0.5, 0.0]
B, N = 2, 9  # a seed frame and 8 generated ones: both rings wrap


def clip_inputs(seed=0):
    """Controls a CtrlInput can express [B, N, nb + 3] (with those CtrlInputs), prompt rows and noise."""
    rng = np.random.default_rng(seed)
    ctrls = [[CtrlInput(button={keycode(k) for k in KEYS if rng.random() < 0.5},
                        mouse=tuple(rng.normal(0, 0.5, 2).tolist())) for _ in range(B)] for _ in range(N)]
    ctrls[0] = [CtrlInput() for _ in range(B)]
    vec = torch.zeros(B, N, TEACHER.n_buttons + 3)
    for f, row in enumerate(ctrls):
        for b, c in enumerate(row):
            vec[b, f, :2] = torch.tensor(c.mouse)
            vec[b, f, [2 + k for k in c.button]] = 1.0
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randn(B, 3, TEACHER.prompt_embedding_dim, generator=g)
    noise = torch.randn(B, N, *TEACHER.latent_shape, generator=g)
    return ctrls, vec, prompt, noise


def student_of(teacher):

    student = WaypointModel(student_config(teacher.cfg, STUDENT_SIGMAS))
    student.load_state_dict(teacher.state_dict())
    return student


def test_rollout_is_world_engine_cached_inference(tmp_path):
    """Same seed, controls, prompt and noise: the training rollout gives the frames WorldEngine generates from the
    exported student, which runs the student's 2-step schedule by default; each frame has one pass with grad."""
    student = student_of(random_model(TEACHER, seed=1))
    ae_dir = random_checkpoint(tmp_path / "ae", TEACHER, image_size=(16, 16)) / "autoencoder"
    out = export_checkpoint(tmp_path / "student", student, ae_dir, dtype=torch.float32)
    ctrls, vec, prompt, noise = clip_inputs()
    grad_passes = []
    hook = student.register_forward_hook(lambda *_: grad_passes.append(torch.is_grad_enabled()))
    frames = rollout(student, noise[:, 0] * 0.5, vec, prompt, noise)  # the seed frame: any latent
    hook.remove()
    assert sum(grad_passes) == N - 1 and len(grad_passes) == N + (N - 1) * 2  # cache passes + 2 steps a frame
    assert frames.shape == (B, N, *TEACHER.latent_shape) and frames.requires_grad

    eng = WorldEngine(out, batch_size=B, seed=0)
    assert eng.sigmas == STUDENT_SIGMAS and eng.n_denoise_steps == 2
    eng.set_prompt_embedding(prompt)
    eng.append_latent(noise[:, 0] * 0.5, ctrls[0])
    for f in range(1, N):
        z = eng.gen_latent(ctrls[f], noise=noise[:, f])
        torch.testing.assert_close(frames[:, f].detach(), z, atol=2e-5, rtol=0, msg=f"frame {f}")


def test_clean_context_scores_equal_cached_inference():
    """One pass with CleanContextMask predicts every noisy frame as the cache would, holding the clean frames."""
    model = random_model(TEACHER, seed=2)
    _, vec, prompt, noise = clip_inputs(1)
    clean = torch.randn(B, N, *TEACHER.latent_shape, generator=torch.Generator().manual_seed(3))
    sigma = torch.rand(B, N - 1, generator=torch.Generator().manual_seed(4))
    noisy = (1 - sigma[..., None, None, None]) * clean[:, 1:] + sigma[..., None, None, None] * noise[:, 1:]
    with torch.no_grad():
        x0 = predict_x0(model, clean, noisy, sigma, vec, prompt, CleanContextMask(TEACHER, N))
        cache = KVCache(TEACHER, B)
        for f in range(N):
            if f > 0:
                plan = cache.plan(None, commit=False)
                v = model(noisy[:, f - 1], sigma[:, f - 1], cache.frame, vec[:, f], prompt, plan, cache)
                want = noisy[:, f - 1] - sigma[:, f - 1, None, None, None] * v
                torch.testing.assert_close(x0[:, f - 1], want, atol=2e-5, rtol=0, msg=f"frame {f}")
            plan = cache.plan(None, commit=True)
            model(clean[:, f], torch.zeros(B), cache.frame, vec[:, f], prompt, plan, cache)
            cache.advance(plan)


@pytest.mark.parametrize("scoring", ["joint", "context"])
def test_dmd_gradient_vanishes_when_critic_is_teacher_without_guidance(scoring):
    teacher = random_model(TEACHER, seed=3)
    student = student_of(teacher).requires_grad_(True)
    _, vec, prompt, noise = clip_inputs(2)
    mask = (CleanContextMask if scoring == "context" else FrameCausalMask)(TEACHER, N)
    frames = rollout(student, noise[:, 0], vec, prompt, noise, exit_steps=[0, 1, 0, 1, 1, 0, 1, 0, 1])
    g = torch.Generator().manual_seed(0)
    loss, size = dmd_loss(frames, teacher, copy.deepcopy(teacher), vec, prompt, mask,
                          SelfForcingTraining(guidance=1.0), g)
    loss.backward()
    assert loss.item() == 0 and size == 0
    assert all(p.grad is None or not p.grad.any() for p in student.parameters())

    frames = rollout(student, noise[:, 0], vec, prompt, noise)
    loss, size = dmd_loss(frames, teacher, copy.deepcopy(teacher), vec, prompt, mask, SelfForcingTraining(), g)
    loss.backward()  # guidance moves the real score away from the critic's: a gradient through the exit steps
    assert loss.item() > 0 and size > 0
    assert sum(p.grad.abs().sum().item() for p in student.parameters() if p.grad is not None) > 0
    assert critic_loss(teacher, frames, vec, prompt, mask, SelfForcingTraining(), g).item() > 0


def test_training_learns_critic_resumes_and_exports(tmp_path):
    data = toy_data(n_segments=32, length=N)
    torch.manual_seed(0)
    teacher, encoder = random_model(TEACHER, seed=4), CaptionEncoder.for_captions(CAPTIONS, 32)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    tc = SelfForcingTraining(steps=10, batch_size=4, clip_frames=6, student_sigmas=STUDENT_SIGMAS, lr=1e-4,
                             critic_lr=3e-3, critic_steps=2, warmup=1, log_every=2, ckpt_every=5)
    train_self_forcing(data, KEYS, teacher, encoder, tmp_path / "run", dataclasses.replace(tc, steps=5))
    student = train_self_forcing(data, KEYS, teacher, encoder, tmp_path / "run", tc)  # resumes at step 5
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if line]
    assert [r["step"] for r in rows] == [2, 4, 5, 6, 8, 10]
    assert all(np.isfinite(r["dmd_loss"]) and np.isfinite(r["critic_loss"]) for r in rows)
    # the critic has learnt the student's samples: its diffusion loss on a fresh batch of them is below the teacher's
    critic = copy.deepcopy(teacher)
    critic.load_state_dict(torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)["critic"])
    x0, ctrl, prompts = ClipSampler(data, KEYS, TEACHER, 6, seed=99, device="cpu").sample(32)
    emb = encoder(prompts)[0].detach()
    with torch.no_grad():
        frames = rollout(student, x0[:, 0], ctrl, emb, torch.randn(x0.shape), grad=False)
        mask = FrameCausalMask(TEACHER, 6)
        losses = [critic_loss(m, frames, ctrl, emb, mask, tc, torch.Generator().manual_seed(0)).item()
                  for m in (teacher, critic)]
    assert losses[1] < 0.99 * losses[0], losses  # a small margin: 20 updates on a random teacher's noise
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the teacher stays frozen
    assert student.cfg.scheduler_sigmas == STUDENT_SIGMAS

    ae_dir = random_checkpoint(tmp_path / "ae", TEACHER, image_size=(16, 16)) / "autoencoder"
    out = export_checkpoint(tmp_path / "student", student, ae_dir, encoder)
    eng = WorldEngine(out, batch_size=2, seed=0)
    assert eng.sigmas == STUDENT_SIGMAS
    eng.set_prompt(CAPTIONS)
    eng.append_frame(np.zeros((2, 16, 16, 3), np.uint8))
    assert eng.gen_frame().shape == (2, 16, 16, 3)

    teacher_dir = export_checkpoint(tmp_path / "teacher", teacher, ae_dir, encoder, dtype=torch.float32)
    loaded, loaded_encoder = load_teacher(teacher_dir)
    assert loaded.cfg.scheduler_sigmas == TEACHER.scheduler_sigmas
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    assert loaded_encoder.vocab == encoder.vocab


def test_bad_settings_raise_named_errors(tmp_path):
    with pytest.raises(ValueError, match="student_sigmas"):
        SelfForcingTraining(student_sigmas=[1.0, 0.5]).check()
    with pytest.raises(ValueError, match="clip_frames"):
        SelfForcingTraining(clip_frames=1).check()
    with pytest.raises(ValueError, match="guidance"):
        SelfForcingTraining(guidance=0.5).check()
    with pytest.raises(ValueError, match="scoring"):
        SelfForcingTraining(scoring="both").check()
    with pytest.raises(ValueError, match="sigma_min"):
        SelfForcingTraining(sigma_min=0.0).check()
    model = random_model(TEACHER, seed=5)
    _, vec, prompt, noise = clip_inputs()
    with pytest.raises(ValueError, match="exit_steps"):
        rollout(model, noise[:, 0], vec, prompt, noise, exit_steps=[4] * N)
    with pytest.raises(FileNotFoundError, match="teacher not found"):
        load_teacher(tmp_path / "nothing.pt")
    (tmp_path / "final.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_teacher(tmp_path / "final.pt")
