"""benchmarks/gpu.py, the GPU path in one command, runs end to end on a CPU (`--device cpu --quick`) for both
families, Waypoint-1 and Waypoint-1.5, so the first lent GPU runs a script already known to work. What only CUDA
has (max-autotune, CUDA graphs, the flex attention kernel, peak memory) is not exercised here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT, fixture_dir

SCRIPT = ROOT / "benchmarks" / "gpu.py"
PATHS = ("fused_qkv", "cached_conditioning", "split_ctrl_fusion", "flex_attention", "all")  # --quick: no compile alone
WP1_PARTS = ["parity", "training", "engine", "env"]
WP15_PARTS = ["parity-1.5", "autoencoder-1.5", "engine-1.5", "env-1.5"]


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
    for name in ("waypoint-parity-a", "waypoint-ae-parity-a", "waypoint15-parity-a", "taehv-parity-a"):
        fixture_dir(name)  # skips, saying why, where the fixtures are absent
    # a budget a slow CI machine cannot run out of: this checks the figures; the budget has its own test below
    return run_check(tmp_path_factory.mktemp("gpu"), "--budget-s", "900", timeout=900)


def test_every_part_runs(quick):
    done, res = quick
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert list(res["parts"]) == ["versions", *WP1_PARTS, *WP15_PARTS]  # Waypoint-1 first, then 1.5
    assert {name: part["status"] for name, part in res["parts"].items()} == dict.fromkeys(res["parts"], "ok")
    assert all(part["seconds"] > 0 for part in res["parts"].values())
    assert {p["family"] for p in map(res["parts"].get, WP15_PARTS)} == {"waypoint-1.5"}
    assert res["presets"] == {"waypoint-1": "waypoint-cpu-small", "waypoint-1.5": "waypoint-1.5-cpu"}
    assert 0 < res["wall_s"] < res["budget_s"] == 900
    assert "autoencoder-1.5 ok" in done.stdout and "status    seconds  result" in done.stdout  # the printed table


@pytest.mark.parametrize("key,fixtures", [("parity", ["waypoint-parity-a", "waypoint-ae-parity-a"]),
                                          ("parity-1.5", ["waypoint15-parity-a", "taehv-parity-a"])])
def test_parity_within_the_fixtures_tolerances(quick, key, fixtures):
    parity = quick[1]["parts"][key]
    assert parity["fixtures"] == fixtures and parity["ok"]
    assert parity["world_float32"]["max_abs_vs_fixture"] < 1e-4
    ae = parity["autoencoder_float32"]
    assert ae["latent_max_abs"] < 1e-4 and ae["grey_levels_max"] <= 1
    for name in PATHS:
        path = parity[f"path_{name}"]
        atol = 1e-4 if path["speedups"]["compile"] else 2e-5
        assert path["ok"] and path["max_abs_vs_plain"] < atol and path["max_abs_vs_fixture"] < 1e-4, name
    assert parity["path_compile"]["status"] == "not run" and "--quick" in parity["path_compile"]["reason"]
    assert parity["path_all"]["speedups"]["compile_backend"] == "aot_eager"
    # the rollout's passes compile once each, not once per frame: what a GPU pays max-autotune for (the first
    # appended frame and the first denoising step build the attention masks inside the pass, so 4 graphs)
    assert parity["path_all"]["graphs"] == 4
    assert parity["path_all"]["speedups"]["attention"] == "flex" and parity["path_all"]["speedups"]["compile"]
    for name in ("world_bfloat16", "path_all_bfloat16"):  # reported, not judged: a real but small error
        assert 1e-4 < parity[name]["max_abs_vs_fixture"] and parity[name]["relative_vs_fixture"] < 0.05, name
    assert 0 < parity["autoencoder_bfloat16"]["latent_relative"] < 0.05


def test_taehv_parity_covers_both_files(quick):
    """taehv-parity-a's 64x128 stream and its 360p resize path, each judged (float32 matches exactly on a CPU)."""
    ae = quick[1]["parts"]["parity-1.5"]["autoencoder_float32"]
    for name in ("file_64x128", "file_360p"):
        assert ae[name]["latent_max_abs"] < 1e-4 and ae[name]["grey_levels_max"] <= 1, name
    bf16 = quick[1]["parts"]["parity-1.5"]["autoencoder_bfloat16"]
    assert "ok" not in bf16 and bf16["file_360p"]["latent_relative"] < 0.05


def test_speed_figures_are_positive_and_consistent(quick):
    parts = quick[1]["parts"]
    settings = parts["engine"]["settings"]
    assert parts["engine"]["preset"] == "waypoint-cpu-small"
    assert [(s["batch"], s["steps"]) for s in settings] == [(1, 4), (4, 4), (1, 2), (4, 2)]
    for s in settings:
        assert s["status"] == "ok" and s["frames_per_s"] > 0 and s["peak_gib"] is None  # peak memory: CUDA only
        assert s["token_passes_per_s"] == pytest.approx(s["frames_per_s"] * 64 * s["steps"])  # 64 tokens/frame
        assert s["video_frames_per_s"] == pytest.approx(s["frames_per_s"])  # one video frame per latent
    counts = parts["env"]["counts"]
    assert [c["envs"] for c in counts] == [4, 8]
    for c in counts:
        assert c["status"] == "ok" and c["env_steps_per_s"] > 0 and c["obs_shape"] == [c["envs"], 64, 64, 3]
    (train,) = parts["training"]["batches"]
    assert train["status"] == "ok" and train["steps_per_s"] > 0
    assert train["clips_per_s"] == pytest.approx(16 * train["steps_per_s"])


def test_waypoint15_speed_figures(quick):
    parts = quick[1]["parts"]
    engine = parts["engine-1.5"]
    assert engine["preset"] == "waypoint-1.5-cpu" and engine["frames_per_latent"] == 4
    assert [(s["batch"], s["steps"]) for s in engine["settings"]] == [(1, 4), (4, 4)]  # the 1.5 sigmas' 4 steps
    for s in engine["settings"]:
        assert s["status"] == "ok" and s["frames_per_s"] > 0 and s["peak_gib"] is None
        assert s["token_passes_per_s"] == pytest.approx(s["frames_per_s"] * 8 * 4)  # 8 tokens/frame, 4 steps
        assert s["video_frames_per_s"] == pytest.approx(4 * s["frames_per_s"])  # 4 video frames per latent
    env = parts["env-1.5"]
    assert env["env_id"] == "Waypoint-1.5-v0" and env["preset"] == "waypoint-1.5-cpu"
    assert env["autoencoder"]["kind"] == "TAEHV 1.5" and env["autoencoder"]["parameters"] == 11_372_012
    assert env["autoencoder"]["video"] == [64, 128]
    assert [c["envs"] for c in env["counts"]] == [4, 8]
    for c in env["counts"]:  # the observation is the last of a step's 4 decoded frames
        assert c["status"] == "ok" and c["obs_shape"] == [c["envs"], 64, 128, 3] and c["frames_per_step"] == 4
        assert c["video_frames_per_s"] == pytest.approx(4 * c["env_steps_per_s"]) and c["env_steps_per_s"] > 0
    (size,) = parts["autoencoder-1.5"]["sizes"]
    assert size["status"] == "ok" and size["video"] == size["working_size"] == [64, 128]
    assert size["latent"] == [32, 4, 8]
    assert 0 < size["encode_ms"] and 0 < size["decode_ms"] < size["first_decode_ms"]  # the first: 4 decoder passes


def test_versions(quick):
    import torch

    versions = quick[1]["parts"]["versions"]
    assert versions["torch"] == torch.__version__ and versions["device"] and versions["driver"] is None


def test_a_short_budget_skips_parts_with_a_reason_and_still_writes_the_json(tmp_path):
    done, res = run_check(tmp_path, "--budget-s", "1", "--parts", "versions,parity,engine", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(res["parts"]) == ["versions", "parity", "engine", "parity-1.5", "engine-1.5"]
    assert res["parts"]["versions"]["status"] == "ok"
    for name in ("parity", "engine", "parity-1.5", "engine-1.5"):
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


def test_both_families_share_the_budget_waypoint1_first(gpu_script):
    fams = list(gpu_script.FAMILIES.values())
    todo = gpu_script.schedule(fams, ["versions", "parity", "engine", "autoencoder"])
    assert [(f.name, p) for f, p in todo] == [("waypoint-1", "versions"), ("waypoint-1", "parity"),
                                              ("waypoint-1", "engine"), ("waypoint-1.5", "parity"),
                                              ("waypoint-1.5", "autoencoder"), ("waypoint-1.5", "engine")]
    need = {"versions": 0, "parity": 60, "engine": 90, "autoencoder": 20}
    # a budget that covers every share: each part keeps the shares of all later parts, 1.5's included
    assert gpu_script.reserves(todo, need, 480) == [320, 260, 170, 110, 90, 0]
    # one that does not: Waypoint-1 keeps only its own later parts' shares, and 1.5 runs in what is left
    assert gpu_script.reserves(todo, need, 200) == [150, 90, 0, 110, 90, 0]


def test_a_preset_goes_to_its_family(gpu_script, tmp_path):
    out = tmp_path / "v.json"
    assert gpu_script.main(["--device", "cpu", "--quick", "--parts", "versions", "--preset", "waypoint-1.5-360p",
                            "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["presets"] == {"waypoint-1": "waypoint-cpu-small", "waypoint-1.5": "waypoint-1.5-360p"}
    assert list(res["parts"]) == ["versions"]
    with pytest.raises(SystemExit):
        gpu_script.main(["--device", "cpu", "--family", "waypoint-1", "--preset", "waypoint-1.5-1b", "--out", str(out)])
