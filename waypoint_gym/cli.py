"""The `waypoint-gym` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("waypoint_gym")


def rollout(args: argparse.Namespace) -> None:
    """Generate frames from a checkpoint with random controls; save frames (PNG) and latent statistics."""
    if args.checkpoint == "real":
        from waypoint_gym.worlds.arena import random_rollout as arena_rollout

        summary = arena_rollout(args.out, args.frames, args.batch_size, args.prompt, args.seed)
        print(f"{args.frames} frames x {summary['batch_size']} arenas in {summary['seconds']:.1f} s, "
              f"{summary['orbs']} orbs collected; saved to {args.out}")
        return
    from waypoint_gym.engine.rollout import random_rollout

    checkpoint = None if args.checkpoint == "dream" else args.checkpoint
    summary = random_rollout(checkpoint, args.out, args.frames, args.batch_size, args.steps, args.prompt,
                             args.device, args.seed)
    stats = summary["per_frame"]
    print(f"{args.frames} frames x {summary['batch_size']} envs in {summary['seconds']:.1f} s "
          f"({summary['frames_per_s']:.1f} frames/s); latent std first/last "
          f"{stats[0]['std']:.3f}/{stats[-1]['std']:.3f}; all finite: {all(s['finite'] for s in stats)}; "
          f"saved to {args.out}")


def _key_prob(text: str) -> tuple[str, float]:
    """`--key-prob` values: "S=0.4" -> ("S", 0.4)."""
    key, _, value = text.partition("=")
    try:
        if not key.strip():
            raise ValueError
        return key.strip().upper(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=P (e.g. S=0.4), got {text!r}") from None


def train_collect(args: argparse.Namespace) -> None:
    from waypoint_gym.training import collect_arena
    from waypoint_gym.training.collect import POLICY_SETTINGS

    policy = {name: getattr(args, name) for name in POLICY_SETTINGS if getattr(args, name) is not None}
    if "key_probs" in policy:
        policy["key_probs"] = dict(policy["key_probs"])
    meta = collect_arena(args.out, args.segments, segment_len=args.segment_len, n_envs=args.envs, seed=args.seed,
                         seek_prob=args.seek_prob, policy=policy, captions=args.prompt, workers=args.workers)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("captions", "captions_used")}, indent=2))


def train_autoencoder(args: argparse.Namespace) -> None:
    from waypoint_gym.training import train_autoencoder

    report = train_autoencoder(args.data, args.out, latent_channels=args.latent_channels, stages=args.stages,
                               ch_0=args.ch_0, ch_max=args.ch_max, blocks_per_stage=args.blocks_per_stage,
                               encoder=args.encoder, init_decoder=args.init_decoder,
                               adversarial_weight=args.adversarial_weight, adversarial_start=args.adversarial_start,
                               equivariance_weight=args.equivariance_weight,
                               equivariance_shift=args.equivariance_shift, equivariance_zoom=args.equivariance_zoom,
                               latent_equivariance_weight=args.latent_equivariance_weight,
                               steps=args.steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
                               time_limit=args.time_limit)
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}, indent=2))


def train_encode(args: argparse.Namespace) -> None:
    from waypoint_gym.engine import Autoencoder
    from waypoint_gym.training import encode_dataset

    ae = Autoencoder.from_pretrained(args.autoencoder, device=args.device)
    print(encode_dataset(ae, args.data, args.out))


def export_world(args: argparse.Namespace, model, encoder, keys: list[str]) -> None:
    from waypoint_gym.training.export import export_world as export

    export(args.export, model, encoder, keys, args.autoencoder, args.reward_head, args.default_prompt)
    print(f"exported {args.export}")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export", default=None, help="checkpoint folder to write")
    p.add_argument("--autoencoder", default=None, help="autoencoder folder to ship with the export")
    p.add_argument("--reward-head", default=None, help="reward head folder to ship with the export")
    p.add_argument("--default-prompt", default=None,
                   help="prompt of episodes that name none; also ships a WaypointArena start frame for it")


def train_world_model(args: argparse.Namespace) -> None:
    import yaml

    from waypoint_gym.engine import WaypointConfig
    from waypoint_gym.training import WorldModelTraining, train_world_model
    from waypoint_gym.training.data import world_model_data
    from waypoint_gym.training.world_model import write_report

    data, keys, captions = world_model_data(args.data, args.latents)
    cfg = WaypointConfig.from_dict(yaml.safe_load(Path(args.config).read_text()))
    tc = WorldModelTraining(steps=args.steps, batch_size=args.batch_size, clip_frames=args.clip_frames, lr=args.lr,
                            clean_context_prob=args.clean_context_prob, ctrl_init_scale=args.ctrl_init_scale,
                            start_frames=args.start_frames, init=args.init, device=args.device, seed=args.seed,
                            loss=args.loss, time_limit=args.time_limit, teacher_forcing=args.teacher_forcing,
                            rollout_context=args.rollout_context, predicted_context=args.predicted_context,
                            context_noise=args.context_noise, still_clips=args.still_clips,
                            compile=args.compile, optimizer=args.optimizer,
                            adversarial_weight=args.adversarial_weight, adversarial_start=args.adversarial_start,
                            adversarial_dreams=args.adversarial_dreams, dream_frames=args.dream_frames,
                            adversarial_actions=args.adversarial_actions,
                            discriminator_levels=args.discriminator_levels,
                            autoencoder=args.autoencoder)
    model, encoder = train_world_model(data, keys, captions, args.run, cfg, tc)
    ae = None
    if args.autoencoder:
        from waypoint_gym.engine import Autoencoder

        ae = Autoencoder.from_pretrained(args.autoencoder, device=args.device)
    print(json.dumps(write_report(args.run, model, encoder, data, keys, ae, min(8, args.clip_frames)), indent=2))
    if args.export:
        export_world(args, model, encoder, keys)


def train_self_forcing(args: argparse.Namespace) -> None:
    """Self-forcing with DMD: a few-step student of a diffusion-forcing teacher, on its own rollouts."""
    from waypoint_gym.training import SelfForcingTraining, train_self_forcing
    from waypoint_gym.training.data import world_model_data
    from waypoint_gym.training.export import load_teacher
    from waypoint_gym.training.self_forcing import write_report

    data, keys, captions = world_model_data(args.data, args.latents)
    teacher, encoder = load_teacher(args.teacher, captions, args.device)
    sigmas = [float(s) for s in args.sigmas.split(",")] if args.sigmas else [
        1.0 - i / args.student_steps for i in range(args.student_steps + 1)]
    tc = SelfForcingTraining(steps=args.steps, batch_size=args.batch_size, clip_frames=args.clip_frames,
                             student_sigmas=sigmas, lr=args.lr, critic_lr=args.critic_lr,
                             critic_steps=args.critic_steps, guidance=args.guidance, scoring=args.scoring,
                             seed=args.seed, device=args.device, time_limit=args.time_limit)
    student = train_self_forcing(data, keys, teacher, encoder, args.run, tc)
    report = write_report(args.run, teacher, student, encoder, data, keys)
    print(json.dumps({k: {m: round(float(np.mean(v)), 4) for m, v in d.items()} for k, d in report.items()}))
    if args.export:
        export_world(args, student, encoder, keys)


def train_reward_head(args: argparse.Namespace) -> None:
    from waypoint_gym.training import train_reward_head

    dreamed = dreamed_steps = None
    if args.open_loop and not args.world:
        raise SystemExit("--open-loop needs --world (the world whose dreams the head learns to read)")
    if args.world:  # the world's predictions of the recorded frames, as the head will read them
        from waypoint_gym.engine import WorldEngine
        from waypoint_gym.training.data import world_model_data
        from waypoint_gym.training.reward_head import one_step_latents, open_loop_latents

        data, keys, _ = world_model_data(args.data, args.latents, args.segments)
        engine = WorldEngine(args.world, device=args.device, batch_size=args.world_batch, seed=0)
        if args.open_loop:
            dreamed, dreamed_steps = open_loop_latents(engine, data["latents"], data, keys)
        else:
            dreamed = one_step_latents(engine, data["latents"], data, keys)
    report = train_reward_head(args.latents, args.data, args.out, steps=args.steps, device=args.device,
                               dreamed=dreamed, dreamed_by=args.world, dreamed_steps=dreamed_steps,
                               max_segments=args.segments)
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}, indent=2))


def evaluate_world(args: argparse.Namespace) -> None:
    from waypoint_gym.evaluation import evaluate_world

    report = evaluate_world(None if args.checkpoint == "dream" else args.checkpoint, args.out, n_worlds=args.worlds,
                            quick=args.quick, n_denoise_steps=args.steps, prompt_guidance=args.prompt_guidance)
    print((Path(args.out) / "world_eval.md").read_text() if (Path(args.out) / "world_eval.md").exists() else report)


def calibrate_reward_head(args: argparse.Namespace) -> None:
    """Choose the reward head's threshold on the world's own open-loop dreams and save the head with it."""
    from waypoint_gym.engine import WorldEngine
    from waypoint_gym.engine.reward_head import RewardHead, checkpoint_reward_head
    from waypoint_gym.evaluation import calibrate_reward_threshold

    engine = WorldEngine(None if args.checkpoint == "dream" else args.checkpoint, batch_size=args.worlds, seed=0)
    head = RewardHead.from_pretrained(args.head) if args.head else checkpoint_reward_head(engine.folder)
    if head is None:
        raise FileNotFoundError(f"{engine.folder} ships no reward_head/ folder; name one with --head")
    result = calibrate_reward_threshold(engine, head, args.rollouts, args.horizon)
    out = Path(args.out)
    if result["threshold"] is not None:
        head.config.reward_threshold = result["threshold"]
    head.save_pretrained(out)
    (out / "calibration.json").write_text(json.dumps(result, indent=2))
    summary = {k: result[k] for k in ("threshold", "precision", "recall", "f1", "events", "predicted")}
    print(json.dumps({**summary, "saved": result["saved"], "out": str(out)}, indent=2))
    if result["threshold"] is None:
        print("the head found no collection at any threshold: saved with its old threshold", file=sys.stderr)


def play(args: argparse.Namespace) -> None:
    """Play a world by hand in an OpenCV window (see waypoint_gym/play.py for the controls)."""
    from waypoint_gym.play import play as play_world

    print(json.dumps(play_world(args.world, args.prompt, args.record, args.fps, args.scale, args.seed)))


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, unless its help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if "default" in (action.help or "") or action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The `waypoint-gym` command line: subcommands, their options, help and defaults."""
    from waypoint_gym.engine.config import PRESETS

    presets = ", ".join(f"preset:{name}" for name in PRESETS)
    formatter = DefaultsFormatter
    parser = argparse.ArgumentParser(prog="waypoint-gym", description="Waypoint world models as Gymnasium envs",
                                     formatter_class=formatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: add_parser(*a, formatter_class=formatter, **kw)  # defaults in every --help

    p = sub.add_parser("rollout", help="generate frames of a world under random controls, to see that it runs")
    p.add_argument("checkpoint", nargs="?", default="dream",
                   help="'dream' (the bundled world), 'real' (WaypointArena-v0, the ground-truth game), a checkpoint "
                        f"folder, a hub id, or random weights of a published size: {presets}")
    p.add_argument("--frames", type=int, default=32, help="frames to generate in each env")
    p.add_argument("--batch-size", type=int, default=1, help="batch size")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--prompt", default=None, help="the prompt (default: the checkpoint's default_prompt)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default="runs/rollout", help="output folder")
    p.set_defaults(func=rollout)

    train = sub.add_parser("train", help="collect data and train a world (see docs/training.md)")
    stages = train.add_subparsers(dest="stage", required=True)
    add_stage = stages.add_parser
    stages.add_parser = lambda *a, **kw: add_stage(*a, formatter_class=formatter, **kw)
    p = stages.add_parser("collect", help="record exploration segments in WaypointArena-v0")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--segments", type=int, default=6000, help="segments to record")
    p.add_argument("--segment-len", type=int, default=48, help="frames per segment")
    p.add_argument("--envs", type=int, default=32, help="arena envs played at once")
    p.add_argument("--workers", type=int, default=1,
                   help="processes recording chunks at once (the same collection, sooner on many cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--seek-prob", type=float, default=0.4, help="share of segments that seek orbs")
    p.add_argument("--prompt", action="append", default=None,
                   help="caption of the recorded worlds (repeat for several; default: every caption of the grammar)")
    p.add_argument("--hold-mean", type=float, default=None, help="mean frames a key is held (default 6)")
    p.add_argument("--mouse-theta", type=float, default=None,
                   help="how fast the mouse forgets its last value, in (0, 1] (default 0.15)")
    p.add_argument("--mouse-sigma", type=float, default=None, help="the mouse's noise per frame (default 0.12)")
    p.add_argument("--turn-prob", type=float, default=None, help="chance per frame of a sharp turn (default 0.03)")
    p.add_argument("--idle-prob", type=float, default=None,
                   help="chance per frame that an idle spell (no key, no mouse) starts (default 0)")
    p.add_argument("--key-prob", dest="key_probs", action="append", type=_key_prob, default=None, metavar="KEY=P",
                   help="share of the time the policy presses KEY (repeat for several; default W=0.55 S=0.1 A=0.15 "
                        "D=0.15 SPACE=0.06 SHIFT=0.3)")
    p.set_defaults(func=train_collect)
    p = stages.add_parser("autoencoder", help="train an autoencoder of the Waypoint family on the frames")
    p.add_argument("--data", required=True, help="a collection folder (from `train collect`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--latent-channels", type=int, default=4, help="latent channels")
    p.add_argument("--stages", type=int, default=2, help="downsampling stages (each halves the size)")
    p.add_argument("--ch-0", type=int, default=16, help="channels of the first stage")
    p.add_argument("--ch-max", type=int, default=32, help="most channels of a stage")
    p.add_argument("--blocks-per-stage", type=int, default=1, help="residual blocks per stage (0: none)")
    p.add_argument("--encoder", default=None,
                   help="an autoencoder folder: train only a new decoder (--ch-0, --ch-max) for its frozen encoder")
    p.add_argument("--init-decoder", action="store_true",
                   help="with --encoder: start the decoder from that folder's own (same architecture), a fine-tune")
    p.add_argument("--adversarial-weight", type=float, default=0.0,
                   help="weight of a patch discriminator's adversarial term, balanced against the reconstruction "
                        "at the decoder's last layer (0: none; sharper texture, lower PSNR)")
    p.add_argument("--adversarial-start", type=int, default=0,
                   help="step at which the adversarial term starts (the discriminator trains from step 0)")
    p.add_argument("--equivariance-weight", type=float, default=0.0,
                   help="weight of the equivariance term: the decoder must turn a shifted or zoomed latent into the "
                        "same move of the frame, which makes the latent smooth enough to move (0: none)")
    p.add_argument("--equivariance-shift", type=float, default=0.125,
                   help="the term's largest shift, a fraction of the frame each way")
    p.add_argument("--equivariance-zoom", type=float, default=1.25, help="the term's largest zoom factor")
    p.add_argument("--latent-equivariance-weight", type=float, default=0.0,
                   help="weight of the term's latent part: the encoder must move its latent with the frame (0: none)")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--batch-size", type=int, default=32, help="batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; the run resumes where it stopped")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=train_autoencoder)
    p = stages.add_parser("encode", help="encode every recorded frame once, for world-model training")
    p.add_argument("--data", required=True, help="a collection folder (from `train collect`)")
    p.add_argument("--autoencoder", required=True, help="an autoencoder folder")
    p.add_argument("--out", required=True, help="a .npy file")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=train_encode)
    p = stages.add_parser("world-model", help="diffusion-forcing training, then export a checkpoint folder")
    p.add_argument("--data", required=True, help="a collection folder (from `train collect`)")
    p.add_argument("--latents", required=True, help="the collection's cached latents (.npy from `train encode`)")
    p.add_argument("--config", required=True, help="a Waypoint config.yaml for the model to train")
    p.add_argument("--run", required=True, help="run folder (resumed when it holds a train_state.pt)")
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--batch-size", type=int, default=16, help="batch size")
    p.add_argument("--clip-frames", type=int, default=12, help="frames per training clip")
    p.add_argument("--lr", type=float, default=4e-4, help="learning rate")
    p.add_argument("--clean-context-prob", type=float, default=0.5,
                   help="share of clips with clean context before a random cut, as at inference")
    p.add_argument("--teacher-forcing", action="store_true",
                   help="predict every frame of a clip from the clean frames before it, in one pass of the clip "
                        "and its noisy copy (about 1.7 times the cost of a step; --clean-context-prob is then unused)")
    p.add_argument("--rollout-context", type=float, default=0.0,
                   help="with --teacher-forcing: share of clips whose context frames the model first dreams itself "
                        "from the clip's first frame under its recorded controls (the open loop's context); the "
                        "targets stay the recorded frames")
    p.add_argument("--predicted-context", type=float, default=0.0,
                   help="with --teacher-forcing: share of clips whose context frames after the first are the world's "
                        "own samples of them, each drawn from the recorded frames before it (one step of the open "
                        "loop's error, in register with the recorded targets)")
    p.add_argument("--context-noise", type=float, default=0.05,
                   help="largest noise level of the context frames (each drawn uniformly below it and told to the "
                        "model as that frame's sigma), so the world learns not to take its context for exact")
    p.add_argument("--still-clips", type=float, default=0.0,
                   help="share of each step's clips (teacher-forced and dreamed) that hold one recorded frame with "
                        "nothing pressed, as the game's view stands while a player does; first in the batch, so the "
                        "rollout and predicted context shares cover them first")
    p.add_argument("--ctrl-init-scale", type=float, default=1.0,
                   help="scale of the initial control weights of the fusion layers (a new run only)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training pass: about 1.25x the steps/s on a CPU core, after a minute of "
                        "compiling at each start; not with --rollout-context")
    p.add_argument("--start-frames", type=int, default=0,
                   help="extra single frames per step trained from the prompt alone (an episode's first frame)")
    p.add_argument("--init", default=None,
                   help="a checkpoint folder to start from: its weights and caption encoder (fine-tuning)")
    p.add_argument("--loss", choices=["velocity", "x0", "x0_l1"], default="velocity",
                   help="the velocity error, or the clean frame's squared (x0) or absolute (x0_l1) error (for worlds "
                        "with prediction: x0)")
    p.add_argument("--optimizer", choices=["adamw", "muon"], default="adamw",
                   help="muon: the transformer blocks' weight matrices step by Muon, the rest by AdamW")
    p.add_argument("--adversarial-weight", type=float, default=0.0,
                   help="with an x0 loss and --autoencoder: weight of a patch discriminator's term on the decoded "
                        "clean-frame estimates of noisy frames beside their previous frame, balanced against the "
                        "x0 error's gradient")
    p.add_argument("--adversarial-start", type=int, default=0,
                   help="step at which the world takes the adversarial term (the discriminator trains from step 0)")
    p.add_argument("--adversarial-dreams", type=int, default=0,
                   help="with --adversarial-weight: the discriminator judges this many clips a step that the world "
                        "dreams itself, open loop from their first recorded frame through its sampler, instead of "
                        "one-step estimates")
    p.add_argument("--dream-frames", type=int, default=0,
                   help="frames of each dreamed clip, its recorded first frame included (0: --clip-frames)")
    p.add_argument("--adversarial-actions", action="store_true",
                   help="with --adversarial-dreams: the discriminator also reads each judged frame's controls "
                        "(a projection term), so a dream that does not follow its controls can score as fake")
    p.add_argument("--discriminator-levels", type=int, default=2,
                   help="stride-2 levels of the discriminator: 2 scores 26x26-pixel patches, 4 the whole frame")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; the run resumes where it stopped")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_export_args(p)
    p.set_defaults(func=train_world_model)
    p = stages.add_parser("self-forcing", help="self-forcing with DMD: distil a world model into a few-step student")
    p.add_argument("--data", required=True, help="a collection folder (from `train collect`)")
    p.add_argument("--latents", required=True, help="the collection's cached latents (.npy from `train encode`)")
    p.add_argument("--teacher", required=True,
                   help="checkpoint folder, or a world-model run's final.pt / train_state.pt (its config.json beside)")
    p.add_argument("--run", required=True, help="run folder (resumed when it holds a train_state.pt)")
    p.add_argument("--student-steps", type=int, default=2, help="denoising steps of the student (evenly spaced)")
    p.add_argument("--sigmas", default=None, help="the student's schedule instead, e.g. 1,0.6,0")
    p.add_argument("--steps", type=int, default=1000, help="training steps")
    p.add_argument("--batch-size", type=int, default=8, help="batch size")
    p.add_argument("--clip-frames", type=int, default=16, help="frames per training clip")
    p.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    p.add_argument("--critic-lr", type=float, default=1e-4, help="learning rate of the critic")
    p.add_argument("--critic-steps", type=int, default=2, help="critic updates per student update")
    p.add_argument("--guidance", type=float, default=1.5, help="classifier-free guidance of the teacher")
    p.add_argument("--scoring", choices=["joint", "context"], default="joint",
                   help="DMD scores: the clip noisy after its clean seed frame, or each frame from clean context")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; the run resumes where it stopped")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_export_args(p)
    p.set_defaults(func=train_self_forcing)
    p = stages.add_parser("reward-head", help="train the reward and termination head on cached latents")
    p.add_argument("--data", required=True, help="a collection folder (from `train collect`)")
    p.add_argument("--latents", required=True, help="the collection's cached latents (.npy from `train encode`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=3000, help="training steps")
    p.add_argument("--world", default=None,
                   help="a checkpoint: train on its one-step predictions of the frames (what a dreamed step shows)")
    p.add_argument("--world-batch", type=int, default=64, help="segments predicted at once with --world")
    p.add_argument("--open-loop", action="store_true",
                   help="with --world: train on its open-loop dreams (6 real frames, then 16 dreamed, window after "
                   "window) instead of its one-step predictions")
    p.add_argument("--segments", type=int, default=None,
                   help="use the collection's first N segments only (default: all); --world predicts only those")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=train_reward_head)

    p = sub.add_parser("evaluate-world", help="measure a learned world against WaypointArena-v0")
    p.add_argument("checkpoint", nargs="?", default="dream",
                   help="'dream' (the bundled world), a checkpoint folder or a hub id")
    p.add_argument("--out", default="runs/world_eval", help="output folder")
    p.add_argument("--worlds", type=int, default=16, help="worlds played at once (the engine's batch)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--prompt-guidance", type=float, default=None,
                   help="classifier-free guidance on the prompt (default: the checkpoint's, else 1: none)")
    p.add_argument("--quick", action="store_true", help="a few worlds and steps: a smoke test, not a measurement")
    p.set_defaults(func=evaluate_world)

    p = sub.add_parser("calibrate-reward-head",
                       help="choose the reward head's threshold on the world's own 16-step dreams from real starts")
    p.add_argument("checkpoint", nargs="?", default="dream",
                   help="'dream' (the bundled world), a checkpoint folder or a hub id")
    p.add_argument("--out", required=True, help="folder for the calibrated head and calibration.json")
    p.add_argument("--head", default=None, help="a reward head folder (default: the checkpoint's reward_head/)")
    p.add_argument("--rollouts", type=int, default=64, help="open-loop rollouts")
    p.add_argument("--worlds", type=int, default=16, help="rollouts played at once (the engine's batch)")
    p.add_argument("--horizon", type=int, default=16, help="dreamed steps per rollout")
    p.set_defaults(func=calibrate_reward_head)

    p = sub.add_parser("play", help="play a world with keyboard and mouse (dream, real, or a checkpoint)")
    p.add_argument("world", nargs="?", default="dream",
                   help="'dream' (the bundled world), 'real' (WaypointArena-v0), or a checkpoint folder or hub id")
    p.add_argument("--prompt", default=None, help="the world's caption (Enter in the window changes it)")
    p.add_argument("--record", default=None, help="save the session: a video file (.mp4) and an .npz beside it")
    p.add_argument("--fps", type=float, default=30.0, help="the most frames per second to show")
    p.add_argument("--scale", type=int, default=8, help="window pixels per frame pixel")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.set_defaults(func=play)

    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as error:
        if args.verbose:
            raise
        parser.exit(2, f"waypoint-gym {args.command}: error: {error}\n(-v shows the traceback)\n")


if __name__ == "__main__":
    main()
