"""How much contrast can a few-step sampler give content that the context does not predict?

    python studies/sampler_ceiling.py                                  # the table for the arena's latents
    python studies/sampler_ceiling.py --latents runs/latents_s2.npy    # measure their within-frame variance

A world with an x0 head (or any rectified-flow denoiser) sampled by Euler steps draws each element from its
estimate of the posterior mean. Where the next frame is fully told by the past (a copy, a shift), that mean
is the frame. Where it is not (the maze beyond the view's edge), take the case a perfect world would face
with Gaussian content: x0 ~ N(m, V) given the context, x_sigma = (1 - sigma) x0 + sigma n. The perfect
denoiser is then linear, E[x0 | x] = m + (1 - s) V / ((1 - s)^2 V + s^2) (x - (1 - s) m), so every Euler
step is too, and the sample's deviation from m is a multiple of the starting noise. Its std over sqrt(V) is
the ceiling on the contrast that schedule gives unpredictable content, whatever the training: 0.5 for the
bundled world's (1, 0.5, 0) at V = 1, and 1 only in the limit of many steps.

V is the variance of what the context leaves open, in latent units; the default is the within-frame variance
of the arena's latents about each frame's channel means (what a fog of the theme's colours lacks), measured
on the world's training data (`--latents` measures it again).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

ARENA_WITHIN_FRAME_VARIANCE = 0.383  # runs/latents_s2.npy, every 10th of the first 1,000 segments: std 0.619


def uniform(n: int) -> list[float]:
    """n Euler steps evenly spaced in sigma from 1 to 0."""
    return [round(float(s), 6) for s in np.linspace(1.0, 0.0, n + 1)]


SCHEDULES = {
    "2 steps (1, 0.5, 0): the bundled world's": [1.0, 0.5, 0.0],
    "3 steps (1, 0.64, 0.36, 0)": [1.0, 0.64, 0.36, 0.0],
    "4 uniform": [1.0, 0.75, 0.5, 0.25, 0.0],
    "4 low noise (1, 0.3, 0.15, 0.05, 0)": [1.0, 0.3, 0.15, 0.05, 0.0],
    "8 uniform": uniform(8),
    "8 low noise": [1.0, 0.7, 0.5, 0.357, 0.25, 0.167, 0.1, 0.045, 0.0],
    "16 uniform": uniform(16),
    "32 uniform": uniform(32),
    "64 uniform": uniform(64),
}


def unpredictable_std_ratio(sigmas: list[float], variance: float) -> float:
    """Std of a perfect denoiser's Euler sample about the posterior mean, over the content's own std."""
    if len(sigmas) < 2 or sigmas[0] != 1.0 or sigmas[-1] != 0.0 or any(b >= a for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"sigmas must fall strictly from 1.0 to 0.0, got {sigmas}")
    if not variance > 0:
        raise ValueError(f"variance must be positive, got {variance}")
    a = 1.0  # the sample's deviation from (1 - s) m, as a multiple of the starting noise
    for s, t in zip(sigmas, sigmas[1:]):
        x0 = (1 - s) * variance / ((1 - s) ** 2 * variance + s**2) * a  # the perfect x0 estimate's deviation from m
        a += (t - s) * (a - x0) / s  # Euler step along the velocity (x - x0) / s
    return abs(a) / variance**0.5


def within_frame_variance(path: str, every: int = 10, segments: int = 1000) -> float:
    """Variance of latents about each frame's per-channel mean, over every `every`-th of the first segments."""
    z = np.load(path, mmap_mode="r")  # [N, T, C, h, w]
    x = np.asarray(z[:segments:every]).astype(np.float64)
    return float(((x - x.mean(axis=(-2, -1), keepdims=True)) ** 2).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latents", default=None, help="encoded segments [N, T, C, h, w] to measure V on")
    p.add_argument("--variances", default="0.1,0.25,1", help="more values of V for the table, comma-separated")
    p.add_argument("--out", default=None, help="JSON to write")
    args = p.parse_args()
    v0 = within_frame_variance(args.latents) if args.latents else ARENA_WITHIN_FRAME_VARIANCE
    variances = [v0] + [float(v) for v in args.variances.split(",") if v]
    rows = {name: [unpredictable_std_ratio(s, v) for v in variances] for name, s in SCHEDULES.items()}
    print("| schedule | model passes a frame | " + " | ".join(f"V = {v:.3g}" for v in variances) + " |")
    print("|---|---|" + "---|" * len(variances))
    for name, vals in rows.items():
        print(f"| {name} | {len(SCHEDULES[name])} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"variances": variances, "arena_variance": v0, "schedules": SCHEDULES, "std_ratio": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
