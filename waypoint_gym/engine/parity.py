"""The protocols of the Waypoint parity fixtures (`shared/fixtures/README.md`) and their tolerances, on any device
and dtype: the world model's 16-frame rollout (Waypoint-1 and 1.5), the image autoencoder's round trip and TAEHV's
streaming round trip. The tests and `benchmarks/gpu.py` run them.
"""

from __future__ import annotations

import numpy as np
import torch

from .autoencoder import Autoencoder
from .controls import CtrlInput
from .world_engine import WorldEngine

WORLD_ATOL = 1e-4  # a match: max absolute error under this on every generated frame
AE_LATENT_ATOL = 1e-4  # encoder output, max absolute error
AE_GREY_LEVELS = 1  # decoded images after rounding, max difference in grey levels
SEED_FRAMES = 2  # the rollout's frames 0 and 1 are appended by a cache pass, 2..15 are generated


def fixture_ctrls(rollout: dict[str, torch.Tensor]) -> list[CtrlInput]:
    """The rollout's per-frame controls as CtrlInput."""
    return [
        CtrlInput(
            button={int(i) for i in rollout["buttons"][t].nonzero().flatten()},
            mouse=tuple(rollout["mouse"][t].tolist()),
            scroll_wheel=int(rollout["scroll"][t, 0]),
        )
        for t in range(len(rollout["buttons"]))
    ]


def run_parity_protocol(engine: WorldEngine, rollout: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Reset; frames 0 and 1 by cache pass on the seed latents, then 2..15 generated from the given noise. The
    prompt embedding is set when the rollout has one (waypoint15-parity-a has none).

    Returns the 14 generated latents (float32, on the engine's device).
    """
    engine.reset()
    if "prompt_emb" in rollout:
        engine.set_prompt_embedding(rollout["prompt_emb"], rollout["prompt_pad_mask"])
    out = []
    for t, ctrl in enumerate(fixture_ctrls(rollout)):
        if t < SEED_FRAMES:
            engine.append_latent(rollout["seed_latents"][t], ctrl)
        else:
            out.append(engine.gen_latent(ctrl, noise=rollout["noise"][t - SEED_FRAMES]))
    return out


def frame_errors(got: torch.Tensor, want: torch.Tensor) -> list[float]:
    """Max absolute error of each frame [F, ...] against another [F, ...] (compared in float32 on the CPU)."""
    diff = (got.detach().float().cpu() - want.detach().float().cpu()).abs()
    return diff.flatten(1).max(dim=1).values.tolist()


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want||, in float32 on the CPU."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    return float((got - want).norm() / want.norm())


def autoencoder_errors(ae: Autoencoder, roundtrip: dict[str, torch.Tensor]) -> dict[str, float]:
    """The round trip of `ae_roundtrip.safetensors`: encoder error (max abs, and relative) on the images, and the
    decoder's error in grey levels after rounding (max, and the share of values more than one level off)."""
    with torch.inference_mode():
        z = ae.encode(roundtrip["images"])
        images = ae.decode(roundtrip["expected_latents"].to(ae.device, ae.dtype))
    want = roundtrip["expected_decoded_float"].round().to(torch.int32).numpy()
    grey = np.abs(images.astype(np.int32) - want)
    return {
        "latent_max_abs": max(frame_errors(z, roundtrip["expected_latents"])),
        "latent_relative": relative_error(z, roundtrip["expected_latents"]),
        "grey_levels_max": int(grey.max()),
        "share_beyond_1_level": float((grey > AE_GREY_LEVELS).mean()),
    }


def taehv_errors(ae, roundtrip: dict[str, torch.Tensor]) -> dict[str, float]:
    """The streaming round trip of taehv-parity-a (`taehv_roundtrip.safetensors` or `..._360p`) on a TAEHV of one
    stream, built with the file's `auto_aspect_ratio`: reset once, encode the chunks of 4 frames in order, then
    decode the expected latents in order (the first decode warms up). Errors as `autoencoder_errors`; decoded values
    are compared after rounding with the expected ones rounded (float file) or as stored (uint8 file)."""
    frames, want_z = roundtrip["frames"], roundtrip["expected_latents"]
    ae.reset()
    with torch.inference_mode():
        z = torch.stack([ae.encode(frames[4 * k: 4 * k + 4]) for k in range(len(want_z))])
        decoded = torch.stack([ae.decode_float(want_z[k].to(ae.device, ae.dtype)).cpu() for k in range(len(want_z))])
    want = roundtrip.get("expected_decoded_float")
    want = want.round() if want is not None else roundtrip["expected_decoded_u8"]
    grey = (decoded.round().to(torch.int32) - want.to(torch.int32)).abs()
    return {
        "latent_max_abs": max(frame_errors(z, want_z)),
        "latent_relative": relative_error(z, want_z),
        "grey_levels_max": int(grey.max()),
        "share_beyond_1_level": float((grey > AE_GREY_LEVELS).float().mean()),
    }
