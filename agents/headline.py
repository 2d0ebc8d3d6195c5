"""The headline experiment: PPO trained only in the dream versus PPO trained in the real game, both scored in
the real game, with the random and scripted agents as references (docs/results.md).

    python -m agents.headline --steps 51200 --starts runs/data/starts_mossy --out runs/agents \
        --figure docs/images/results/learning_curves.png

Trains `ppo_real` in the real game and `ppo_dream` in the dream for the same agent steps, and `ppo_dream_4x`
in the dream for `--dream-factor` (4) times as many (a factor of 0: no such run). Dreamed episodes are
`--horizon`-step imagined rollouts started from recorded real play (`--starts`), or from a map's first frame
without it. Evaluates every agent on the same held-out real starts (agents/evaluate.py). A run is skipped
where its `--out/<name>/model.zip` exists, an evaluation where its `eval.json` does. Then it plots the
real-game learning curves of all the runs in one figure and writes `headline.json`: returns with 95%
intervals, each dream-trained agent's share of the real-trained agent's real-game return, and the training
wall times.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `agents` importable from the repository root
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import evaluate, train


def plot_curves(out: Path, figure: Path, references: dict[str, float], runs: dict[str, str]) -> None:
    """Real-game return against environment steps of each run (folder name: label), references as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for name, label in runs.items():
        rows = list(csv.DictReader((out / name / "curve.csv").open()))
        steps = [int(r["steps"]) for r in rows]
        mean = [float(r["real_return"]) for r in rows]
        half = [float(r["real_ci95"]) for r in rows]
        ax.plot(steps, mean, marker="o", label=label)
        ax.fill_between(steps, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)], alpha=0.2)
    for (name, value), style in zip(references.items(), (":", "--")):
        ax.axhline(value, color="grey", linestyle=style, label=name)
    ax.set_xlabel("environment steps of training")
    ax.set_ylabel("return in the real game (orbs / 200 steps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--model", help="the dreamed world: a Waypoint checkpoint folder (default: the bundled world)")
    p.add_argument("--horizon", type=int, default=16, help="imagined steps per dreamed episode")
    p.add_argument("--starts", help="a folder of recorded real play to start dreamed episodes from")
    p.add_argument("--dream-factor", type=int, default=4, help="agent steps of ppo_dream_4x over the others (0: none)")
    p.add_argument("--out", type=Path, default=Path("runs/agents"))
    p.add_argument("--figure", type=Path, default=Path("docs/images/results/learning_curves.png"))
    args = p.parse_args(argv)
    common = ["--threads", str(args.threads)] if args.threads else []
    common += ["--model", args.model] if args.model else []
    dream = ["--horizon", str(args.horizon), *(["--starts", args.starts] if args.starts else [])]
    runs = {"ppo_real": ("real", args.steps, []), "ppo_dream": ("dream", args.steps, dream)}
    labels = {"ppo_real": "PPO trained in the real game", "ppo_dream": "PPO trained in the dream"}
    if args.dream_factor:
        longer = f"ppo_dream_{args.dream_factor}x"
        runs[longer] = ("dream", args.dream_factor * args.steps, dream)
        labels[longer] = f"PPO trained in the dream, {args.dream_factor}x the steps"
    for name, (world, steps, extra) in runs.items():
        if not (args.out / name / "model.zip").exists():
            train.main(["--world", world, "--steps", str(steps), "--n-envs", str(args.n_envs),
                        "--out", str(args.out / name), "--no-progress", *common, *extra])
    reports = {}
    policies = {**{name: args.out / name / "model.zip" for name in runs}, "random": "random", "scripted": "scripted"}
    for name, policy in policies.items():
        done = args.out / "eval" / name / "eval.json"
        report = json.loads(done.read_text()) if done.exists() else None
        if report is not None and report["episodes"] == args.episodes:  # evaluated already
            reports[name] = report
            continue
        reports[name] = evaluate.main([str(policy), "--episodes", str(args.episodes),
                                       "--out", str(args.out / "eval" / name), *common])
    trained = {name: json.loads((args.out / name / "train.json").read_text()) for name in runs}
    real = {name: r["real"]["mean"] for name, r in reports.items()}
    headline = {
        "real_game_return": {name: {k: r["real"][k] for k in ("mean", "ci95", "n")} for name, r in reports.items()},
        "dream_return": {name: {k: r["dream"][k] for k in ("mean", "ci95", "n")}
                         for name, r in reports.items() if "dream" in r},
        "dream_trained_share_of_real_trained": {name: real[name] / real["ppo_real"] if real["ppo_real"] else None
                                                for name in runs if name != "ppo_real"},
        "training": {name: {k: t.get(k) for k in ("steps", "wall_s", "steps_per_s", "torch_threads", "horizon",
                                                  "starts")} for name, t in trained.items()},
    }
    (args.out / "headline.json").write_text(json.dumps(headline, indent=2))
    references = {"random agent": real["random"], "scripted agent (game state)": real["scripted"]}
    plot_curves(args.out, args.figure, references, labels)
    print(json.dumps(headline, indent=2))
    return headline


if __name__ == "__main__":
    main()
