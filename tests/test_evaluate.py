"""The world evaluation: PSNR, the motion and theme measurements on the real game, and a quick end-to-end run.

The checkpoints here have RANDOM weights: the end-to-end tests check the report's structure only.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from waypoint_gym.engine import DEFAULT_KEYS, WaypointConfig, WorldEngine, random_checkpoint
from waypoint_gym.envs.world_batch import WorldBatch
from waypoint_gym.evaluation import (
    CALIBRATION_SEED,
    DEFAULT_CAPTIONS,
    EVAL_SEED,
    ThemeClassifier,
    evaluate_world,
    psnr,
    save_strips,
    theme_clips,
    view_shift,
    view_zoom,
)
from waypoint_gym.evaluation.control import turn_following
from waypoint_gym.evaluation.fidelity import detail, open_loop_clips, open_loop_psnr, pixel_std, ssim
from waypoint_gym.evaluation.harness import Harness, exploration
from waypoint_gym.evaluation.inverse_dynamics import action_classes, balanced_accuracy, fit_inverse_dynamics
from waypoint_gym.evaluation.rewards import choose_threshold, within
from waypoint_gym.worlds.arena import WALK_SPEED, ArenaBatch

TINY = dict(
    d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=4, width=4, patch=(2, 2),
    tokens_per_frame=16, n_frames=64, local_window=4, global_window=8, global_pinned_dilation=2,
    global_attn_period=2, n_buttons=256, prompt_conditioning=None,
)
METRICS = {"one_step", "copy", "control_one_step", "open_loop", "open_loop_still", "controllability",
           "action_following", "long_rollout"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory):
    """No prompt conditioning, no reward head, 64x64 frames."""
    return random_checkpoint(tmp_path_factory.mktemp("plain") / "ckpt", WaypointConfig(**TINY), image_size=(64, 64))


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory):
    """Prompt cross-attention with a caption encoder and a reward head, 32x32 frames (so it runs quicker)."""
    from waypoint_gym.engine import CaptionEncoder, RewardHead, RewardHeadConfig

    cfg = WaypointConfig(**{**TINY, "prompt_conditioning": "cross_attention", "prompt_embedding_dim": 32,
                            "prompt_encoder_uri": "prompt_encoder"})
    folder = random_checkpoint(tmp_path_factory.mktemp("full") / "ckpt", cfg, image_size=(32, 32))
    torch.manual_seed(0)
    CaptionEncoder.for_captions(list(DEFAULT_CAPTIONS), 32).save_pretrained(folder / "prompt_encoder")
    head = RewardHead(RewardHeadConfig(latent_channels=4, latent_size=(8, 8), n_keys=6, keys=list(DEFAULT_KEYS)))
    head.save_pretrained(folder / "reward_head")
    return folder


def test_psnr_matches_a_hand_computed_value():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 1, 2, 0] = 10  # one channel of one pixel off by 10: MSE = 100 / 48
    expected = 10 * math.log10(255**2 / (100 / 48))  # 41.95 dB
    assert psnr(a, b) == pytest.approx([expected, 100.0])
    assert psnr(a[0], b[0]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one shape"):
        psnr(a, b[:1])


def test_motion_measures_read_the_real_game_correctly():
    """Turning left and right pan the picture opposite ways; walking forward zooms in, walking back out."""
    n, steps = 8, 4
    game = ArenaBatch(n, size=64, max_episode_steps=100)
    clips, moved = {}, {}
    for name, key, mouse_x in (("left", None, -0.5), ("right", None, 0.5), ("forward", "W", 0.0), ("back", "S", 0.0)):
        frames, info = game.reset(seed=EVAL_SEED, prompt=list(DEFAULT_CAPTIONS))
        start, clip = info["position"].copy(), [frames.copy()]
        keys, mouse = np.zeros((n, len(game.keys)), np.uint8), np.zeros((n, 2))
        if key:
            keys[:, game.keys.index(key)] = 1
        mouse[:, 0] = mouse_x
        for _ in range(steps):
            frames, _, _, _, info = game.step(keys, mouse)
            clip.append(frames.copy())
        clips[name] = np.stack(clip, 1)
        moved[name] = np.linalg.norm(info["position"] - start, axis=1) >= 0.9 * steps * WALK_SPEED

    left, right = view_shift(clips["left"]), view_shift(clips["right"])
    assert (left > 5).all() and (right < -5).all()  # about 5 px a frame at mouse 0.5
    forward, back = view_zoom(clips["forward"]), view_zoom(clips["back"])
    assert moved["forward"].sum() >= 6 and moved["back"].sum() >= 4  # walking back often meets a wall
    assert (forward[moved["forward"]] > 0).all() and (back[moved["back"]] < 0).all()
    still = np.repeat(clips["left"][:, :1], 3, axis=1)
    assert np.abs(view_shift(still)).max() < 0.5 and np.abs(view_zoom(still)).max() < 0.05
    # turns are measured at half size but reported in the frames' pixels: full size finds the same pan
    # (half size reads it up to a quarter short: its sub-pixel peak is coarser)
    np.testing.assert_allclose(view_shift(clips["left"], downsample=1), left, rtol=0.3)
    with pytest.raises(ValueError, match="downsample must be a positive integer"):
        view_shift(still, downsample=0)


def test_theme_classifier_tells_real_worlds_apart():
    captions = list(DEFAULT_CAPTIONS)
    fit_frames, fit_labels = theme_clips(captions, 4, EVAL_SEED, n_frames=6)
    classifier = ThemeClassifier(captions).fit(fit_frames, fit_labels)
    frames, labels = theme_clips(captions, 4, EVAL_SEED + 500, n_frames=6)
    assert np.mean(classifier.predict(frames) == labels) >= 0.9
    # Blurred like a world model's mean frame, the clips lose the contrast the full test reads, not their colours.
    blurred = np.stack([[cv2.GaussianBlur(f, (0, 0), 16) for f in clip] for clip in frames])
    by_means = ThemeClassifier(captions, means_only=True).fit(fit_frames, fit_labels)
    assert np.mean(by_means.predict(blurred) == labels) >= 0.9 > np.mean(classifier.predict(blurred) == labels)


def test_teacher_forcing_leaves_only_real_frames_in_the_cache(plain_checkpoint):
    """Predicting a frame without storing it, then appending the real one == having appended only real frames."""
    n = 2
    game = ArenaBatch(n, size=64)
    frames, _ = game.reset(seed=EVAL_SEED)
    rng = np.random.default_rng(0)
    actions = [(rng.integers(0, 2, (n, 6)).astype(np.uint8), rng.uniform(-1, 1, (n, 2))) for _ in range(6)]
    real = [frames.copy()] + [game.step(*action)[0].copy() for action in actions]  # past the 4-frame window

    forced, plain = (WorldBatch(WorldEngine(plain_checkpoint, batch_size=n, seed=0), DEFAULT_KEYS, 1.0)
                     for _ in range(2))
    rows = list(range(n))
    for world in (forced, plain):
        world.begin(rows, [None] * n)
        world.append(rows, world.encode(real[0]))
    for frame, action in zip(real[1:], actions):
        forced.dream(rows, *action, store=False)
        forced.append(rows, forced.encode(frame), *action)
        plain.append(rows, plain.encode(frame), *action)
    noise = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ctrls = forced.keymap.vectors(*actions[0])
    expected = plain.engine.gen_latent(ctrls, noise=noise)
    torch.testing.assert_close(forced.engine.gen_latent(ctrls, noise=noise), expected)


def check_report(report: dict, out_dir, metrics: set[str]) -> None:
    assert set(report["metrics"]) == metrics
    assert json.loads((out_dir / "world_eval.json").read_text()) == report
    assert "| Metric | Value | Target | Met |" in (out_dir / "world_eval.md").read_text()
    for name in report["strips"].values():
        assert cv2.imread(str(out_dir / name)) is not None
    assert set(report["strips"]) == metrics - {"reward_events", "open_loop_rewards", "action_following"}
    m = report["metrics"]
    numbers = [m["one_step"]["psnr"], m["one_step"]["autoencoder_psnr"], *m["one_step"]["per_step"],
               m["open_loop"]["psnr"], m["open_loop"]["psnr_at_horizon"], *m["open_loop"]["per_step"],
               m["controllability"]["agreement"], m["controllability"]["turn"]["agreement"],
               m["long_rollout"]["drift"], m["long_rollout"]["real_drift"],
               *(point["drift"] for point in m["long_rollout"]["curve"])]
    assert all(isinstance(x, float) and math.isfinite(x) for x in numbers)
    assert len(m["open_loop"]["per_step"]) == m["open_loop"]["horizon"]
    still = m["open_loop_still"]  # nothing pressed: the real view never turns, and the row reports the dream's step 16
    assert still["turns"]["turning_steps"] == 0 and still["horizon"] == m["open_loop"]["horizon"]
    assert math.isfinite(still["psnr_at_horizon"])
    assert "Open loop standing still" in (out_dir / "world_eval.md").read_text()
    assert set(report["passed"]) >= {"one_step_psnr", "open_loop_psnr", "controllability_turn", "prompt_following"}
    gates = report["gates"]
    assert len(gates) == 10 and "| Gate | Value | Wanted | Met |" in (out_dir / "world_eval.md").read_text()
    for name in ("1. copy: PSNR", "1. copy: detail ratio", "3. open loop: detail ratio at step 16"):
        assert isinstance(gates[name]["value"], float) and gates[name]["met"] in (True, False)
    assert 0 < m["copy"]["detail_ratio"] and 0 < m["one_step"]["ssim"] <= 1 and m["copy"]["last_frame_psnr"] > 40
    assert set(m["action_following"]["real"]) == {"turn", "walk", "strafe"}
    ceiling = m["control_one_step"]["turn"]["reconstruction_agreement"]  # the real frames through the autoencoder
    assert isinstance(ceiling, float) and 0 <= ceiling <= 1
    assert "turn / walk agreement (the ceilings)" in (out_dir / "world_eval.md").read_text()
    open_loop_ceiling = m["open_loop"]["turns"]["reconstruction_agreement"]
    assert isinstance(open_loop_ceiling, float) and 0 <= open_loop_ceiling <= 1
    assert "turn agreement (the ceiling)" in (out_dir / "world_eval.md").read_text()


def test_open_loop_clips_are_the_clips_open_loop_psnr_scores(plain_checkpoint):
    """The clips start at the seed frame (its reconstruction in the dream), and the same seed replays them."""
    engine = WorldEngine(plain_checkpoint, batch_size=2, seed=0)
    harness = Harness(engine, DEFAULT_CAPTIONS, progress=False)
    engine.generator.manual_seed(EVAL_SEED)
    clips = open_loop_clips(harness, 2, 3, EVAL_SEED, exploration(0.4, harness.keys))
    assert sorted(clips) == ["dreamed", "real", "reconstructed"]
    assert all(clip.shape == (2, 4, 64, 64, 3) for clip in clips.values())
    assert np.array_equal(clips["dreamed"][:, 0], clips["reconstructed"][:, 0])
    engine.generator.manual_seed(EVAL_SEED)
    scored = open_loop_psnr(engine, 3, 2, EVAL_SEED, DEFAULT_CAPTIONS, progress=False)
    np.testing.assert_allclose(scored["per_step"], psnr(clips["dreamed"][:, 1:], clips["real"][:, 1:]).mean(0))
    assert np.array_equal(scored["samples"]["dreamed"], clips["dreamed"])


def test_evaluate_world_quick_without_prompt_or_reward_head(plain_checkpoint, tmp_path):
    report = evaluate_world(plain_checkpoint, tmp_path, n_worlds=2, quick=True, progress=False)
    check_report(report, tmp_path, METRICS)
    notes = " ".join(report["notes"])
    assert "prompt following skipped" in notes and "reward events skipped" in notes
    assert report["passed"]["prompt_following"] is None and report["passed"]["reward_recall"] is None


def test_evaluate_world_quick_with_prompt_and_reward_head(full_checkpoint, tmp_path):
    report = evaluate_world(full_checkpoint, tmp_path, n_worlds=2, quick=True, prompt_guidance=2.0, progress=False)
    check_report(report, tmp_path, METRICS | {"prompt_following", "reward_events", "open_loop_rewards"})
    assert report["prompt_guidance"] == 2.0 and "prompt guidance 2.0" in (tmp_path / "world_eval.md").read_text()
    prompt = report["metrics"]["prompt_following"]
    assert 0.0 <= prompt["accuracy"] <= 1.0 and prompt["classifier_accuracy_real"] >= 0.75
    assert 0.0 <= prompt["accuracy_colour_means"] <= 1.0 and prompt["classifier_accuracy_real_colour_means"] >= 0.75
    assert "colour means alone" in (tmp_path / "world_eval.md").read_text()
    assert np.sum(prompt["confusion"]) == prompt["trials"]
    open_loop = report["metrics"]["open_loop_rewards"]
    assert len(open_loop["events_by_step"]) == len(open_loop["found_by_step"]) == open_loop["horizon"]
    assert sum(open_loop["events_by_step"]) == open_loop["events"]
    assert all(0 <= f <= e for f, e in zip(open_loop["found_by_step"], open_loop["events_by_step"]))
    rewards = report["metrics"]["reward_events"]
    assert rewards["transitions"] == 2 * 12
    for side in ("real_latents", "dreamed_latents"):
        assert {"precision", "recall", "events", "predicted"} <= set(rewards[side])


def test_evaluate_world_refuses_training_seeds(plain_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="training worlds"):
        evaluate_world(plain_checkpoint, tmp_path, seed=0)


def test_save_strips_puts_real_over_dreamed(tmp_path):
    real = np.zeros((2, 3, 8, 8, 3), np.uint8)
    dreamed = np.full_like(real, 200)
    image = cv2.imread(str(save_strips(tmp_path / "strip.png", real, dreamed, scale=1)))
    assert image.shape == (2 * (8 + 2 + 8) + 6, 3 * 8 + 2 * 2, 3)
    assert image[0, 0].tolist() == [0, 0, 0] and image[10, 0].tolist() == [200, 200, 200]


def test_detail_measures_edges_and_a_blur_loses_them():
    step = np.zeros((1, 64, 64, 3), np.uint8)
    step[:, :, 32:] = 80  # one vertical edge of 80 grey levels: its gradient sums to 80 along each row
    assert detail(step)[0] == pytest.approx(80 / 64, rel=1e-3)
    assert detail(np.zeros((2, 8, 8, 3), np.uint8)).tolist() == [0.0, 0.0]
    game = ArenaBatch(4, size=64)
    frames, _ = game.reset(seed=EVAL_SEED, prompt=list(DEFAULT_CAPTIONS[:4]))
    fog = np.stack([cv2.GaussianBlur(f, (0, 0), 4) for f in frames])
    assert (detail(fog) < 0.6 * detail(frames)).all() and (pixel_std(fog) < pixel_std(frames)).all()
    assert ssim(frames, frames) == pytest.approx([1.0] * 4) and (ssim(fog, frames) < 0.9).all()


def test_turn_following_reads_direction_and_size():
    n, steps = 6, 5
    game = ArenaBatch(n, size=64, max_episode_steps=100)
    frames, _ = game.reset(seed=EVAL_SEED)
    rng = np.random.default_rng(0)
    clip = [frames.copy()]
    for _ in range(steps):
        mouse = np.stack([rng.choice([-1.0, 1.0], n), np.zeros(n)], 1)
        clip.append(game.step(np.zeros((n, 6), np.uint8), mouse)[0].copy())
    real = np.stack(clip, 1)
    same = turn_following(real, real)
    assert same["agreement"] == 1.0 and same["shift_ratio"] == pytest.approx(1.0) and same["turning_steps"] >= 25
    still = turn_following(real, np.repeat(real[:, :1], steps + 1, axis=1))
    assert abs(still["shift_ratio"]) < 0.05
    mirrored = turn_following(real, real[:, :, :, ::-1])  # a mirror turns the other way
    assert mirrored["agreement"] < 0.1 and mirrored["shift_ratio"] < -0.8


def test_within_matches_events_a_step_apart():
    real = np.array([[0, 1, 0, 0, 0, 1]], bool)
    head = np.array([[0, 0, 1, 0, 0, 0]], bool)
    assert within(real, head, 1).tolist() == [[False, True, False, False, False, False]]
    assert within(head, real, 0).sum() == 0 and within(head, real, 1).sum() == 1


def test_inverse_dynamics_reads_real_actions():
    """Fitted on real frame pairs, it tells a turn's and a walk's direction on other real worlds."""
    keys = list(DEFAULT_KEYS)
    assert action_classes(np.array([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]]), np.array([[-0.5, 0], [0.1, 0]]),
                          keys).tolist() == [[0, 0, 2], [1, 2, 1]]

    def pairs(seed: int, n: int = 32, steps: int = 12):
        game = ArenaBatch(n, size=64, max_episode_steps=steps + 1)
        frames, _ = game.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out, classes = [], []
        for _ in range(steps):
            pressed = np.zeros((n, 6), np.uint8)
            pressed[np.arange(n), rng.choice([0, 2], n)] = rng.random(n) < 0.7  # W or S, or neither
            mouse = np.stack([rng.choice([-1.0, 0.0, 1.0], n), np.zeros(n)], 1)
            new = game.step(pressed, mouse)[0].copy()
            out.append(np.stack([frames, new], 1))
            classes.append(action_classes(pressed, mouse, keys))
            frames = new
        return np.concatenate(out), np.concatenate(classes)

    model = fit_inverse_dynamics(*pairs(EVAL_SEED, n=64, steps=16), steps=800)
    test_pairs, test_classes = pairs(EVAL_SEED + 1000)
    accuracy = balanced_accuracy(model.predict(test_pairs), test_classes)
    assert accuracy["turn"] >= 0.9 and accuracy["walk"] >= 0.7, accuracy  # chance: 1/3


def test_choose_threshold_finds_the_collections_the_head_scores_highest():
    target = np.zeros((4, 16), bool)
    target[[0, 1, 2], [3, 7, 12]] = True
    probs = np.full((4, 16), 0.05)
    probs[[0, 1, 2], [4, 7, 11]] = [0.3, 0.35, 0.4]  # the head fires on time or a step off, below 0.5
    probs[3, 5] = 0.2  # and once on nothing, less sure
    chosen = choose_threshold(target, probs, slack=1)
    assert 0.2 <= chosen["threshold"] < 0.3 and chosen["precision"] == 1.0 and chosen["recall"] == 1.0
    exact = choose_threshold(target, probs, slack=0)  # only the firing on time counts
    assert exact["recall"] == pytest.approx(1 / 3) and exact["precision"] == 0.5 and 0.3 <= exact["threshold"] < 0.35
    assert choose_threshold(np.zeros_like(target), probs)["threshold"] is None  # nothing to find


def test_calibrate_reward_head_writes_the_head_with_its_threshold(full_checkpoint, tmp_path):
    from waypoint_gym.cli import main
    from waypoint_gym.engine import RewardHead

    main(["calibrate-reward-head", str(full_checkpoint), "--out", str(tmp_path / "head"), "--rollouts", "2",
          "--worlds", "2", "--horizon", "3"])
    calibration = json.loads((tmp_path / "head" / "calibration.json").read_text())
    assert calibration["n_worlds"] == 2 and calibration["horizon"] == 3 and calibration["seed"] == CALIBRATION_SEED
    assert calibration["saved"]["threshold"] == 0.5 and len(calibration["curve"]) >= 1
    head = RewardHead.from_pretrained(tmp_path / "head")
    expected = 0.5 if calibration["threshold"] is None else calibration["threshold"]
    assert head.config.reward_threshold == pytest.approx(expected)
