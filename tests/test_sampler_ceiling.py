"""studies/sampler_ceiling.py: its closed form matches the engine's own Euler sampler run on a perfect
denoiser of Gaussian content, and it reads bad schedules as errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from waypoint_gym.engine.sampler import euler_denoise

SPEC = importlib.util.spec_from_file_location("sampler_ceiling",
                                              Path(__file__).parents[1] / "studies" / "sampler_ceiling.py")
study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(study)


@pytest.mark.parametrize("sigmas", [[1.0, 0.5, 0.0], [1.0, 0.75, 0.5, 0.25, 0.0], [1.0, 0.3, 0.15, 0.05, 0.0]])
@pytest.mark.parametrize("variance", [0.25, 1.0])
def test_closed_form_matches_the_engines_sampler_on_a_perfect_denoiser(sigmas, variance):
    g = torch.Generator().manual_seed(0)
    mean = 0.7  # what the context tells; the rest, N(0, variance), it does not

    def velocity(x, i):
        s = sigmas[i]
        x0 = mean + (1 - s) * variance / ((1 - s) ** 2 * variance + s**2) * (x - (1 - s) * mean)
        return (x - x0) / s

    x = euler_denoise(torch.randn(200_000, generator=g, dtype=torch.float64), sigmas, velocity)
    assert x.mean().item() == pytest.approx(mean, abs=0.01)
    assert (x.std() / variance**0.5).item() == pytest.approx(study.unpredictable_std_ratio(sigmas, variance), rel=0.01)


def test_two_steps_give_half_the_contrast_and_many_steps_nearly_all():
    assert study.unpredictable_std_ratio([1.0, 0.5, 0.0], 1.0) == pytest.approx(0.5)
    assert study.unpredictable_std_ratio(list(np.linspace(1, 0, 257)), 1.0) > 0.99


@pytest.mark.parametrize("bad", [[0.9, 0.5, 0.0], [1.0, 0.5], [1.0, 0.3, 0.5, 0.0], [1.0]])
def test_a_schedule_must_fall_from_one_to_zero(bad):
    with pytest.raises(ValueError, match="sigmas must fall strictly from 1.0 to 0.0"):
        study.unpredictable_std_ratio(bad, 1.0)


def test_within_frame_variance_is_about_each_frames_channel_means(tmp_path):
    z = np.zeros((3, 2, 4, 4, 4), np.float16)
    z[..., ::2] = 1.0  # every frame's channel: half ones, half zeros, variance 0.25 about its mean
    z += np.arange(4, dtype=np.float16)[:, None, None]  # a constant per channel changes nothing
    np.save(tmp_path / "z.npy", z)
    assert study.within_frame_variance(str(tmp_path / "z.npy"), every=1) == pytest.approx(0.25)
