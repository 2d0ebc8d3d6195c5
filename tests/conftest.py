"""Shared test fixtures: where the parity fixtures live, and small checkpoints built by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("WAYPOINT_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def speed_paths() -> dict:
    """Each inference speed-up alone, and all but compile together: what the tests hold to the plain path."""
    import dataclasses

    from waypoint_gym.engine import Speedups

    plain = Speedups.plain()
    return {
        "fused_qkv": dataclasses.replace(plain, fused_qkv=True),
        "cached_conditioning": dataclasses.replace(plain, cached_conditioning=True),
        "split_ctrl_fusion": dataclasses.replace(plain, split_ctrl_fusion=True),
        "flex_attention": dataclasses.replace(plain, attention="flex"),
        "all_but_compile": Speedups(compile=False),
    }


def fixture_dir(name: str) -> Path:
    """A folder of ../shared/fixtures, or skip (a user's clone has no shared/, CI always does)."""
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"parity fixture {path} not found (set WAYPOINT_FIXTURES to the shared/fixtures folder)")
    return path


def fixture_ctrls(rollout) -> list:
    """The fixture rollout's per-frame controls as CtrlInput."""
    from waypoint_gym.engine.parity import fixture_ctrls

    return fixture_ctrls(rollout)


def run_parity_protocol(engine, rollout) -> list:
    """The fixture README's protocol: 2 seed frames by cache pass, then 14 generated from the given noise."""
    from waypoint_gym.engine.parity import run_parity_protocol

    return run_parity_protocol(engine, rollout)


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return fixture_dir("waypoint-parity-a")


@pytest.fixture(scope="session")
def parity_rollout(parity_dir):
    from safetensors.torch import load_file

    return load_file(parity_dir / "rollout.safetensors")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are all overhead: one torch thread is faster, and two fight on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """A tiny RANDOM-weight world with a random 32x32 autoencoder (wiring tests only)."""
    from envs_support import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def prompt_ckpt(tmp_path_factory):
    from envs_support import prompt_checkpoint

    return prompt_checkpoint(tmp_path_factory.mktemp("tiny-prompt"))
