"""benchmarks/gpu.py, the GPU path in one command, runs end to end on a CPU (`--device cpu --quick`), so the
first lent GPU runs a script already known to work. What only CUDA has (max-autotune, CUDA graphs, the flex
attention kernel, peak memory) is not exercised here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT, fixture_dir

SCRIPT = ROOT / "benchmarks" / "gpu.py"
PATHS = ("fused_qkv", "cached_conditioning", "split_ctrl_fusion", "flex_attention", "compile", "all")


def run_check(tmp_path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WAYPOINT_FIXTURES": str(FIXTURES), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--threads", "1",
                           "--out", str(out), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    fixture_dir("waypoint-parity-a")  # skips, saying why, where the fixtures are absent
    fixture_dir("waypoint-ae-parity-a")
    # a budget a slow CI machine cannot run out of: this checks the figures; the budget has its own test below
    return run_check(tmp_path_factory.mktemp("gpu"), "--budget-s", "900", timeout=900)


def test_every_part_runs(quick):
    done, res = quick
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert list(res["parts"]) == ["versions", "parity", "training", "engine", "env"]
    assert {name: part["status"] for name, part in res["parts"].items()} == dict.fromkeys(res["parts"], "ok")
    assert all(part["seconds"] > 0 for part in res["parts"].values())
    assert 0 < res["wall_s"] < res["budget_s"] == 900
    assert "part      status" in done.stdout  # the printed table


def test_parity_within_the_fixtures_tolerances(quick):
    parity = quick[1]["parts"]["parity"]
    assert parity["world_float32"]["max_abs_vs_fixture"] < 1e-4
    ae = parity["autoencoder_float32"]
    assert ae["latent_max_abs"] < 1e-4 and ae["grey_levels_max"] <= 1
    for name in PATHS:
        path = parity[f"path_{name}"]
        atol = 1e-4 if path["speedups"]["compile"] else 2e-5
        assert path["ok"] and path["max_abs_vs_plain"] < atol and path["max_abs_vs_fixture"] < 1e-4, name
    assert parity["path_compile"]["speedups"]["compile_backend"] == "aot_eager"
    # the rollout's passes compile once each, not once per frame: what a GPU pays max-autotune for (the first
    # appended frame and the first denoising step build the attention masks inside the pass, so 4 graphs)
    assert parity["path_compile"]["graphs"] == parity["path_all"]["graphs"] == 4
    assert parity["path_all"]["speedups"]["attention"] == "flex" and parity["path_all"]["speedups"]["compile"]
    for name in ("world_bfloat16", "path_all_bfloat16"):  # reported, not judged: a real but small error
        assert 1e-4 < parity[name]["max_abs_vs_fixture"] and parity[name]["relative_vs_fixture"] < 0.05, name
    assert parity["autoencoder_bfloat16"]["latent_relative"] < 0.05


def test_speed_figures_are_positive_and_consistent(quick):
    parts = quick[1]["parts"]
    settings = parts["engine"]["settings"]
    assert [(s["batch"], s["steps"]) for s in settings] == [(1, 4), (4, 4), (1, 2), (4, 2)]
    for s in settings:
        assert s["status"] == "ok" and s["frames_per_s"] > 0 and s["peak_gib"] is None  # peak memory: CUDA only
        assert s["token_passes_per_s"] == pytest.approx(s["frames_per_s"] * 64 * s["steps"])  # 64 tokens/frame
    counts = parts["env"]["counts"]
    assert [c["envs"] for c in counts] == [4, 8]
    for c in counts:
        assert c["status"] == "ok" and c["env_steps_per_s"] > 0 and c["obs_shape"] == [c["envs"], 64, 64, 3]
    (train,) = parts["training"]["batches"]
    assert train["status"] == "ok" and train["steps_per_s"] > 0
    assert train["clips_per_s"] == pytest.approx(16 * train["steps_per_s"])


def test_versions(quick):
    import torch

    versions = quick[1]["parts"]["versions"]
    assert versions["torch"] == torch.__version__ and versions["device"] and versions["driver"] is None


def test_a_short_budget_skips_parts_with_a_reason_and_still_writes_the_json(tmp_path):
    done, res = run_check(tmp_path, "--budget-s", "1", "--parts", "versions,parity,engine", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert res["parts"]["versions"]["status"] == "ok"
    for name in ("parity", "engine"):
        assert res["parts"][name]["status"] == "skipped" and "s left" in res["parts"][name]["reason"]


@pytest.fixture(scope="module")
def gpu_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_float32_checks_switch_tf32_off_on_cuda_and_restore_it(gpu_script):
    import torch

    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [f.allow_tf32 for f in flags]
    try:
        for f in flags:
            f.allow_tf32 = True
        with gpu_script.exact_float32(torch.device("cuda")):  # flags only: no GPU needed
            assert [f.allow_tf32 for f in flags] == [False, False]
        assert [f.allow_tf32 for f in flags] == [True, True]
        with gpu_script.exact_float32(torch.device("cpu")):
            assert [f.allow_tf32 for f in flags] == [True, True]
    finally:
        for f, b in zip(flags, before):
            f.allow_tf32 = b


def test_a_part_with_a_skipped_or_failed_setting_says_so(gpu_script):
    assert gpu_script.status_of([{"status": "ok"}, {"status": "ok"}]) == "ok"
    assert gpu_script.status_of([{"status": "ok"}, {"status": "skipped"}]) == "partial"
    assert gpu_script.status_of([{"status": "skipped"}, {"status": "error"}]) == "error"
