"""The GPU path in one command: parity on the device, the published presets' speed, batched envs, the autoencoder,
training throughput and the versions, for Waypoint-1 and Waypoint-1.5, in one JSON and a printed table.

    python benchmarks/gpu.py                                # CUDA: both families within 8 minutes on an H100/H200
    python benchmarks/gpu.py --device cpu --quick           # every part on tiny presets, about a minute (CI runs it)
    python benchmarks/gpu.py --parts parity,engine          # some parts only (of every family)
    python benchmarks/gpu.py --family waypoint-1.5 --preset waypoint-1.5-360p   # one family, its 360p preset

Parts, each timed and skipped with its reason when the time left of `--budget-s` would not cover it (the JSON is
written after every setting of every part, so a run cut short still leaves one). The versions first, then
Waypoint-1's parts (parity, training, engine, env), then Waypoint-1.5's (parity-1.5, autoencoder-1.5, engine-1.5,
env-1.5), all within the one budget: when it covers every part's least share each part keeps the later parts'
shares; when it does not, Waypoint-1 is served first and 1.5 runs in what is left.

1. parity: the family's shared fixtures (world model and autoencoder; for 1.5 waypoint15-parity-a and TAEHV's
   taehv-parity-a, both of its files) on the device in float32, against the fixtures' tolerances, and in bfloat16
   (error reported); each speed path (fused QKV, cached AdaLN conditioning, split controller fusion, flex
   attention, torch.compile) alone and all together against the plain path on the same inputs, and all together
   in bfloat16 (error reported). TF32 is switched off for the float32 checks.
2. engine: the family's published preset (RANDOM weights, bf16, compiled as WorldEngine compiles on CUDA) at batch
   1, 4, 16 and 64: waypoint-1-small (2.3B) at 4 and 2 denoising steps, waypoint-1.5-1b (1.2B, 720p, 512
   tokens/frame) at its 4: compile time (the first frame), latent frames/s, video frames/s (x frames per latent:
   4 for 1.5), token-passes/s (batch x frames/s x tokens/frame x steps), peak GPU memory and the graphs compiled.
3. env: env steps/s of `gym.make_vec(id, n, vectorization_mode="vector_entry_point")` (Waypoint-v0,
   Waypoint-1.5-v0) on a checkpoint of the same preset (RANDOM weights, with a RANDOM autoencoder: Waypoint-1's of
   an assumed size, 1.5's TAEHV of the published layout), decode included.
4. training (Waypoint-1): steps/s and clips/s of `train_world_model` with the bundled world's config and recipe, on
   RANDOM latents of the bundled world's shape (speed does not depend on their values).
5. autoencoder (Waypoint-1.5): TAEHV alone, RANDOM weights, one stream: encode and decode ms per 4 frames, and the
   first decode after a reset, at 360x640 and 720x1280.
6. versions: device, driver, torch, CUDA, cuDNN, Triton.

`--quick` uses the families' CPU-sized presets (waypoint-cpu-small, waypoint-1.5-cpu), fewer settings and frames,
TAEHV at 64x128, and compiles with the "aot_eager" backend (dynamo traces the same full graphs; inductor's code
generation takes minutes on a CPU), the "all" speed path only.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from torch._dynamo.utils import counters

from waypoint_gym.engine import Speedups, WaypointConfig, WorldEngine, preset_config
from waypoint_gym.engine import parity as wp1
from waypoint_gym.engine.autoencoder import Autoencoder, AutoencoderConfig
from waypoint_gym.engine.loading import BUNDLED_WORLD
from waypoint_gym.engine.taehv import TAEHV, WORKING_SIZE, random_taehv
from waypoint_gym.engine.world_engine import random_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("WAYPOINT_FIXTURES", ROOT.parent / "shared" / "fixtures"))
PARTS = ("versions", "parity", "engine", "env", "training", "autoencoder")
EAGER_ATOL = 2e-5  # a speed path without compile against the plain path (as tests/test_speedups.py)
COMPILED_ATOL = 1e-4  # a compiled path against the plain path


# ------------------------------------------------------------------------------------ model families


@dataclass(frozen=True)
class Family:
    """A model family: its parity fixtures and the protocols that run them, and the presets the speed parts build.

    Another family is one more entry of FAMILIES: its fixtures, a rollout function and an autoencoder check, and
    how to write a random checkpoint of its preset for the env part.
    """

    name: str
    model_type: str  # the config's model_type: which family a --preset belongs to
    suffix: str  # of its part names in the JSON and the table ("" for Waypoint-1: "parity", "parity-1.5", ...)
    parts: tuple[str, ...]  # what it runs, in order
    preset: str  # the published size, for the engine and env parts
    quick_preset: str  # a CPU-sized member, for --quick
    world_fixture: str  # a folder of FIXTURES
    # (fixture folder, device, dtype, speedups) -> (generated latents [F, C, H, W], the fixture's expected ones)
    world_rollout: Callable[[Path, torch.device, torch.dtype, Speedups], tuple[torch.Tensor, torch.Tensor]]
    ae_fixture: str
    # (fixture folder, device, dtype) -> errors, and "ok" under the fixture's tolerances
    ae_errors: Callable[[Path, torch.device, torch.dtype], dict[str, Any]]
    # (folder, preset name, quick, device, dtype) -> a checkpoint folder an env loads, autoencoder included
    write_checkpoint: Callable[[Path, str, bool, torch.device, torch.dtype], Path]
    # a checkpoint folder's autoencoder, for the env part's JSON
    describe_autoencoder: Callable[[Path], dict[str, Any]]
    env_id: str  # the Gymnasium id the env part makes (model= the random checkpoint)
    published_reference: str  # the published speed figure to set beside the engine part's
    engine_steps: tuple[int, ...] | None = None  # denoising steps of the engine part (None: the plan's)

    def key(self, part: str) -> str:
        """The part's name in the JSON and the table."""
        return part if part == "versions" else part + self.suffix


def waypoint1_rollout(folder: Path, device: torch.device, dtype: torch.dtype, speedups: Speedups):
    rollout = load_file(folder / "rollout.safetensors")
    engine = WorldEngine(folder, device=device, dtype=dtype, speedups=speedups)
    frames = torch.stack(wp1.run_parity_protocol(engine, rollout))
    return frames, rollout["expected_x0"]


def waypoint1_ae_errors(folder: Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    ae = Autoencoder.from_pretrained(folder, device=device, dtype=dtype)
    errors = wp1.autoencoder_errors(ae, load_file(folder / "ae_roundtrip.safetensors"))
    ok = errors["latent_max_abs"] < wp1.AE_LATENT_ATOL and errors["grey_levels_max"] <= wp1.AE_GREY_LEVELS
    return {**errors, "ok": ok}


def waypoint1_checkpoint(folder: Path, preset: str, quick: bool, device: torch.device, dtype: torch.dtype) -> Path:
    """The preset with RANDOM weights (built on the device, stored in `dtype`) and a RANDOM autoencoder.

    The published autoencoder's size is not known here: the full one assumed is the format's layout (512x512 in,
    360x640 out; 4 stages for 32x32 latents) with 64 to 256 channels; --quick uses 16 to 32 channels at 64x64.
    """
    cfg = preset_config(preset)
    C, h, w = cfg.latent_shape
    if quick:
        ae_cfg = dict(ch_0=16, ch_max=32, input_size=(64, 64), output_size=(64, 64))
    else:
        ae_cfg = dict(ch_0=64, ch_max=256, input_size=(512, 512), output_size=(360, 640))
    stages = round(math.log2(ae_cfg["input_size"][0] / h))
    if ae_cfg["input_size"] != (h * 2**stages, w * 2**stages):
        raise ValueError(f"no autoencoder maps {ae_cfg['input_size']} images to the preset's {h}x{w} latents")
    torch.manual_seed(1)
    ae = Autoencoder(AutoencoderConfig(
        channels=3, encoder_blocks_per_stage=[1] * stages, decoder_blocks_per_stage=[1] * stages, latent_channels=C,
        skip_logvar=True, **ae_cfg,
    ))
    ae.save_pretrained(folder / "autoencoder")
    cfg = WaypointConfig.from_dict({**cfg.to_dict(), "ae_uri": "autoencoder"})
    return save_checkpoint(folder, cfg, random_model(cfg, device, dtype, seed=0), dtype=dtype)


def waypoint1_autoencoder(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "autoencoder" / "decoder_conf.yml").read_text())["model"]


def waypoint15_rollout(folder: Path, device: torch.device, dtype: torch.dtype, speedups: Speedups):
    """waypoint15-parity-a: the same protocol as Waypoint-1's fixture, without a prompt."""
    return waypoint1_rollout(folder, device, dtype, speedups)


TAEHV_FILES = {"64x128": ("taehv_roundtrip.safetensors", False), "360p": ("taehv_roundtrip_360p.safetensors", True)}


def waypoint15_ae_errors(folder: Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """taehv-parity-a's two files (64x128 at the frames' own size; 360p through the 16:9 resize path), each its own
    episode on a TAEHV built with its auto_aspect_ratio; the worst of both, and each file's own errors."""
    each = {}
    for name, (file, auto) in TAEHV_FILES.items():
        ae = Autoencoder.from_pretrained(folder, device=device, dtype=dtype, auto_aspect_ratio=auto)
        each[name] = wp1.taehv_errors(ae, load_file(folder / file))
    worst = {k: max(e[k] for e in each.values()) for k in next(iter(each.values()))}
    ok = worst["latent_max_abs"] < wp1.AE_LATENT_ATOL and worst["grey_levels_max"] <= wp1.AE_GREY_LEVELS
    return {**worst, **{f"file_{name}": e for name, e in each.items()}, "ok": ok}


def waypoint15_checkpoint(folder: Path, preset: str, quick: bool, device: torch.device, dtype: torch.dtype) -> Path:
    """The preset with RANDOM weights (built on the device, stored in `dtype`) and a RANDOM TAEHV of the published
    layout (11.4M parameters: TAEHV's size does not depend on the video size), saved as `taehv1_5.pth`."""
    cfg = preset_config(preset)
    if not cfg.taehv_ae:
        raise ValueError(f"preset {preset} is not a Waypoint-1.5 preset (no TAEHV)")
    random_taehv(cfg.auto_aspect_ratio, seed=1).save_pretrained(folder / "autoencoder")
    cfg = WaypointConfig.from_dict({**cfg.to_dict(), "ae_uri": "autoencoder"})
    return save_checkpoint(folder, cfg, random_model(cfg, device, dtype, seed=0), dtype=dtype)


def waypoint15_autoencoder(folder: Path) -> dict[str, Any]:
    cfg = WaypointConfig.from_yaml(folder / "config.yaml")
    ae = TAEHV(auto_aspect_ratio=cfg.auto_aspect_ratio)
    return {"kind": "TAEHV 1.5", "weights": "RANDOM", "parameters": sum(p.numel() for p in ae.parameters()),
            "auto_aspect_ratio": cfg.auto_aspect_ratio, "video": list(ae.video_size(cfg.latent_shape[1:])),
            "frames_per_latent": ae.frames_per_latent}


FAMILIES: dict[str, Family] = {  # in the order a run serves them: a budget too short for both serves the first
    "waypoint-1": Family(
        name="waypoint-1", model_type="waypoint-1", suffix="", parts=("parity", "training", "engine", "env"),
        preset="waypoint-1-small", quick_preset="waypoint-cpu-small", world_fixture="waypoint-parity-a",
        world_rollout=waypoint1_rollout, ae_fixture="waypoint-ae-parity-a", ae_errors=waypoint1_ae_errors,
        write_checkpoint=waypoint1_checkpoint, describe_autoencoder=waypoint1_autoencoder, env_id="Waypoint-v0",
        published_reference="~30,000 token-passes/s at batch 1 on an RTX 5090 (waypoint-1-small); an H100's bf16 "
                            "limit for this model is about 170,000",
    ),
    # The 720p model (waypoint-1.5-1b, 512 tokens/frame): the published default (Overworld/Waypoint-1.5-1B,
    # Waypoint-1.5-v0) and the heavier of the two; --preset waypoint-1.5-360p measures the 360p one (128 tokens/frame).
    "waypoint-1.5": Family(
        name="waypoint-1.5", model_type="waypoint-1.5", suffix="-1.5", parts=("parity", "autoencoder", "engine", "env"),
        preset="waypoint-1.5-1b", quick_preset="waypoint-1.5-cpu", world_fixture="waypoint15-parity-a",
        world_rollout=waypoint15_rollout, ae_fixture="taehv-parity-a", ae_errors=waypoint15_ae_errors,
        write_checkpoint=waypoint15_checkpoint, describe_autoencoder=waypoint15_autoencoder,
        env_id="Waypoint-1.5-v0", engine_steps=(4,),
        published_reference="reported for Waypoint-1.5: 56 FPS on an RTX 5090 in bf16, 72 with w8a8 (issue 29; "
                            "which resolution, and video or latent frames, not stated: 56 video frames/s would be "
                            "14 latent frames/s)",
    ),
}


# ------------------------------------------------------------------------------------ settings of a run


@dataclass
class Plan:
    """What each part runs: the full plan on a GPU, the quick one on a CPU in about a minute."""

    batches: tuple[int, ...]
    steps: tuple[int, ...]
    frames: int  # timed frames per engine setting, after the compiling frame and `warmup` more
    warmup: int
    compile_engine: bool  # compile in the engine part (the env part compiles as WorldEngine does by default)
    compile_bf16_path: bool  # compile the parity part's bfloat16 run of every speed path
    compile_alone: bool  # the compile-alone parity path (else "all" is the only compiled one)
    env_counts: tuple[int, ...]
    env_steps: int  # timed vector steps per env count, after `warmup` untimed ones
    train_batches: tuple[int, ...]
    train_steps: int  # timed training steps per batch size, after `warmup` untimed ones
    ae_sizes: tuple[tuple[int, int], ...]  # video sizes of the autoencoder part (TAEHV), one stream
    ae_rounds: int  # timed encodes and decodes per size (median), after one untimed each
    need_s: dict[str, float]  # the least time a part is worth starting with


FULL = Plan(  # batch 1 first (the published figure), then the largest: what a run cut short should have first
    batches=(1, 64, 16, 4), steps=(4, 2), frames=8, warmup=2, compile_engine=True, compile_bf16_path=True,
    compile_alone=True,
    env_counts=(16, 64), env_steps=6,
    train_batches=(16, 128), train_steps=30, ae_sizes=((360, 640), (720, 1280)), ae_rounds=5,
    need_s={"versions": 0, "parity": 60, "engine": 90, "env": 60, "training": 20, "autoencoder": 20},
)
QUICK = Plan(
    batches=(1, 4), steps=(4, 2), frames=3, warmup=1, compile_engine=False, compile_bf16_path=False,
    compile_alone=False,  # 8-10 s of tracing a family on a CPU, of the code "all" runs compiled too
    env_counts=(4, 8), env_steps=2, train_batches=(16,), train_steps=2, ae_sizes=((64, 128),), ae_rounds=3,
    need_s={"versions": 0, "parity": 10, "engine": 5, "env": 5, "training": 5, "autoencoder": 2},
)


class Budget:
    """Seconds left of the run's budget."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


@dataclass
class Run:
    args: argparse.Namespace
    family: Family  # of the part running now
    presets: dict[str, str]  # family name -> the preset of its engine and env parts
    plan: Plan
    device: torch.device
    dtype: torch.dtype  # of the engine, env and training parts
    speedups: Speedups  # compile settings of the run (mode, backend)
    budget: Budget
    out: Path  # the JSON, written after every part and every setting within one
    results: dict[str, Any]
    reserve_s: float = 0.0  # kept for the parts still to come

    @property
    def preset(self) -> str:
        """The preset of the family's engine and env parts: --preset, else the family's (its CPU-sized one with
        --quick)."""
        return self.presets[self.family.name]

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def free(self) -> None:
        """Drop what the last setting left on the device, and dynamo's compiled graphs (each engine adds its own)."""
        gc.collect()
        torch._dynamo.reset()
        counters.clear()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def save(self, name: str | None = None, part: dict[str, Any] | None = None) -> None:
        """Write the JSON; with a part (of the running family) still running, what it has so far (a run cut short
        keeps it)."""
        if name is not None:
            self.results["parts"][self.family.key(name)] = {**part, "status": "running"}
        self.results["wall_s"] = round(self.budget.elapsed(), 2)
        write_json(self.out, self.results)

    @staticmethod
    def compiled_graphs() -> dict[str, int]:
        """Since the last `free`: graphs dynamo compiled (recompilations included), and graphs inductor ran without
        CUDA graphs (its log says why)."""
        return {"graphs": counters["stats"]["unique_graphs"],
                "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        """Peak memory allocated by torch on the device since the last `free` (CUDA only; None on a CPU)."""
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def room_for(self, estimate_s: float) -> str | None:
        """None when `estimate_s` more seconds fit before the parts still to come; else why not."""
        left = self.budget.left() - self.reserve_s
        if left < estimate_s:
            return f"needs about {estimate_s:.0f} s, {max(left, 0):.0f} s left before the later parts' share"
        return None


@contextmanager
def exact_float32(device: torch.device):
    """float32 matmuls and convolutions without TF32 on CUDA (its default for convolutions), for the tolerances."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip()[:2000]}"


def status_of(items: list[dict[str, Any]]) -> str:
    """A part's status from its settings': "error" if one raised, "partial" if one was skipped, else "ok"."""
    statuses = {item.get("status") for item in items}
    return "error" if "error" in statuses else "partial" if "skipped" in statuses else "ok"


# ------------------------------------------------------------------------------------ part 5: versions


def part_versions(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
        else None, "numpy": np.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
    }
    for module in ("triton", "gymnasium"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            out[module] = None
    if run.cuda:
        props = torch.cuda.get_device_properties(run.device)
        out.update(device=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=props.total_memory / 2**30, multiprocessors=props.multi_processor_count,
                   driver=nvidia_smi("driver_version"))
    else:
        out.update(device=cpu_name(), driver=None)
    return out


def nvidia_smi(field: str) -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({error_text(e)})"
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------ part 1: parity


def speed_paths(run: Run) -> dict[str, Speedups]:
    """Each speed path alone, then all together, as changes of the plain path (the run's compile settings)."""
    plain = Speedups.plain()
    compiled = dataclasses.replace(plain, compile=True, compile_mode=run.speedups.compile_mode,
                                   compile_backend=run.speedups.compile_backend)
    every = dataclasses.replace(compiled, fused_qkv=True, cached_conditioning=True, split_ctrl_fusion=True,
                                attention="flex")
    return {
        "fused_qkv": dataclasses.replace(plain, fused_qkv=True),
        "cached_conditioning": dataclasses.replace(plain, cached_conditioning=True),
        "split_ctrl_fusion": dataclasses.replace(plain, split_ctrl_fusion=True),
        "flex_attention": dataclasses.replace(plain, attention="flex"),
        "compile": compiled,
        "all": every,
    }


def part_parity(run: Run) -> dict[str, Any]:
    fam, dev = run.family, run.device
    world_dir, ae_dir = FIXTURES / fam.world_fixture, FIXTURES / fam.ae_fixture
    for folder in (world_dir, ae_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"parity fixture {folder} not found (set WAYPOINT_FIXTURES to shared/fixtures)")
    out: dict[str, Any] = {"fixtures": [fam.world_fixture, fam.ae_fixture], "tolerances": {
        "world_max_abs": wp1.WORLD_ATOL, "ae_latent_max_abs": wp1.AE_LATENT_ATOL,
        "ae_grey_levels": wp1.AE_GREY_LEVELS, "path_vs_plain": EAGER_ATOL, "compiled_path_vs_plain": COMPILED_ATOL,
    }}
    checks: list[bool] = []
    last = {"s": 5.0}  # the estimate of the next item: the time the last one took

    def item(name: str, fn: Callable[[], dict[str, Any]], estimate: float | None = None) -> dict[str, Any] | None:
        reason = run.room_for(estimate if estimate is not None else last["s"])
        if reason:
            out[name] = {"status": "skipped", "reason": reason}
            return None
        t0 = time.perf_counter()
        try:
            result = fn()
        except Exception as e:  # one path failing on the device must not hide the others
            traceback.print_exc()
            result = {"ok": False, "error": error_text(e)}
        result["seconds"] = round(time.perf_counter() - t0, 2)
        if run.compiled_graphs()["graphs"]:
            result.update(run.compiled_graphs())
        last["s"] = result["seconds"]
        out[name] = result
        run.save("parity", out)
        if "ok" in result:
            checks.append(bool(result["ok"]))
        run.free()
        print(f"  parity {name}: {describe_item(result)}", flush=True)
        return result

    plain_frames: dict[str, torch.Tensor] = {}

    def world(dtype: torch.dtype, speedups: Speedups, judged: bool, atol_vs_plain: float | None) -> dict[str, Any]:
        with exact_float32(dev) if dtype == torch.float32 else _nothing():
            frames, expected = fam.world_rollout(world_dir, dev, dtype, speedups)
        frames = frames.float().cpu()
        errs = wp1.frame_errors(frames, expected)
        res: dict[str, Any] = {"max_abs_vs_fixture": max(errs), "relative_vs_fixture": wp1.relative_error(
            frames, expected), "finite": bool(torch.isfinite(frames).all())}
        if atol_vs_plain is not None:
            res["max_abs_vs_plain"] = max(wp1.frame_errors(frames, plain_frames["float32"]))
        if judged:
            res["ok"] = res["finite"] and res["max_abs_vs_fixture"] < wp1.WORLD_ATOL and (
                atol_vs_plain is None or res["max_abs_vs_plain"] < atol_vs_plain)
        if speedups == Speedups.plain() and dtype == torch.float32:
            plain_frames["float32"] = frames
        return res

    first = item("world_float32", lambda: world(torch.float32, Speedups.plain(), True, None), 2.0)
    item("world_bfloat16", lambda: world(torch.bfloat16, Speedups.plain(), False, None), 2.0)
    item("autoencoder_float32", lambda: exact_ae(fam, ae_dir, dev, torch.float32), 5.0)
    item("autoencoder_bfloat16", lambda: {k: v for k, v in fam.ae_errors(ae_dir, dev, torch.bfloat16).items()
                                          if k != "ok"}, 5.0)
    if first is None or "float32" not in plain_frames:
        out["speed_paths"] = "skipped: the plain float32 rollout did not run"
    else:
        for name, speedups in speed_paths(run).items():
            if name == "compile" and not run.plan.compile_alone:
                out[f"path_{name}"] = {"status": "not run", "reason": "--quick compiles the \"all\" path only (the "
                                       "same code; tests/test_speedups.py and tests/test_waypoint15.py check the "
                                       "compile-alone path of each family)"}
                print(f"  parity path_{name}: not run ({out[f'path_{name}']['reason']})", flush=True)
                continue
            atol = COMPILED_ATOL if speedups.compile else EAGER_ATOL
            estimate = 30.0 if speedups.compile and not run.args.quick else None
            res = item(f"path_{name}", lambda s=speedups, a=atol: world(torch.float32, s, True, a), estimate)
            if res is not None:
                res["speedups"] = dataclasses.asdict(speedups.resolved(dev))
        # What a GPU serves: every path in bfloat16, reported against the plain float32 rollout (--quick: not
        # compiled, as the float32 paths have just been).
        every = dataclasses.replace(speed_paths(run)["all"], compile=run.plan.compile_bf16_path)
        res = item("path_all_bfloat16", lambda: world(torch.bfloat16, every, False, 0.0))
        if res is not None:
            res["speedups"] = dataclasses.asdict(every.resolved(dev))
    out["ok"] = bool(checks) and all(checks)
    skipped = any(isinstance(v, dict) and v.get("status") == "skipped" for v in out.values())
    out["status"] = "failed" if not out["ok"] else "partial" if skipped else "ok"
    return out


@contextmanager
def _nothing():
    yield


def exact_ae(fam: Family, ae_dir: Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    with exact_float32(device):
        return fam.ae_errors(ae_dir, device, dtype)


def describe_item(res: dict[str, Any]) -> str:
    if res.get("status") == "skipped":
        return f"skipped ({res['reason']})"
    if "error" in res:
        return f"ERROR {res['error'][:200]}"
    shown = {k: v for k, v in res.items() if not isinstance(v, dict)}  # the speedups, each file's errors: JSON
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())


# ------------------------------------------------------------------------------------ part 2: engine


def time_frames(run: Run, engine: WorldEngine, n: int) -> list[float]:
    times = []
    for _ in range(n):
        run.sync()
        t0 = time.perf_counter()
        engine.gen_latent()
        run.sync()
        times.append(time.perf_counter() - t0)
    return times


def part_engine(run: Run) -> dict[str, Any]:
    plan = run.plan
    preset = run.preset
    speedups = dataclasses.replace(run.speedups, compile=plan.compile_engine)
    out: dict[str, Any] = {
        "preset": preset, "weights": "RANDOM", "dtype": str(run.dtype).removeprefix("torch."),
        "speedups": dataclasses.asdict(speedups.resolved(run.device)), "settings": [],
        "frames_per_latent": preset_config(preset).temporal_compression,
        "published_reference": run.family.published_reference,
    }
    # frames/s: latent frames (one per action, what the engine generates); video frames/s: x frames_per_latent, the
    # frames they decode to (not decoded here: the env part decodes)
    print(f"  {'batch':>5} {'steps':>5} {'compile s':>9} {'ms/frame':>9} {'frames/s':>9} {'video f/s':>9} "
          f"{'token-passes/s':>15} {'peak GiB':>8} {'graphs':>6}", flush=True)
    last_s: dict[int, float] = {}
    for steps in run.family.engine_steps or plan.steps:  # every batch size at the first step count, then the next
        for batch in plan.batches:
            estimate = last_s.get(batch, max(last_s.values(), default=0.0))
            reason = run.room_for(estimate)
            row: dict[str, Any] = {"batch": batch, "steps": steps}
            if reason:
                row.update(status="skipped", reason=reason)
                out["settings"].append(row)
                print(f"  {batch:5d} {steps:5d} skipped: {reason}", flush=True)
                continue
            t0 = time.perf_counter()
            try:
                row.update(engine_setting(run, preset, speedups, batch, steps))
                row["status"] = "ok"
            except Exception as e:  # e.g. out of memory at the largest batch: keep the others
                traceback.print_exc()
                row.update(status="error", error=error_text(e))
            row["seconds"] = round(time.perf_counter() - t0, 2)
            last_s[batch] = row["seconds"]
            run.free()
            out["settings"].append(row)
            run.save("engine", out)
            if row["status"] == "ok":
                peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
                print(f"  {batch:5d} {steps:5d} {row['compile_s']:9.1f} {row['frame_ms']:9.1f} "
                      f"{row['frames_per_s']:9.1f} {row['video_frames_per_s']:9.1f} {row['token_passes_per_s']:15,.0f} "
                      f"{peak:>8} {row['graphs']:6d}", flush=True)
            else:
                print(f"  {batch:5d} {steps:5d} ERROR {row['error'][:200]}", flush=True)
    out["status"] = status_of(out["settings"])
    return out


def engine_setting(run: Run, preset: str, speedups: Speedups, batch: int, steps: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    engine = WorldEngine(f"preset:{preset}", device=run.device, dtype=run.dtype, batch_size=batch,
                         n_denoise_steps=steps, speedups=speedups, seed=0)
    run.sync()
    build_s = time.perf_counter() - t0
    run.reset_peak()  # the peak of generating, not of building (a float32 model first, then cast)
    first = time_frames(run, engine, 1)[0]  # compiles the denoising and the cache pass when compiled
    time_frames(run, engine, run.plan.warmup)
    per_frame = statistics.median(time_frames(run, engine, run.plan.frames))
    T = engine.config.tokens_per_frame
    return {
        "build_s": build_s, "compile_s": first - per_frame if speedups.compile else 0.0, "first_frame_s": first,
        "frame_ms": per_frame * 1e3, "frames_per_s": batch / per_frame,
        "video_frames_per_s": batch * engine.frames_per_latent / per_frame,
        "token_passes_per_s": batch * T * steps / per_frame, "peak_gib": run.peak_gib(), **run.compiled_graphs(),
    }


# ------------------------------------------------------------------------------------ part 3: env


def part_env(run: Run) -> dict[str, Any]:
    import gymnasium as gym

    import waypoint_gym  # noqa: F401  (registers Waypoint-v0 and Waypoint-1.5-v0)

    preset, env_id = run.preset, run.family.env_id
    dtype = str(run.dtype).removeprefix("torch.")
    out: dict[str, Any] = {"preset": preset, "env_id": env_id, "weights": "RANDOM", "dtype": dtype, "counts": []}
    with tempfile.TemporaryDirectory(prefix="waypoint-gpu-check-") as tmp:
        t0 = time.perf_counter()
        folder = run.family.write_checkpoint(Path(tmp) / "world", preset, run.args.quick, run.device, run.dtype)
        out["checkpoint_s"] = round(time.perf_counter() - t0, 2)
        out["autoencoder"] = run.family.describe_autoencoder(folder)
        run.free()
        print(f"  random checkpoint written in {out['checkpoint_s']:.1f} s", flush=True)
        print(f"  {'envs':>5} {'reset s':>8} {'first step s':>12} {'ms/step':>9} {'env steps/s':>12} "
              f"{'video f/s':>9} {'peak GiB':>8}", flush=True)
        last_s = 0.0
        for n in run.plan.env_counts:
            row: dict[str, Any] = {"envs": n}
            reason = run.room_for(last_s)
            if reason:
                row.update(status="skipped", reason=reason)
                out["counts"].append(row)
                print(f"  {n:5d} skipped: {reason}", flush=True)
                continue
            t0 = time.perf_counter()
            try:
                envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", model=folder,
                                    device=run.device, dtype=dtype)
                try:
                    row.update(env_steps(run, envs, n))
                finally:
                    envs.close()
                    del envs  # before the next count's envs are made
                row["status"] = "ok"
            except Exception as e:
                traceback.print_exc()
                row.update(status="error", error=error_text(e))
            row["seconds"] = last_s = round(time.perf_counter() - t0, 2)
            run.free()
            out["counts"].append(row)
            run.save("env", out)
            if row["status"] == "ok":
                peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
                print(f"  {n:5d} {row['reset_s']:8.2f} {row['first_step_s']:12.2f} {row['step_ms']:9.1f} "
                      f"{row['env_steps_per_s']:12.1f} {row['video_frames_per_s']:9.1f} {peak:>8}", flush=True)
            else:
                print(f"  {n:5d} ERROR {row['error'][:200]}", flush=True)
    out["status"] = status_of(out["counts"])
    return out


def env_steps(run: Run, envs, n: int) -> dict[str, Any]:
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(1 + run.plan.warmup + run.plan.env_steps)]
    t0 = time.perf_counter()
    envs.reset(seed=0)  # encodes the start frame and appends it: the cache pass compiles here on CUDA
    run.sync()
    reset_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    obs, *_ = envs.step(actions[0])  # the denoising pass compiles here on CUDA
    first_s = time.perf_counter() - t0
    for a in actions[1:1 + run.plan.warmup]:
        envs.step(a)
    times = []
    for a in actions[1 + run.plan.warmup:]:
        t0 = time.perf_counter()
        obs, *_ = envs.step(a)  # observations come back as numpy: the step ends synchronised
        times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    k = envs.unwrapped.engine.frames_per_latent  # video frames an env step covers (4 for Waypoint-1.5)
    return {"reset_s": reset_s, "first_step_s": first_s, "step_ms": step * 1e3, "env_steps_per_s": n / step,
            "frames_per_step": k, "video_frames_per_s": n * k / step, "obs_shape": list(obs.shape),
            "peak_gib": run.peak_gib(), **run.compiled_graphs()}


# ------------------------------------------------------------------------------------ part 6: autoencoder speed


def part_autoencoder(run: Run) -> dict[str, Any]:
    """TAEHV (Waypoint-1.5's video autoencoder, RANDOM weights) alone, one stream, in the run's dtype: ms per 4
    frames to encode, to decode, and the first decode after a reset (the warm-up: 4 decoder passes)."""
    out: dict[str, Any] = {"autoencoder": "TAEHV 1.5", "weights": "RANDOM", "streams": 1,
                           "dtype": str(run.dtype).removeprefix("torch."), "sizes": []}
    print(f"  {'video':>9} {'works at':>9} {'encode ms':>9} {'decode ms':>9} {'first decode ms':>15} {'peak GiB':>8}",
          flush=True)
    last_s = 0.0
    for video in run.plan.ae_sizes:
        row: dict[str, Any] = {"video": list(video)}
        reason = run.room_for(last_s)
        if reason:
            row.update(status="skipped", reason=reason)
            out["sizes"].append(row)
            print(f"  {video[0]}x{video[1]} skipped: {reason}", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            row.update(taehv_speed(run, video))
            row["status"] = "ok"
        except Exception as e:
            traceback.print_exc()
            row.update(status="error", error=error_text(e))
        row["seconds"] = last_s = round(time.perf_counter() - t0, 2)
        run.free()
        out["sizes"].append(row)
        run.save("autoencoder", out)
        size = f"{video[0]}x{video[1]}"
        if row["status"] == "ok":
            peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
            work = f"{row['working_size'][0]}x{row['working_size'][1]}"
            print(f"  {size:>9} {work:>9} {row['encode_ms']:9.1f} {row['decode_ms']:9.1f} "
                  f"{row['first_decode_ms']:15.1f} {peak:>8}", flush=True)
        else:
            print(f"  {size:>9} ERROR {row['error'][:200]}", flush=True)
    out["status"] = status_of(out["sizes"])
    return out


def taehv_speed(run: Run, video: tuple[int, int]) -> dict[str, Any]:
    """Medians of `ae_rounds` timed calls, after one untimed call of each (which also warms up CUDA's kernels)."""
    ae = random_taehv(auto_aspect_ratio=video in WORKING_SIZE, seed=1).to(run.device, run.dtype)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, *video, 3), dtype=np.uint8))
    frames = frames.to(run.device)  # on the device already, as the env's decoded frames are not: encode's own cost

    def timed(fn: Callable[[], Any], n: int) -> float:
        times = []
        for _ in range(n):
            run.sync()
            t0 = time.perf_counter()
            fn()
            run.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def first_decode() -> None:
        ae.reset()
        ae.decode(z)

    run.reset_peak()
    with torch.inference_mode():
        z = ae.encode(frames)
        encode = timed(lambda: ae.encode(frames), run.plan.ae_rounds)
        first_decode()
        first = timed(first_decode, max(1, run.plan.ae_rounds // 2))
        decode = timed(lambda: ae.decode(z), run.plan.ae_rounds)  # to uint8 numpy on the host, as the env does
    return {"working_size": list(ae.working_size(video)), "latent": list(z.shape), "encode_ms": encode * 1e3,
            "decode_ms": decode * 1e3, "first_decode_ms": first * 1e3, "peak_gib": run.peak_gib()}


# ------------------------------------------------------------------------------------ part 4: training


def random_world_data(cfg: WaypointConfig, keys: list[str], segments: int, length: int, seed: int = 0):
    """RANDOM latents and actions of the bundled world's shapes (speed does not depend on their values)."""
    rng = np.random.default_rng(seed)
    prompt = str(cfg.extra.get("default_prompt", "a world"))
    data = {
        "latents": rng.standard_normal((segments, length, *cfg.latent_shape), dtype=np.float32).astype(np.float16),
        "keys": (rng.random((segments, length, len(keys))) < 0.2).astype(np.uint8),
        "mouse": rng.standard_normal((segments, length, 2)).astype(np.float32),
        "prompt": np.array([prompt] * segments), "length": np.full(segments, length),
    }
    return data, [prompt]


def part_training(run: Run) -> dict[str, Any]:
    from waypoint_gym.training import WorldModelTraining, train_world_model

    cfg = WaypointConfig.from_yaml(BUNDLED_WORLD / "config.yaml")
    keys = list(cfg.extra.get("default_keys") or ["W", "A", "S", "D", "SPACE", "SHIFT"])
    recipe = WorldModelTraining()  # the recipe's defaults (the bundled world was trained with these shapes)
    data, captions = random_world_data(cfg, keys, segments=64, length=48)
    out: dict[str, Any] = {
        "config": str(BUNDLED_WORLD.relative_to(ROOT) / "config.yaml"), "clip_frames": recipe.clip_frames,
        "recipe_batch_size": recipe.batch_size, "data": "RANDOM latents of the bundled world's shape",
        "autocast": "bfloat16" if run.cuda else None, "batches": [],
    }
    warmup = run.plan.warmup
    print(f"  {'batch':>5} {'steps/s':>8} {'clips/s':>8} {'frames/s':>9} {'peak GiB':>8}", flush=True)
    last_s = 0.0
    for batch in run.plan.train_batches:
        row: dict[str, Any] = {"batch": batch}
        reason = run.room_for(last_s)
        if reason:
            row.update(status="skipped", reason=reason)
            out["batches"].append(row)
            continue
        t0 = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="waypoint-gpu-train-") as tmp:
                tc = dataclasses.replace(recipe, steps=warmup + run.plan.train_steps, batch_size=batch,
                                         device=str(run.device), log_every=1, ckpt_every=10**9)
                train_world_model(data, keys, captions, tmp, cfg, tc)
                log = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
            # `s` is the time since the loop began at the end of each step (the loss's .item() synchronises)
            timed = log[-1]["s"] - log[warmup - 1]["s"]
            sps = run.plan.train_steps / timed
            row.update(status="ok", steps_per_s=sps, clips_per_s=sps * batch, frames_per_s=sps * batch *
                       recipe.clip_frames, first_steps_s=log[warmup - 1]["s"], peak_gib=run.peak_gib(),
                       final_loss=log[-1]["loss"])
        except Exception as e:
            traceback.print_exc()
            row.update(status="error", error=error_text(e))
        row["seconds"] = last_s = round(time.perf_counter() - t0, 2)
        run.free()
        out["batches"].append(row)
        run.save("training", out)
        if row["status"] == "ok":
            peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
            print(f"  {batch:5d} {row['steps_per_s']:8.2f} {row['clips_per_s']:8.1f} {row['frames_per_s']:9.1f} "
                  f"{peak:>8}", flush=True)
        else:
            print(f"  {batch:5d} ERROR {row['error'][:200]}", flush=True)
    out["status"] = status_of(out["batches"])
    return out


# ------------------------------------------------------------------------------------ the run


PART_FUNCTIONS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "versions": part_versions, "parity": part_parity, "engine": part_engine, "env": part_env,
    "training": part_training, "autoencoder": part_autoencoder,
}
# The versions once, then each family's parts in its order (the cheap and telling first), family after family.


def schedule(families: list[Family], parts: list[str]) -> list[tuple[Family, str]]:
    """(family, part) in the order they run; `versions` belongs to the first family."""
    todo = [(families[0], "versions")] if "versions" in parts else []
    return todo + [(fam, p) for fam in families for p in fam.parts if p in parts]


def reserves(todo: list[tuple[Family, str]], need_s: dict[str, float], budget_s: float) -> list[float]:
    """Seconds each part keeps for the parts after it. When the budget covers every part's least share, all of the
    later parts' shares; else only those of its own family's later parts, so the first family is served first and
    the next runs in what is left."""
    fair = budget_s >= sum(need_s[p] for _, p in todo)
    return [sum(need_s[p] for fam, p in todo[i + 1:] if fair or fam is todo[i][0]) for i in range(len(todo))]


def headline(name: str, part: dict[str, Any]) -> str:
    """One line of the summary table."""
    if "reason" in part:  # skipped, or an error that stopped the part
        return part["reason"]
    if name == "versions":
        return f"{part['device']}; torch {part['torch']}, CUDA {part['cuda']}, driver {part['driver']}"
    if name == "parity":
        f32, bf16 = part.get("world_float32", {}), part.get("world_bfloat16", {})
        paths = [k.removeprefix("path_") for k, v in part.items() if k.startswith("path_") and isinstance(v, dict)
                 and v.get("ok") is False]
        text = (f"world fp32 {f32.get('max_abs_vs_fixture', float('nan')):.1e}, bf16 "
                f"{bf16.get('max_abs_vs_fixture', float('nan')):.1e} (max abs)")
        return text + (f"; failed: {', '.join(paths)}" if paths else "; every speed path within tolerance")
    if name == "engine":
        ok = [s for s in part["settings"] if s.get("status") == "ok"]
        if not ok:
            return "no setting ran"
        best = max(ok, key=lambda s: s["token_passes_per_s"])
        b1 = [s for s in ok if s["batch"] == 1]
        text = f"best {best['token_passes_per_s']:,.0f} token-passes/s (batch {best['batch']}, {best['steps']} steps)"
        if b1:
            text += f"; batch 1: {b1[0]['token_passes_per_s']:,.0f}"
            if part.get("frames_per_latent", 1) > 1:
                text += f", {b1[0]['frames_per_s']:.1f} latent = {b1[0]['video_frames_per_s']:.1f} video frames/s"
        return text
    if name == "env":
        ok = [c for c in part["counts"] if c.get("status") == "ok"]
        return ", ".join(f"{c['envs']} envs {c['env_steps_per_s']:.1f} steps/s" + (
            f" ({c['video_frames_per_s']:.1f} video frames/s)" if c.get("frames_per_step", 1) > 1 else "")
            for c in ok) or "no count ran"
    if name == "autoencoder":
        ok = [s for s in part["sizes"] if s.get("status") == "ok"]
        return "; ".join(f"{s['video'][0]}x{s['video'][1]}: encode {s['encode_ms']:.1f} ms, decode "
                         f"{s['decode_ms']:.1f} ms per 4 frames" for s in ok) or "no size ran"
    if name == "training":
        ok = [b for b in part["batches"] if b.get("status") == "ok"]
        return ", ".join(f"batch {b['batch']}: {b['steps_per_s']:.2f} steps/s, {b['clips_per_s']:.1f} clips/s"
                         for b in ok) or "no batch ran"
    return ""


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="the families' CPU-sized presets, fewer settings and frames")
    ap.add_argument("--family", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)} "
                                                                  "(default: all, in this order)")
    ap.add_argument("--preset", default=None, help="comma-separated presets of the engine and env parts, each for its "
                                                   "family (default: the families' own)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (each family "
                                                             "runs those it has)")
    ap.add_argument("--budget-s", type=float, default=None, help="seconds for the whole run, every family "
                                                                 "(default 480; quick 150)")
    ap.add_argument("--dtype", default=None, help="engine, env and training dtype (default bfloat16 on CUDA)")
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; quick aot_eager)")
    ap.add_argument("--compile-mode", default=None, help="inductor's mode (default: WorldEngine's, max-autotune on "
                                                         "CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=None, help="default benchmarks/results/gpu.json (quick: gpu_cpu_quick.json)")
    args = ap.parse_args(argv)

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    names = [f.strip() for f in args.family.split(",") if f.strip()]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown or not names:
        ap.error(f"unknown families {unknown or names}; choose from {list(FAMILIES)}")
    families = [FAMILIES[n] for n in FAMILIES if n in names]  # the table's order: Waypoint-1 first
    presets = {f.name: f.quick_preset if args.quick else f.preset for f in families}
    for name in (p.strip() for p in (args.preset or "").split(",") if p.strip()):
        try:
            model_type = preset_config(name).model_type
        except KeyError as e:
            ap.error(str(e))
        owner = [f for f in families if f.model_type == model_type]
        if not owner:
            ap.error(f"preset {name} is of the family {model_type}, which this run does not include")
        presets[owner[0].name] = name
    todo = schedule(families, parts)
    if not todo:
        ap.error(f"none of the parts {parts} belongs to the families {[f.name for f in families]}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device (use --device cpu --quick on a CPU)")
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    dtype = getattr(torch, args.dtype) if args.dtype else torch.bfloat16 if device.type == "cuda" else torch.float32
    backend = args.compile_backend or ("aot_eager" if args.quick else "inductor")
    speedups = Speedups(compile=True, compile_mode=args.compile_mode, compile_backend=backend)
    speedups.resolved(device)  # bad combinations fail here, not in the middle of the run
    budget = Budget(args.budget_s if args.budget_s is not None else 150.0 if args.quick else 480.0)
    out = Path(args.out or ROOT / "benchmarks" / "results" / ("gpu_cpu_quick.json" if args.quick else "gpu.json"))
    results: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/gpu.py", *(sys.argv[1:] if argv is None else argv)]),
        "device": str(device), "quick": args.quick, "families": [f.name for f in families], "presets": presets,
        "dtype": str(dtype).removeprefix("torch."), "compile_backend": backend,
        "compile_mode": speedups.resolved(device).compile_mode, "budget_s": budget.seconds,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "parts": {},
    }
    run = Run(args, families[0], presets, plan, device, dtype, speedups, budget, out, results)
    print(f"GPU check on {device} ({results['dtype']}, {', '.join(f'{n} ({p})' for n, p in presets.items())}"
          f"{', quick' if args.quick else ''}), budget {budget.seconds:.0f} s", flush=True)
    for (fam, name), reserve in zip(todo, reserves(todo, plan.need_s, budget.seconds)):
        run.family, run.reserve_s = fam, reserve
        key = fam.key(name)
        left = budget.left() - run.reserve_s
        if plan.need_s[name] and left < plan.need_s[name]:
            part = {"status": "skipped", "reason": f"needs about {plan.need_s[name]:.0f} s, {max(left, 0):.0f} s "
                                                    "left before the later parts' share"}
        else:
            print(f"[{budget.elapsed():6.1f} s] {key}", flush=True)
            t0 = time.perf_counter()
            try:
                part = PART_FUNCTIONS[name](run)
            except Exception as e:
                traceback.print_exc()
                part = {"status": "error", "reason": error_text(e)}
            part.setdefault("status", "ok")
            part["seconds"] = round(time.perf_counter() - t0, 2)
            run.free()
        if name != "versions":
            part["family"] = fam.name
        results["parts"][key] = part
        run.save()

    width = max(len(fam.key(name)) for fam, name in todo)
    print(f"\n{'part':<{width}} {'status':<8} {'seconds':>8}  result")
    for fam, name in todo:
        part = results["parts"][fam.key(name)]
        seconds = f"{part['seconds']:8.1f}" if "seconds" in part else f"{'-':>8}"
        print(f"{fam.key(name):<{width}} {part['status']:<8} {seconds}  {headline(name, part)}")
    print(f"wall {results['wall_s']:.1f} s; saved {out}")
    return 1 if any(results["parts"][fam.key(p)]["status"] in ("failed", "error") for fam, p in todo) else 0


if __name__ == "__main__":
    # The engine warns of RANDOM weights for every preset it builds; this check says so once, in its JSON. Set
    # here, not in main(), so that calling main() leaves the process's loggers as they were.
    logging.getLogger("waypoint_gym.engine.world_engine").setLevel(logging.ERROR)
    sys.exit(main())
