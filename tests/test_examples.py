"""Smoke test: every script in examples/ runs as a user would run it (fewer steps) and writes its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "quickstart.py", "seed_frames_and_prompts.py", "custom_reward.py", "vector_env_ppo.py", "dream_vs_real.py",
        "waypoint_small_gpu.py", "cleanrl_ppo.py", "rllib_ppo.py"}


@pytest.mark.parametrize("name, args, output", [
    ("quickstart.py", ["--steps", "8"], "out.gif"),
    ("seed_frames_and_prompts.py", ["--steps", "8"], "out.png"),
    ("custom_reward.py", ["--steps", "8"], None),
    ("vector_env_ppo.py", ["--steps", "64", "--n-envs", "2"], "out.zip"),
    ("dream_vs_real.py", ["--steps", "8"], "out.png"),
    ("cleanrl_ppo.py", ["--updates", "2", "--n-envs", "2", "--n-steps", "16"], "out.pt"),
    ("cleanrl_ppo.py", ["--world", "real", "--updates", "2", "--n-envs", "2", "--n-steps", "16"], "out.pt"),
])
def test_example_runs(name, args, output, tmp_path):
    if output:
        args = [*args, "--out", str(tmp_path / output)]
    stdout = run_example(name, *args, cwd=tmp_path)
    assert stdout.strip()
    if output:
        assert (tmp_path / output).stat().st_size > 0


def test_waypoint_small_example_on_a_local_folder(ckpt, tmp_path):
    """The GPU example's code path on a CPU: a local checkpoint folder instead of the hub download."""
    stdout = run_example("waypoint_small_gpu.py", "--model", str(ckpt), "--device", "cpu", "--prompt", "",
                         "--steps", "4", "--out", str(tmp_path / "out.mp4"), cwd=tmp_path)
    assert "frames/s" in stdout and (tmp_path / "out.mp4").stat().st_size > 0


def test_rllib_example_trains_with_the_batched_env_in_its_env_runners(tmp_path):
    pytest.importorskip("ray.rllib.algorithms.ppo", reason="ray[rllib] pins an older gymnasium: it is installed "
                                                           "on its own, not in the dev extra (examples/rllib_ppo.py)")
    stdout = run_example("rllib_ppo.py", "--iterations", "1", "--env-runners", "1", "--envs-per-runner", "2",
                         "--batch", "64", "--out", str(tmp_path / "checkpoint"), cwd=tmp_path)
    assert "env runners host: WaypointVectorEnv of 2" in stdout and "iteration 1: 64" in stdout
    assert any((tmp_path / "checkpoint").iterdir())


def test_examples_make_their_output_folder_and_fail_loudly(tmp_path):
    """Run as documented (the default --out under runs/examples/), and with an output that cannot be written."""
    run_example("quickstart.py", "--steps", "2", cwd=tmp_path)
    assert (tmp_path / "runs" / "examples" / "quickstart.gif").stat().st_size > 0
    (tmp_path / "taken.png").mkdir()  # a folder where the image should go: OpenCV cannot write it
    for name in ("dream_vs_real.py", "seed_frames_and_prompts.py"):
        done = subprocess.run([sys.executable, str(EXAMPLES / name), "--steps", "2", "--out", "taken.png"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode != 0 and "could not write taken.png" in done.stderr, done.stderr
