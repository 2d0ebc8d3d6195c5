"""The ground-truth arena: Gymnasium conformance, controls, rewards, themes, batching and input checks."""

from __future__ import annotations

import itertools
import warnings

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from waypoint_gym.worlds import (
    ArenaBatch,
    ArenaEnv,
    all_captions,
    parse_caption,
    register_worlds,
    sample_caption,
)
from waypoint_gym.worlds.arena import JUMP_FRAMES
from waypoint_gym.worlds.captions import DEFAULT_WORDS

KEYS = ("W", "A", "S", "D", "SPACE", "SHIFT")


def action(*pressed: str, mouse: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    keys = np.array([int(name in pressed) for name in KEYS], dtype=np.int8)
    return {"keys": keys, "mouse": np.array(mouse, dtype=np.float32)}


def gray(frame: np.ndarray) -> np.ndarray:
    """Float grey image without the score pips in the top rows."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)[8:]


def open_cell_facing_wall(walls: np.ndarray) -> tuple[int, int]:
    """A floor cell (x, y) with one more floor cell to the east and then a wall."""
    for y, x in itertools.product(range(1, walls.shape[0] - 1), range(1, walls.shape[1] - 3)):
        if walls[y, x] == 0 and walls[y, x + 1] == 0 and walls[y, x + 2] != 0:
            return x, y
    raise AssertionError("no cell facing a wall two cells east")


def test_check_env_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker notes it cannot try other render modes without a spec
        check_env(ArenaEnv().unwrapped)
        check_env(ArenaEnv(render_mode="rgb_array", prompt="a sunny desert canyon at noon").unwrapped)


def test_registered_env_makes_and_steps():
    register_worlds()
    register_worlds()  # a second call is harmless
    env = gym.make("WaypointArena-v0", prompt="a snowy ice cave at night", size=48)
    observation, info = env.reset(seed=1)
    assert observation.shape == (48, 48, 3) and info["prompt"] == "a snowy ice cave at night"
    env.step(env.action_space.sample())
    env.close()


def test_same_seed_same_episode_and_other_seed_other_map():
    rng = np.random.default_rng(0)
    actions = [action(*rng.choice(KEYS, size=2), mouse=tuple(rng.uniform(-1, 1, 2))) for _ in range(30)]
    runs = []
    for _ in range(2):
        env = ArenaEnv()
        frames = [env.reset(seed=7)[0]]
        frames += [env.step(a)[0] for a in actions]
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(_walls_after_reset(7), _walls_after_reset(8))


def _walls_after_reset(seed: int) -> np.ndarray:
    env = ArenaEnv()
    env.reset(seed=seed)
    return env.walls


def test_prompts_give_visibly_different_colours():
    prompts = ["a mossy stone dungeon", "a sunny desert canyon at noon", "a snowy ice cave at night"]
    means = []
    for prompt in prompts:
        env = ArenaEnv(prompt=prompt)
        frames = [env.reset(seed=seed)[0] for seed in range(4)]
        means.append(np.mean(frames, axis=(0, 1, 2)))
    for a, b in itertools.combinations(range(len(prompts)), 2):
        distance = np.linalg.norm(means[a] - means[b])
        assert distance > 30, f"{prompts[a]!r} and {prompts[b]!r} look alike: colours {distance:.1f} apart"


def test_reset_option_prompt_applies_to_that_episode_only():
    env = ArenaEnv(prompt="a mossy stone dungeon")
    _, info = env.reset(seed=0, options={"prompt": "a sunny desert canyon at noon"})
    assert info["prompt"] == "a sunny desert canyon at noon" and env.theme.place == "canyon"
    _, info = env.reset(seed=0)
    assert info["prompt"] == "a mossy stone dungeon" and env.theme.place == "dungeon"


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_turning_shifts_the_view_sideways(direction: float):
    env = ArenaEnv(prompt="a rusty brick maze at noon")
    env.reset(seed=3)
    before, *_ = env.step(action())
    after, *_, info = env.step(action(mouse=(0.3 * direction, 0.0)))
    (shift_x, shift_y), _ = cv2.phaseCorrelate(gray(before), gray(after))
    # Turning right (mouse x > 0) moves the picture to the left, by about focal length x turn angle pixels.
    expected = -direction * 0.3 * 0.2 * 32 / np.tan(np.radians(33))
    assert np.sign(shift_x) == -direction and abs(shift_x - expected) < 1.5, (shift_x, expected)
    assert abs(shift_y) < 0.5
    assert info["yaw"] != 0


def test_looking_down_moves_the_horizon_up_and_jumping_rises_and_lands():
    env = ArenaEnv(prompt="a sunny desert canyon at noon")
    env.reset(seed=2)
    level, *_ = env.step(action())
    down, *_, info = env.step(action(mouse=(0.0, 1.0)))
    assert info["pitch"] < 0
    (_, shift_y), _ = cv2.phaseCorrelate(gray(level), gray(down))
    assert shift_y < -1
    heights = [env.step(action("SPACE" if i == 0 else ""))[4]["jump_height"] for i in range(12)]
    assert max(heights) > 0.2 and heights[-1] == 0.0
    assert min(heights[:JUMP_FRAMES]) > 0 and max(heights[JUMP_FRAMES:]) == 0  # what training's still clips rely on


def test_the_view_stands_still_while_nothing_is_pressed_once_a_jump_has_landed():
    env = ArenaEnv(prompt="a sunny desert canyon at noon")
    env.reset(seed=2)
    frames = [env.step(action("SPACE", mouse=(0.2, 0.0)))[0]] + [env.step(action())[0] for _ in range(20)]
    moved = [bool(np.any(a != b)) for a, b in zip(frames, frames[1:])]
    assert any(moved[:JUMP_FRAMES - 1]) and not any(moved[JUMP_FRAMES - 1:]), moved


def test_walking_toward_a_wall_changes_the_view_and_the_wall_stops_the_agent():
    env = ArenaEnv(prompt="a mossy stone dungeon")
    env.reset(seed=4)
    x, y = open_cell_facing_wall(env.walls)
    env.teleport((x + 0.5, y + 0.5), yaw=0.0)
    start, *_ = env.step(action())
    for _ in range(25):
        near, *_, info = env.step(action("W"))
    assert np.abs(near.astype(float) - start.astype(float)).mean() > 10
    wall_face = x + 2 - 0.2  # the agent's radius keeps it off the wall
    assert x + 1.5 < info["position"][0] <= wall_face + 1e-9
    assert info["position"][1] == pytest.approx(y + 0.5)


def test_collecting_an_orb_gives_one_point():
    env = ArenaEnv()
    _, info = env.reset(seed=5)
    env.teleport(env.orb_positions[0] + np.array([0.25, 0.0]))  # within the pickup radius of 0.5
    _, reward, terminated, truncated, info = env.step(action())
    assert reward == 1.0 and info["orbs_left"] == 5 and info["score"] == 1
    assert not terminated and not truncated
    _, reward, *_ = env.step(action())
    assert reward == 0.0


def test_episode_terminates_when_every_orb_is_collected():
    env = ArenaEnv(num_orbs=3)
    env.reset(seed=6)
    total = 0.0
    for orb in env.orb_positions:
        env.teleport(orb)
        _, reward, terminated, _, info = env.step(action())
        total += reward
    assert total == 3.0 and terminated and info["orbs_left"] == 0
    assert info["nearest_orb_distance"] == np.inf


def test_episode_truncates_at_max_episode_steps():
    env = ArenaEnv(max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(action())[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_following_the_waypoint_bearing_collects_every_orb():
    env = ArenaEnv(num_orbs=4, map_size=11, max_episode_steps=2000)
    _, info = env.reset(seed=11)
    total, terminated = 0.0, False
    for _ in range(2000):
        bearing = info["waypoint_bearing"]
        forward = ("W", "SHIFT") if abs(bearing) < 0.5 else ()
        turn = float(np.clip(bearing / 0.2, -1, 1))
        _, reward, terminated, truncated, info = env.step(action(*forward, mouse=(turn, 0.0)))
        total += reward
        if terminated or truncated:
            break
    assert terminated and total == 4.0


def test_batch_matches_single_envs():
    seeds = [10, 11, 12]
    prompts = ["a mossy stone dungeon", "a sunny desert canyon at noon", "a glowing wood maze"]
    batch = ArenaBatch(3, num_orbs=4)
    frames, batch_info = batch.reset(seed=seeds, prompt=prompts)
    singles = [ArenaEnv(prompt=p, num_orbs=4) for p in prompts]
    for index, (env, seed) in enumerate(zip(singles, seeds)):
        observation, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(frames[index], observation)
    rng = np.random.default_rng(1)
    for _ in range(40):
        keys, mouse = rng.integers(0, 2, size=(3, 6)), rng.uniform(-1, 1, size=(3, 2)).astype(np.float32)
        frames, rewards, terminated, _, batch_info = batch.step(keys, mouse)
        for index, env in enumerate(singles):
            observation, reward, done, _, info = env.step({"keys": keys[index], "mouse": mouse[index]})
            np.testing.assert_array_equal(frames[index], observation)
            assert reward == rewards[index] and done == terminated[index]
            np.testing.assert_allclose(batch_info["position"][index], info["position"])
            assert batch_info["waypoint_bearing"][index] == pytest.approx(info["waypoint_bearing"])


def test_batch_int_seed_and_partial_reset():
    batch = ArenaBatch(2)
    batch.reset(seed=20)
    walls = batch._walls.copy()
    single = ArenaEnv()
    single.reset(seed=21)
    np.testing.assert_array_equal(walls[1], single.walls)
    batch.reset(seed=[30], env_indices=[0])
    np.testing.assert_array_equal(batch._walls[1], walls[1])
    assert not np.array_equal(batch._walls[0], walls[0])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_envs": True}, ValueError, "num_envs must be a positive int, got True"),
        ({"size": np.True_}, ValueError, "size must be an int between 16 and 512"),
        ({"max_episode_steps": True}, ValueError, "max_episode_steps must be a positive int"),
        ({"map_size": 15.0}, ValueError, "map_size must be an odd int"),
        ({"num_orbs": True}, ValueError, "num_orbs must be an int between 1"),
    ],
)
def test_batch_constructor_refuses_bools_and_floats(kwargs, error, message):
    with pytest.raises(error, match=message):
        ArenaBatch(**{"num_envs": 2, **kwargs})


def test_batch_reset_checks_every_seed_and_prompt_before_any_world_changes():
    batch = ArenaBatch(2)
    batch.reset(seed=20)
    walls, prompts = batch._walls.copy(), list(batch.prompts)
    bad = [
        (dict(seed=True), ValueError, r"seed must be None, an int, or a list of 2 seeds \(one per env\), got True"),
        (dict(seed="7"), ValueError, "seed must be None, an int, or a list of 2 seeds"),
        (dict(seed=b"\x05\x06"), ValueError, "seed must be None, an int, or a list of 2 seeds"),
        (dict(seed=[5]), ValueError, "seed must be None, an int, or a list of 2 seeds"),
        (dict(seed=-3), ValueError, "a seed must be a non-negative int or None, got -3"),
        (dict(seed=-1, env_indices=[1]), ValueError, "a seed must be a non-negative int or None, got -1"),
        (dict(seed=[5, -1]), ValueError, "a seed must be a non-negative int or None, got -1"),
        (dict(seed=[5, True]), ValueError, "a seed must be a non-negative int or None, got True"),
        (dict(seed=[5, 6], prompt=["a snowy ice cave", 3]), TypeError, "caption must be a str, got int"),
        (dict(seed=5, env_indices=[True]), IndexError, "env index True out of range"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            batch.reset(**kwargs)
        np.testing.assert_array_equal(batch._walls, walls)  # the first world was not redrawn
        assert list(batch.prompts) == prompts
    batch.reset(seed=[np.int64(30), None], env_indices=[np.int64(0), 1])  # numpy ints are ints
    assert not np.array_equal(batch._walls[0], walls[0])


def test_other_keys_are_accepted_and_ignored():
    env = ArenaEnv(keys=("w", "E", "space"))
    env.reset(seed=0)
    assert env.action_space["keys"].n == 3
    _, _, _, _, info = env.step({"keys": np.array([0, 1, 0]), "mouse": np.zeros(2)})
    still = ArenaEnv(keys=("W", "E", "SPACE"))
    still.reset(seed=0)
    _, _, _, _, reference = still.step({"keys": np.array([0, 0, 0]), "mouse": np.zeros(2)})
    np.testing.assert_array_equal(info["position"], reference["position"])


def test_render_returns_the_current_frame():
    env = ArenaEnv(render_mode="rgb_array")
    observation, _ = env.reset(seed=0)
    frame = env.render()
    np.testing.assert_array_equal(frame, observation)
    frame[:] = 0
    assert observation.any()


@pytest.mark.parametrize(
    ("bad_action", "error", "message"),
    [
        ([1, 0, 0, 0, 0, 0], TypeError, "action must be a dict"),
        ({"keys": np.zeros(6)}, ValueError, r"missing \['mouse'\]"),
        ({"keys": np.zeros(6), "mouse": np.zeros(2), "jump": 1}, ValueError, r"unexpected \['jump'\]"),
        ({"keys": np.zeros(5), "mouse": np.zeros(2)}, ValueError, r"action\['keys'\] must have shape \(6,\)"),
        ({"keys": np.full(6, 2), "mouse": np.zeros(2)}, ValueError, "only 0 and 1"),
        ({"keys": np.zeros(6), "mouse": np.zeros(3)}, ValueError, r"action\['mouse'\] must have shape"),
        ({"keys": np.zeros(6), "mouse": np.array([np.nan, 0.0])}, ValueError, "must be finite"),
        ({"keys": np.zeros(6), "mouse": np.array([1.5, 0.0])}, ValueError, r"within \[-1, 1\]"),
        ({"keys": np.zeros(6), "mouse": "left"}, TypeError, "must be two numbers"),
    ],
)
def test_bad_actions_raise_clear_errors(bad_action, error, message):
    env = ArenaEnv()
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(bad_action)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(KeyError, match="unknown key name 'JUMP'"):
        ArenaEnv(keys=("W", "JUMP"))
    with pytest.raises(ValueError, match="keys must not repeat"):
        ArenaEnv(keys=("W", "w"))
    with pytest.raises(ValueError, match="map_size must be an odd int"):
        ArenaEnv(map_size=12)
    with pytest.raises(ValueError, match="num_orbs must be an int between 1 and 20"):
        ArenaEnv(num_orbs=40)
    with pytest.raises(ValueError, match="render_mode must be one of"):
        ArenaEnv(render_mode="ascii")
    env = ArenaEnv()
    with pytest.raises(RuntimeError, match="call reset"):
        env._world.step(np.zeros((1, 6)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"unknown reset options \['difficulty'\]; known: \['prompt'\]"):
        env.reset(options={"difficulty": 3})
    with pytest.raises(TypeError, match="must be a str caption"):
        env.reset(options={"prompt": 42})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=123, options={"bogus": 1})  # refused before it re-seeds
    with pytest.raises(ValueError, match="a seed must be a non-negative int or None, got True"):
        env.reset(seed=True)  # Gymnasium alone would take it as seed 1
    with pytest.raises(ValueError, match="got -2"):
        env.reset(seed=-2)
    reference = ArenaEnv()
    reference.reset(seed=0)
    np.testing.assert_array_equal(env.reset()[0], reference.reset()[0])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="inside a wall"):
        env.teleport((0.5, 0.5))
    with pytest.raises(ValueError, match=r"keys must have shape \(1, 6\)"):
        env._world.step(np.zeros((2, 6)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"mouse must be finite and within \[-1, 1\]"):
        env._world.step(np.zeros((1, 6)), np.full((1, 2), np.nan))


def test_caption_grammar():
    theme = parse_caption("A snowy ICE cave, at night!")
    assert theme.key == ("snowy", "ice", "cave", "night")
    assert parse_caption("a frozen labyrinth at sunset").key == (None, "ice", "maze", "dusk")
    fallback = parse_caption("a purple spaceship")
    assert fallback.key == tuple(DEFAULT_WORDS.values()) and fallback.unknown_words == ("purple", "spaceship")
    assert parse_caption("").key == tuple(DEFAULT_WORDS.values())
    captions = all_captions()
    assert len(captions) == len(set(captions)) == 7 * 6 * 6 * 5
    assert "a mossy stone dungeon" in captions and "a snowy ice cave at night" in captions
    for caption in captions[::37]:
        assert parse_caption(caption).canonical_caption.startswith(caption)
    rng = np.random.default_rng(0)
    assert all(sample_caption(rng) in captions for _ in range(50))
    with pytest.raises(TypeError, match="caption must be a str"):
        parse_caption(3)
