"""The headline experiment: PPO trained only in the dream versus PPO trained in the real game, both scored in
the real game, with the random and scripted agents as references (docs/results.md).

    python -m agents.headline --steps 50000 --out runs/agents --figure docs/images/results/learning_curves.png

Trains `ppo_dream` and `ppo_real` with the same settings (skipped where `--out/<name>/model.zip` exists),
evaluates every agent on the same held-out starts (agents/evaluate.py), plots the real-game learning curves
and writes `headline.json`: returns with 95% intervals, the dream-trained agent's share of the real-trained
agent's real-game return, and the training wall times.
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


def plot_curves(out: Path, figure: Path, references: dict[str, float]) -> None:
    """Real-game return against environment steps for both PPO runs, references as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for name, label in (("ppo_real", "PPO trained in the real game"), ("ppo_dream", "PPO trained in the dream")):
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
    p.add_argument("--out", type=Path, default=Path("runs/agents"))
    p.add_argument("--figure", type=Path, default=Path("docs/images/results/learning_curves.png"))
    args = p.parse_args(argv)
    common = ["--threads", str(args.threads)] if args.threads else []
    common += ["--model", args.model] if args.model else []
    for world in ("real", "dream"):
        if not (args.out / f"ppo_{world}" / "model.zip").exists():
            train.main(["--world", world, "--steps", str(args.steps), "--n-envs", str(args.n_envs),
                        "--out", str(args.out / f"ppo_{world}"), "--no-progress", *common])
    reports = {}
    policies = {"ppo_dream": args.out / "ppo_dream" / "model.zip", "ppo_real": args.out / "ppo_real" / "model.zip",
                "random": "random", "scripted": "scripted"}
    for name, policy in policies.items():
        reports[name] = evaluate.main([str(policy), "--episodes", str(args.episodes),
                                       "--out", str(args.out / "eval" / name), *common])
    trained = {w: json.loads((args.out / f"ppo_{w}" / "train.json").read_text()) for w in ("dream", "real")}
    real = {name: r["real"]["mean"] for name, r in reports.items()}
    headline = {
        "real_game_return": {name: {k: r["real"][k] for k in ("mean", "ci95", "n")} for name, r in reports.items()},
        "dream_return": {name: {k: r["dream"][k] for k in ("mean", "ci95", "n")}
                         for name, r in reports.items() if "dream" in r},
        "dream_trained_share_of_real_trained": real["ppo_dream"] / real["ppo_real"] if real["ppo_real"] else None,
        "training": {w: {k: t[k] for k in ("steps", "wall_s", "steps_per_s", "torch_threads")}
                     for w, t in trained.items()},
    }
    (args.out / "headline.json").write_text(json.dumps(headline, indent=2))
    references = {"random agent": real["random"], "scripted agent (game state)": real["scripted"]}
    plot_curves(args.out, args.figure, references)
    print(json.dumps(headline, indent=2))
    return headline


if __name__ == "__main__":
    main()
