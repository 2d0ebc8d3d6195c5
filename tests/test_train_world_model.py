"""World-model training: a tiny model learns a toy dynamics, exports, and loads through WorldEngine."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from waypoint_gym.engine import Autoencoder, WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.engine.controls import control_vectors, resolve_keys
from waypoint_gym.engine.kv_cache import CleanContextMask, FrameCausalMask
from waypoint_gym.engine.model import WaypointModel
from waypoint_gym.engine.prompt import CaptionEncoder
from waypoint_gym.training.adversarial import PatchDiscriminator, balanced_weight, generator_loss
from waypoint_gym.training.data import ClipSampler
from waypoint_gym.training.export import export_checkpoint
from waypoint_gym.training.self_forcing import rollout
from waypoint_gym.training.world_model import (
    ClipPass,
    WorldModelTraining,
    adversarial_pairs,
    clip_errors,
    control_sensitivity,
    dream_triples,
    make_optimizers,
    one_step_samples,
    prompt_start_error,
    sample_sigmas,
    scale_ctrl_init,
    teacher_forced_error,
    train_world_model,
)

CAPTIONS = ["a red room", "a blue cave"]
KEYS = ["A", "D"]


def toy_data(n_segments=64, length=8, seed=0):
    """Frame t+1 is frame t rolled one column right (D) or left (A); the prompt sets the sign of frame 0."""
    rng = np.random.default_rng(seed)
    C, h, w = 4, 4, 4
    keys = (rng.random((n_segments, length, 2)) < 0.5).astype(np.uint8)
    keys[:, 0] = 0
    prompts = np.array([CAPTIONS[i % 2] for i in range(n_segments)])
    lat = np.zeros((n_segments, length, C, h, w), np.float32)
    sign = np.where(prompts == CAPTIONS[0], 1, -1)[:, None, None, None]
    lat[:, 0] = np.abs(rng.normal(size=(n_segments, C, h, w))) * sign
    for t in range(1, length):
        shift = keys[:, t, 1].astype(int) - keys[:, t, 0].astype(int)
        lat[:, t] = np.stack([np.roll(lat[i, t - 1], shift[i], axis=-1) for i in range(n_segments)])
    return dict(latents=lat, keys=keys, mouse=np.zeros((n_segments, length, 2), np.float32), prompt=prompts,
                length=np.full(n_segments, length))


CFG = dict(
    d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=2, width=2, patch=(2, 2),
    tokens_per_frame=4, n_frames=32, local_window=4, global_window=4, global_pinned_dilation=2,
    global_attn_period=2, n_buttons=256, prompt_embedding_dim=32, prompt_conditioning_period=1,
    ctrl_conditioning_period=1, scheduler_sigmas=[1.0, 0.5, 0.0],
)


def test_control_vectors_place_keys_at_their_keycodes():
    v = control_vectors(np.array([[1, 0]]), np.array([[0.5, -0.25]]), resolve_keys(["W", "SPACE"], 256)[1], 256)
    assert v.shape == (1, 259) and v[0, 2 + 87] == 1 and v[0, 2 + 32] == 0 and v[0, :2].tolist() == [0.5, -0.25]


def test_ctrl_init_scale_scales_only_the_control_half_of_the_fusion():
    cfg = WaypointConfig(**CFG)
    torch.manual_seed(0)
    plain = WaypointModel(cfg)
    torch.manual_seed(0)
    scaled = WaypointModel(cfg)
    scale_ctrl_init(scaled, 16.0)
    D = cfg.d_model
    for a, b in zip(plain.transformer.blocks, scaled.transformer.blocks):
        wa, wb = a.ctrl_mlpfusion.mlp.fc1.weight, b.ctrl_mlpfusion.mlp.fc1.weight
        assert torch.equal(wb[:, :D], wa[:, :D]) and torch.allclose(wb[:, D:], 16 * wa[:, D:])
    assert torch.equal(scaled.ctrl_emb.mlp.fc1.weight, plain.ctrl_emb.mlp.fc1.weight)


def test_sigma_sampling_keeps_clean_context_out_of_the_loss():
    tc = WorldModelTraining(clean_context_prob=1.0, context_noise=0.05)
    sigma, carries = sample_sigmas(256, 10, [1.0, 0.5, 0.0], tc, torch.Generator().manual_seed(0), "cpu")
    assert (sigma[~carries] <= 0.05).all() and carries[:, -1].all() and (sigma >= 0).all() and (sigma <= 1).all()


def untrained_x0_world(n_clips: int, F_: int):
    """An untrained x0-head model and caption encoder, with toy clips as tensors (latents, control vectors)."""
    cfg = WaypointConfig(**CFG, prediction="x0")
    torch.manual_seed(0)
    model, encoder = WaypointModel(cfg).eval(), CaptionEncoder.for_captions(CAPTIONS, 32)
    data = toy_data(n_clips, F_)
    ctrl = control_vectors(data["keys"], data["mouse"], resolve_keys(KEYS, 256)[1], 256)
    return cfg, model, encoder, data, torch.as_tensor(data["latents"]), torch.as_tensor(ctrl)


def test_teacher_forcing_scores_every_frame_from_the_clean_frames_before_it():
    F_ = 6
    cfg, model, encoder, data, x0, ctrl = untrained_x0_world(8, F_)
    tc = WorldModelTraining(teacher_forcing=True, loss="x0", prompt_dropout=0.0, ctrl_dropout=0.0)
    seen, forward = {}, model.forward

    def spy(x, sigma, t, c, emb, **kw):  # keeps the one pass's inputs
        seen.update(x=x, sigma=sigma, t=t, c=c, emb=emb)
        return forward(x, sigma, t, c, emb, **kw)

    model.forward = spy
    with torch.no_grad():
        err, carries = clip_errors(model, encoder, x0, ctrl, list(data["prompt"]), CleanContextMask(cfg, F_), tc,
                                   torch.Generator().manual_seed(0))[:2]
    assert err.shape == carries.shape == (8, 2 * F_ - 1)
    assert not carries[:, :F_].any() and carries[:, F_:].all()
    assert (seen["sigma"][:, :F_] <= tc.context_noise).all() and seen["sigma"][:, F_:].max() > 0.5
    for f in range(1, F_):  # frame f alone after its clean context, through the frame-causal mask of f + 1 frames
        pick = list(range(f)) + [F_ + f - 1]
        with torch.no_grad():
            v = forward(seen["x"][:, pick], seen["sigma"][:, pick], seen["t"][:, pick], seen["c"][:, pick],
                        seen["emb"], cache=FrameCausalMask(cfg, f + 1))[:, -1]
        s = seen["sigma"][:, F_ + f - 1, None, None, None]
        want = (seen["x"][:, F_ + f - 1] - s * v - x0[:, f]).pow(2).mean(dim=(1, 2, 3))
        torch.testing.assert_close(err[:, F_ + f - 1], want, atol=1e-5, rtol=1e-4)


def test_x0_l1_scores_the_absolute_error_of_the_implied_clean_frame():
    F_ = 4
    cfg, model, encoder, data, x0, ctrl = untrained_x0_world(6, F_)
    tc = WorldModelTraining(teacher_forcing=True, loss="x0_l1", prompt_dropout=0.0, ctrl_dropout=0.0)
    seen, forward = {}, model.forward

    def spy(x, sigma, t, c, emb, **kw):
        seen.update(x=x, sigma=sigma, v=forward(x, sigma, t, c, emb, **kw))
        return seen["v"]

    model.forward = spy
    with torch.no_grad():
        err = clip_errors(model, encoder, x0, ctrl, list(data["prompt"]), CleanContextMask(cfg, F_), tc,
                          torch.Generator().manual_seed(0)).err
    s = seen["sigma"][:, F_:, None, None, None]
    gap = seen["x"][:, F_:] - s * seen["v"][:, F_:] - x0[:, 1:]
    torch.testing.assert_close(err[:, F_:], gap.abs().mean(dim=(2, 3, 4)))
    assert not torch.allclose(err[:, F_:], gap.pow(2).mean(dim=(2, 3, 4)))
    with pytest.raises(ValueError, match="loss must be one of velocity, x0, x0_l1, got 'l1'"):
        train_world_model(data, KEYS, CAPTIONS, "unused", cfg, WorldModelTraining(loss="l1"))


def test_still_clips_hold_a_recorded_frame_on_the_ground_with_nothing_pressed(tmp_path):
    data = toy_data(n_segments=6, length=12)
    data["latents"] = np.random.default_rng(0).normal(size=data["latents"].shape).astype(np.float32)  # all distinct
    data["keys"] = np.concatenate([data["keys"], np.zeros((6, 12, 1), np.uint8)], -1)  # keys A, D, SPACE
    data["keys"][:5, 2, 2] = 1  # five segments jump at frame 2: frames 2-10 are off the ground, 0, 1 and 11 on it
    data["keys"][5, :, 2] = 1  # the last one jumps all the time
    keys, cfg = [*KEYS, "SPACE"], WaypointConfig(**CFG)
    x0, ctrl, prompts = ClipSampler(data, keys, cfg, 6, seed=0, device="cpu", still=0.25).sample(16)
    assert x0.shape == (16, 6, 4, 4, 4) and ctrl.shape == (16, 6, 259) and len(prompts) == 16
    assert not ctrl[:4].any() and torch.equal(x0[:4], x0[:4, :1].expand(-1, 6, -1, -1, -1))  # 4 of 16 stand still
    latents = torch.as_tensor(data["latents"])
    for j in range(4):
        (i, f), = [(i, f) for i in range(6) for f in range(12) if torch.equal(x0[j, 0], latents[i, f])]
        assert i < 5 and f in (0, 1, 11) and prompts[j] == data["prompt"][i], (i, f)
    for j in range(4, 16):  # the others are recorded clips as before
        (i, f), = [(i, f) for i in range(6) for f in range(7) if torch.equal(x0[j, 0], latents[i, f])]
        assert torch.equal(x0[j], latents[i, f: f + 6]) and prompts[j] == data["prompt"][i]
    x0 = ClipSampler(data, keys, cfg, 6, seed=0, device="cpu", still=1.0).sample(3)[0]
    assert torch.equal(x0, x0[:, :1].expand(-1, 6, -1, -1, -1))
    with pytest.raises(ValueError, match="still must be a share in"):
        ClipSampler(data, keys, cfg, 6, seed=0, device="cpu", still=1.5)
    with pytest.raises(ValueError, match="still_clips must be a share"):
        train_world_model(data, keys, CAPTIONS, tmp_path, cfg, WorldModelTraining(still_clips=-0.1))
    data["keys"][:, :, 2] = 1
    with pytest.raises(ValueError, match="no recorded frame to stand still on"):
        ClipSampler(data, keys, cfg, 6, seed=0, device="cpu", still=0.5)


def test_rollout_context_scores_the_recorded_frames_from_the_models_own_dream():
    """With rollout_context the clean half of the pass is the model's open-loop rollout from frame 0 (as
    `rollout`, which matches WorldEngine.gen_latent, makes it); the frames scored stay the recorded ones."""
    F_ = 5
    cfg, model, encoder, data, x0, ctrl = untrained_x0_world(6, F_)
    prompts = list(data["prompt"])
    tc = WorldModelTraining(teacher_forcing=True, rollout_context=0.5, context_noise=0.0, loss="x0",
                            prompt_dropout=0.0, ctrl_dropout=0.0)
    seen, forward = {}, model.forward

    def spy(x, sigma, *args, **kw):  # keeps the one pass's inputs and output
        seen.update(x=x, sigma=sigma, v=forward(x, sigma, *args, **kw))
        return seen["v"]

    model.forward = spy
    with torch.no_grad():
        err = clip_errors(model, encoder, x0, ctrl, prompts, CleanContextMask(cfg, F_), tc,
                          torch.Generator().manual_seed(0)).err
        noise = torch.randn((3, *x0.shape[1:]), generator=torch.Generator().manual_seed(0))
        model.forward = forward
        dreamed = rollout(model, x0[:3, 0], ctrl[:3], encoder(prompts[:3])[0], noise, grad=False)
    torch.testing.assert_close(seen["x"][:3, :F_], dreamed)  # three clips dream their context...
    torch.testing.assert_close(seen["x"][3:, :F_], x0[3:])  # ...the others keep the recorded frames
    assert (dreamed[:, 1:] - x0[:3, 1:]).abs().mean() > 0.1  # an untrained model's dream is not the recording
    s = seen["sigma"][:, F_:, None, None, None]
    want = (seen["x"][:, F_:] - s * seen["v"][:, F_:] - x0[:, 1:]).pow(2).mean(dim=(2, 3, 4))
    torch.testing.assert_close(err[:, F_:], want)  # every clip is scored against its recorded frames
    with pytest.raises(ValueError, match="rollout_context must be in \\[0, 1\\] and needs teacher_forcing"):
        train_world_model(data, KEYS, CAPTIONS, "unused", cfg, WorldModelTraining(rollout_context=0.5))


def test_predicted_context_holds_each_frame_as_the_world_draws_it_from_the_recorded_frames_before_it():
    """With predicted_context the clean half of the pass holds, after the recorded first frame, each frame as the
    world's sampler draws it from the recorded frames before it; the frames scored stay the recorded ones."""
    F_ = 5
    cfg, model, encoder, data, x0, ctrl = untrained_x0_world(6, F_)
    prompts = list(data["prompt"])
    emb = encoder(prompts)[0].detach()
    with torch.no_grad():
        predicted = one_step_samples(model, x0, ctrl, emb, CleanContextMask(cfg, F_), torch.Generator().manual_seed(4))
        noise = torch.randn((6, F_ - 1, *x0.shape[2:]), generator=torch.Generator().manual_seed(4))
        # frame 1 is the engine's first open-loop frame from the recorded frame 0 under the same noise...
        first = rollout(model, x0[:, 0], ctrl[:, :2], emb, torch.cat([noise[:, :1], noise[:, :1]], 1), grad=False)
        torch.testing.assert_close(predicted[:, 0], first[:, 1])
        for f in range(1, F_):  # ...and every frame f the sampler run on the recorded frames 0..f-1 alone
            x = noise[:, f - 1]
            for s, s_next in zip(cfg.scheduler_sigmas[:-1], cfg.scheduler_sigmas[1:]):
                sigma = torch.cat([torch.zeros(6, f), torch.full((6, 1), s)], 1)
                v = model(torch.cat([x0[:, :f], x[:, None]], 1), sigma, torch.arange(f + 1).expand(6, -1),
                          ctrl[:, :f + 1], emb, cache=FrameCausalMask(cfg, f + 1))[:, -1]
                x = x + (s_next - s) * v
            torch.testing.assert_close(predicted[:, f - 1], x)
    tc = WorldModelTraining(teacher_forcing=True, rollout_context=1 / 3, predicted_context=1 / 3, context_noise=0.0,
                            loss="x0", prompt_dropout=0.0, ctrl_dropout=0.0)
    seen, forward = {}, model.forward

    def spy(x, sigma, *args, **kw):  # keeps the one pass's inputs and output
        seen.update(x=x, sigma=sigma, v=forward(x, sigma, *args, **kw))
        return seen["v"]

    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        dreamed = rollout(model, x0[:2, 0], ctrl[:2], emb[:2], torch.randn((2, *x0.shape[1:]), generator=g),
                          grad=False)
        predicted = one_step_samples(model, x0[2:4], ctrl[2:4], emb[2:4], CleanContextMask(cfg, F_), g)
        model.forward = spy
        err = clip_errors(model, encoder, x0, ctrl, prompts, CleanContextMask(cfg, F_), tc,
                          torch.Generator().manual_seed(0)).err
        model.forward = forward
    torch.testing.assert_close(seen["x"][:2, :F_], dreamed)  # two clips dream their context from frame 0...
    torch.testing.assert_close(seen["x"][2:4, :F_], torch.cat([x0[2:4, :1], predicted], 1))  # ...two predict it...
    torch.testing.assert_close(seen["x"][4:, :F_], x0[4:])  # ...and two keep the recorded frames
    assert (predicted - x0[2:4, 1:]).abs().mean() > 0.1  # an untrained model's prediction is not the recording
    s = seen["sigma"][:, F_:, None, None, None]
    want = (seen["x"][:, F_:] - s * seen["v"][:, F_:] - x0[:, 1:]).pow(2).mean(dim=(2, 3, 4))
    torch.testing.assert_close(err[:, F_:], want)  # every clip is scored against its recorded frames
    with pytest.raises(ValueError, match="context_noise must be in \\[0, 1\\), got 1.0"):
        train_world_model(data, KEYS, CAPTIONS, "unused", cfg, WorldModelTraining(context_noise=1.0))
    for bad in (WorldModelTraining(predicted_context=0.5),
                WorldModelTraining(teacher_forcing=True, rollout_context=0.6, predicted_context=0.5)):
        with pytest.raises(ValueError, match="predicted_context must be in \\[0, 1 - rollout_context\\] and needs "
                                             "teacher_forcing"):
            train_world_model(data, KEYS, CAPTIONS, "unused", cfg, bad)


def test_training_learns_resumes_and_exports(tmp_path):
    data = toy_data()
    cfg = WaypointConfig(**CFG)
    tc = WorldModelTraining(steps=200, batch_size=16, clip_frames=6, warmup=10, lr=1e-3, ema_decay=0.95,
                            log_every=50, ckpt_every=100)
    torch.manual_seed(0)
    untrained = teacher_forced_error(WaypointModel(cfg), CaptionEncoder.for_captions(CAPTIONS, 32), data, KEYS, 6)
    tc_half = WorldModelTraining(**{**tc.__dict__, "steps": 100})
    train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, tc_half)
    model, encoder = train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, tc)  # resumes at step 100
    log = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if line]
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in log] == [50, 100, 150, 200]
    trained = teacher_forced_error(model, encoder, data, KEYS, 6)
    assert trained < 0.5 * untrained, (trained, untrained)
    # The keys alone say which way the toy world rolls, so dropping them costs (little after 200 steps: a
    # sub-token shift is learnt slowly; +20% after 1,200); its mouse is always 0, so mirroring changes nothing.
    sens = control_sensitivity(model, encoder, data, KEYS, 6)
    assert sens["recorded"] == pytest.approx(trained) and sens["mirrored_mouse"] == pytest.approx(trained)
    assert sens["no_controls"] > 1.005 * trained, sens

    ae_dir = random_checkpoint(tmp_path / "ae_src", WaypointConfig(**CFG), image_size=(16, 16)) / "autoencoder"
    out = export_checkpoint(tmp_path / "world", model, ae_dir, encoder)
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "model.safetensors", "autoencoder", "prompt_encoder"}
    eng = WorldEngine(out, batch_size=2, seed=0)
    eng.set_prompt(CAPTIONS)  # through the exported caption encoder
    eng.append_frame(np.zeros((2, 16, 16, 3), np.uint8))
    frames = eng.gen_frame()
    assert frames.shape == (2, 16, 16, 3) and frames.dtype == np.uint8
    with pytest.raises(TypeError, match="prompt must be a str"):
        eng.set_prompt(None)


def test_muon_steps_the_block_matrices_learns_and_resumes_with_its_momentum(tmp_path):
    data, cfg = toy_data(), WaypointConfig(**CFG)
    model, encoder = WaypointModel(cfg), CaptionEncoder.for_captions(CAPTIONS, 32)
    adamw, muon = make_optimizers(model, encoder, WorldModelTraining(optimizer="muon"))
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in in_muon) == (name.startswith("transformer.") and p.ndim == 2), name
    assert len(in_muon) + sum(len(g["params"]) for g in adamw.param_groups) == \
        len(list(model.parameters())) + len(list(encoder.parameters()))
    with pytest.raises(ValueError, match="optimizer must be one of adamw, muon, got 'sgd'"):
        make_optimizers(model, encoder, WorldModelTraining(optimizer="sgd"))

    tc = WorldModelTraining(steps=200, batch_size=16, clip_frames=6, warmup=10, lr=1e-3, ema_decay=0.95,
                            log_every=50, ckpt_every=100, optimizer="muon")
    torch.manual_seed(0)
    untrained = teacher_forced_error(WaypointModel(cfg), CaptionEncoder.for_captions(CAPTIONS, 32), data, KEYS, 6)
    train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, WorldModelTraining(**{**tc.__dict__, "steps": 100}))
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert len(state["muon"]) == 1 and all("momentum_buffer" in s for s in state["muon"][0]["state"].values())
    with pytest.raises(ValueError, match="was saved with another optimizer than 'adamw'"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, WorldModelTraining(**{**tc.__dict__,
                                                                                            "optimizer": "adamw"}))
    model, encoder = train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, tc)  # resumes at step 100
    assert teacher_forced_error(model, encoder, data, KEYS, 6) < 0.5 * untrained


def test_compiled_training_follows_the_eager_run_and_keeps_its_checkpoint_names(tmp_path):
    data, cfg = toy_data(), WaypointConfig(**CFG)
    losses = {}
    for compiled in (False, True):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()  # other tests' compiled graphs
        tc = WorldModelTraining(steps=20, batch_size=4, clip_frames=6, warmup=5, lr=1e-3, log_every=5,
                                ckpt_every=10, teacher_forcing=True, loss="x0", compile=compiled)
        train_world_model(data, KEYS, CAPTIONS, tmp_path / f"run{compiled}", cfg, tc)
        log = (tmp_path / f"run{compiled}" / "log.jsonl").read_text().splitlines()
        losses[compiled] = [json.loads(line)["loss"] for line in log]
        assert (torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0) == compiled
    assert losses[True] == pytest.approx(losses[False], rel=1e-3), losses
    state = torch.load(tmp_path / "runTrue" / "train_state.pt", weights_only=True)
    assert state["model"].keys() == WaypointModel(cfg).state_dict().keys()  # resumable and exportable as it is
    bad = WorldModelTraining(steps=1, clip_frames=6, teacher_forcing=True, rollout_context=0.5, compile=True)
    with pytest.raises(ValueError, match="compile covers the training pass only"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg, bad)


def test_start_frames_train_the_frame_a_prompt_alone_opens_with(tmp_path):
    # With all context clean, frame 0 of a clip (no history: only the prompt tells its sign) carries loss in
    # one clip of six; extra start frames train it in every step.
    data, cfg = toy_data(), WaypointConfig(**CFG)
    errors = {}
    for start_frames in (0, 32):
        tc = WorldModelTraining(steps=120, batch_size=8, clip_frames=6, warmup=10, lr=1e-3, ema_decay=0.9,
                                clean_context_prob=1.0, start_frames=start_frames)
        model, encoder = train_world_model(data, KEYS, CAPTIONS, tmp_path / f"run{start_frames}", cfg, tc)
        errors[start_frames] = prompt_start_error(model, encoder, data, KEYS)
    assert errors[32] < 0.85 * errors[0], errors  # 0.41 against 0.53 (the floor, the spread of |N(0, 1)|: 0.36)
    bad = WorldModelTraining(steps=1, clip_frames=6, start_frames=-1)
    with pytest.raises(ValueError, match="start_frames must be >= 0, got -1"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg, bad)


def test_fine_tuning_starts_from_a_checkpoint_folder(tmp_path, caplog):
    from waypoint_gym.training.export import load_teacher

    cfg = WaypointConfig(**CFG)
    torch.manual_seed(1)
    start = export_checkpoint(tmp_path / "start", WaypointModel(cfg), None, CaptionEncoder.for_captions(CAPTIONS, 32))
    tc = WorldModelTraining(steps=0, clip_frames=6, init=str(start))
    model, encoder = train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run", cfg, tc)
    want, want_encoder = load_teacher(start)
    for name, value in want.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert encoder.vocab == want_encoder.vocab
    tuned = WorldModelTraining(steps=3, clip_frames=6, warmup=1, init=str(start))
    _, encoder = train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run5", cfg, tuned)
    moved = [n for n, v in encoder.state_dict().items() if not torch.equal(v, want_encoder.state_dict()[n])]
    assert "tok_emb.weight" in moved, "fine-tuning trains the caption encoder along with the model"
    with caplog.at_level(logging.WARNING, logger="waypoint_gym.training.world_model"):
        train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run3", WaypointConfig(**{**CFG, "local_window": 2}),
                          tc)
    assert f"fine-tuning {start} with config fields changed: local_window 4 -> 2" in caplog.text
    with pytest.raises(ValueError, match="another architecture"):
        train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run2", WaypointConfig(**{**CFG, "d_model": 32}), tc)
    with pytest.raises(ValueError, match="trained with prediction='velocity', the config to train has "
                                         "prediction='x0': another architecture"):
        train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run6", WaypointConfig(**{**CFG, "prediction": "x0"}),
                          tc)
    with pytest.raises(ValueError, match="cannot be combined with init"):
        train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run4", cfg, WorldModelTraining(
            steps=0, clip_frames=6, init=str(start), ctrl_init_scale=16.0))
    with pytest.raises(ValueError, match=r"does not know the words \['green'\]"):
        train_world_model(toy_data(8), KEYS, CAPTIONS + ["a green room"], tmp_path / "run3", cfg, tc)


def test_a_world_given_the_last_frame_warp_starts_as_a_copy_of_its_last_frame(tmp_path):
    from waypoint_gym.engine.model import previous_frames
    from waypoint_gym.training.export import load_teacher

    x0_cfg = WaypointConfig(**{**CFG, "prediction": "x0"})
    torch.manual_seed(1)
    start = export_checkpoint(tmp_path / "start", WaypointModel(x0_cfg), None,
                              CaptionEncoder.for_captions(CAPTIONS, 32))
    warp_cfg = WaypointConfig(**{**CFG, "prediction": "x0", "last_frame_warp": True})
    tc = WorldModelTraining(steps=0, clip_frames=6, init=str(start))
    model, encoder = train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run", warp_cfg, tc)
    assert model.unpatchify.weight.eq(0).all() and model.warp_flow.weight.eq(0).all()
    want, _ = load_teacher(start)
    for name, value in want.state_dict().items():
        if not name.startswith("unpatchify."):
            assert torch.equal(model.state_dict()[name], value), name
    data = toy_data(2)
    x0 = torch.as_tensor(data["latents"][:, :4])
    sigma, t = torch.ones(2, 4), torch.arange(4).expand(2, -1)
    emb, _ = encoder(list(data["prompt"]))
    with torch.no_grad():
        v = model(torch.zeros_like(x0), sigma, t, None, emb, cache=FrameCausalMask(warp_cfg, 4),
                  last_frame=previous_frames(x0))
    torch.testing.assert_close(-v, previous_frames(x0))  # x0 = x - sigma v at sigma 1 from x = 0: the last frame
    with pytest.raises(ValueError, match="another architecture"):  # the way back would drop a trained head
        train_world_model(toy_data(8), KEYS, CAPTIONS, tmp_path / "run2", x0_cfg,
                          WorldModelTraining(steps=0, clip_frames=6, init=str(export_checkpoint(
                              tmp_path / "warped", model, None, encoder))))


def test_the_adversarial_term_judges_decoded_estimates_beside_their_last_frame_and_resumes(tmp_path):
    data, cfg = toy_data(16), WaypointConfig(**CFG, prediction="x0")
    ae_dir = random_checkpoint(tmp_path / "ae_src", cfg, image_size=(16, 16)) / "autoencoder"
    decoder = Autoencoder.from_pretrained(ae_dir).decoder
    # The pairs: positions that carry loss at sigma >= 0.5 only, real frames and estimates each after the frame
    # before them; the estimates keep their gradient.
    B, T = 2, 3
    frames = [torch.randn(B, T, 4, 4, 4) for _ in range(3)]
    estimate = frames[0].clone().requires_grad_(True)
    carries = torch.tensor([[False, True, True], [True, True, False]])
    sigma = torch.tensor([[0.9, 0.5, 0.3], [1.0, 0.7, 1.0]])
    real, fake = adversarial_pairs(ClipPass(torch.zeros(B, T), carries, estimate, frames[1], frames[2], sigma), decoder)
    pick = torch.tensor([[False, True, False], [True, True, False]])
    assert real.shape == fake.shape == (3, 6, 16, 16) and fake.requires_grad and not real.requires_grad
    with torch.no_grad():
        rgb = lambda z: decoder(z[pick])[:, :3]  # noqa: E731
        torch.testing.assert_close(real, torch.cat([rgb(frames[2]), rgb(frames[1])], 1))
        torch.testing.assert_close(fake, torch.cat([rgb(frames[2]), rgb(estimate)], 1))
    # The balance: the weighted adversarial gradient at the estimates has the x0 error's norm.
    x0_loss = (estimate - frames[1]).pow(2).mean()
    adversarial = generator_loss(PatchDiscriminator(in_channels=6)(fake))
    w = balanced_weight(x0_loss, adversarial, estimate)
    g_x0, g_adv = (torch.autograd.grad(v, estimate, retain_graph=True)[0].norm() for v in (x0_loss, w * adversarial))
    torch.testing.assert_close(g_adv, g_x0, rtol=1e-3, atol=1e-4)

    tc = WorldModelTraining(steps=10, batch_size=4, clip_frames=4, warmup=2, log_every=5, ckpt_every=5,
                            teacher_forcing=True, loss="x0", adversarial_weight=0.5, adversarial_start=5,
                            autoencoder=str(ae_dir))
    train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, WorldModelTraining(**{**tc.__dict__, "steps": 5}))
    train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg, tc)  # resumes with its discriminator
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "discriminator" in log[0] and "adversarial" not in log[0]  # before adversarial_start: the critic alone
    assert {"discriminator", "adversarial", "x0", "scale"} <= log[1].keys() and log[1]["scale"] > 0
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == 10 and "disc" in state and "disc_opt" in state
    with pytest.raises(ValueError, match="was saved with the adversarial term"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "run", cfg,
                          WorldModelTraining(**{**tc.__dict__, "steps": 12, "adversarial_weight": 0.0}))
    for bad in ({"loss": "velocity"}, {"autoencoder": None}):
        with pytest.raises(ValueError, match="the adversarial term needs an x0 loss and the latents' autoencoder"):
            train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg, WorldModelTraining(**{**tc.__dict__, **bad}))


def test_a_discriminator_given_controls_scores_a_pair_by_whether_it_fits_them():
    torch.manual_seed(0)
    disc = PatchDiscriminator(in_channels=6, condition_dim=5)
    pairs, controls = torch.randn(3, 6, 16, 16), torch.randn(3, 5)
    with torch.no_grad():
        disc.embed.weight.normal_()
        plain = disc.net(pairs)  # the unconditioned score, before the projection term
        scores = disc(pairs, controls)
        assert scores.shape == plain.shape == (3, 1, 2, 2)
        assert not torch.allclose(scores, plain) and not torch.allclose(scores, disc(pairs, controls.flip(0)))
        torch.testing.assert_close(disc(pairs, torch.zeros_like(controls)), plain)  # no controls, no projection
    with pytest.raises(ValueError, match="a discriminator built with condition_dim needs a condition"):
        disc(pairs)
    with pytest.raises(ValueError, match="and one without takes none"):
        PatchDiscriminator(in_channels=6)(pairs, controls)
    # Two more stride-2 levels: 2x2 scores of a 64x64 frame, each reading (110 pixels wide) the whole of it.
    assert PatchDiscriminator(in_channels=9, levels=4)(torch.randn(2, 9, 64, 64)).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError, match="levels must be >= 2, got 1"):
        PatchDiscriminator(levels=1)


def test_the_adversarial_term_can_judge_the_worlds_own_open_loop_dreams(tmp_path):
    data, cfg = toy_data(16), WaypointConfig(**CFG, prediction="x0")
    ae_dir = random_checkpoint(tmp_path / "ae_src", cfg, image_size=(16, 16)) / "autoencoder"
    decoder = Autoencoder.from_pretrained(ae_dir).decoder
    torch.manual_seed(0)
    model, encoder = WaypointModel(cfg), CaptionEncoder.for_captions(CAPTIONS, cfg.prompt_embedding_dim)
    B, F_ = 2, 4
    x0 = torch.randn(B, F_, 4, 4, 4)
    ctrl = torch.randn(B, F_, cfg.n_buttons + 3)
    real, fake, dreamed, controls = dream_triples(model, encoder, x0, ctrl, CAPTIONS, decoder,
                                                  torch.Generator().manual_seed(3))
    torch.testing.assert_close(controls, ctrl[:, 1:].flatten(0, 1))  # triple (0, f - 1, f): the controls of frame f
    # The dreams are the open loop a user runs: the sampler through the KV cache from the first recorded frame.
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = rollout(model, x0[:, 0], ctrl, encoder(CAPTIONS)[0], noise, grad=False)[:, 1:]
        rgb = lambda z: decoder(z.flatten(0, 1))[:, :3].unflatten(0, z.shape[:2])  # noqa: E731
        torch.testing.assert_close(dreamed, expected)
        assert real.shape == fake.shape == (B * (F_ - 1), 9, 16, 16) and not real.requires_grad
        first = rgb(x0[:, :1]).expand(-1, F_ - 1, -1, -1, -1)  # every triple opens with the clip's recorded frame 0
        torch.testing.assert_close(real.unflatten(0, (B, F_ - 1)),
                                   torch.cat([first, rgb(x0)[:, :-1], rgb(x0)[:, 1:]], 2))
        before = torch.cat([rgb(x0[:, :1]), rgb(expected[:, :-1])], 1)  # the seed frame, then the dreamed ones
        torch.testing.assert_close(fake.unflatten(0, (B, F_ - 1)), torch.cat([first, before, rgb(expected)], 2))
    # Each dreamed frame carries the gradient of its last sampler step into the world; the balance is read there.
    adversarial = generator_loss(PatchDiscriminator(in_channels=9)(fake))
    assert torch.autograd.grad(adversarial, model.unpatchify.weight, retain_graph=True)[0].abs().sum() > 0
    estimate = torch.randn(B, 3, 4, 4, 4, requires_grad=True)
    x0_loss = estimate.pow(2).mean()
    w = balanced_weight(x0_loss, adversarial, estimate, dreamed)
    g_x0 = torch.autograd.grad(x0_loss, estimate)[0].norm()
    # (rtol: the balance adds 1e-4 to the adversarial norm it divides by)
    torch.testing.assert_close(torch.autograd.grad(w * adversarial, dreamed)[0].norm(), g_x0, rtol=1e-2, atol=1e-4)

    tc = WorldModelTraining(steps=4, batch_size=4, clip_frames=4, warmup=2, log_every=2, ckpt_every=2,
                            teacher_forcing=True, loss="x0", adversarial_weight=0.5, adversarial_start=2,
                            adversarial_dreams=2, dream_frames=5, autoencoder=str(ae_dir))
    for run, actions in (("run", False), ("run_actions", True)):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / run, cfg,
                          WorldModelTraining(**{**tc.__dict__, "adversarial_actions": actions}))
        log = [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        assert "discriminator" in log[0] and "adversarial" not in log[0]
        assert {"discriminator", "adversarial", "x0", "scale"} <= log[1].keys() and log[1]["scale"] > 0
        state = torch.load(tmp_path / run / "train_state.pt", weights_only=True)
        assert ("embed.weight" in state["disc"]) == actions
    with pytest.raises(ValueError, match="adversarial_actions needs adversarial_dreams"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg,
                          WorldModelTraining(**{**tc.__dict__, "adversarial_dreams": 0, "adversarial_actions": True}))
    with pytest.raises(ValueError, match="adversarial_dreams must be >= 0 and needs adversarial_weight > 0, got 2"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg,
                          WorldModelTraining(**{**tc.__dict__, "adversarial_weight": 0.0}))
    with pytest.raises(ValueError, match="dream_frames must be 0 \\(clip_frames\\) or >= 2 .*got 1"):
        train_world_model(data, KEYS, CAPTIONS, tmp_path / "bad", cfg,
                          WorldModelTraining(**{**tc.__dict__, "dream_frames": 1}))
