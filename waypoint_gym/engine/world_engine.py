"""WorldEngine: batched, cached, few-step generation of frames from a Waypoint-format checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from waypoint_gym.checks import is_int

from .config import WaypointConfig, preset_config
from .controls import CtrlInput, ctrl_input_vectors
from .kv_cache import KVCache
from .loading import (
    load_model_weights,
    load_strict,
    remap_waypoint15,
    require_files,
    resolve_checkpoint,
    resolve_model,
)
from .model import Conditioning, FrameInputs, WaypointModel
from .sampler import euler_denoise, sub_schedule
from .speedups import Speedups, attention_flex, conditioning_table, fuse_qkv, split_ctrl_fusion

log = logging.getLogger(__name__)

EnvIds = int | Sequence[int] | np.ndarray | torch.Tensor | None
# Controls of the selected envs: None (nothing pressed), one CtrlInput for all, a list of one each, or control
# vectors [n, n_buttons + 3] (`waypoint_gym.engine.controls.control_vectors` builds them from key and mouse arrays).
Controls = CtrlInput | Sequence[CtrlInput | None] | np.ndarray | torch.Tensor | None
PROMPT_CACHE_SIZE = 16  # encoded texts kept by set_prompt


def load_model(folder: Path, device="cpu", dtype=torch.float32) -> tuple[WaypointConfig, WaypointModel]:
    """A checkpoint folder (config.yaml + model.safetensors) -> config and model, loaded strictly."""
    require_files(folder, ["config.yaml"])
    cfg = WaypointConfig.from_yaml(folder / "config.yaml")
    state = load_model_weights(folder, device)
    if cfg.model_type == "waypoint-1.5":
        state = remap_waypoint15(state, cfg)
    with torch.device("meta"):
        model = WaypointModel(cfg)
    model = model.to_empty(device=device)
    model.init_buffers()
    load_strict(model, state, what=str(folder))
    return cfg, model.to(dtype).eval().requires_grad_(False)


def random_model(cfg: WaypointConfig | str, device="cpu", dtype=torch.float32, seed: int = 0) -> WaypointModel:
    """A model of RANDOM weights (tests and benchmarks only: it generates noise, not a world)."""
    cfg = preset_config(cfg) if isinstance(cfg, str) else cfg
    torch.manual_seed(seed)
    with torch.device(device):
        model = WaypointModel(cfg)
    with torch.no_grad():  # the default init leaves these at zero; give every parameter some signal
        for name, p in model.named_parameters():
            if p.ndim == 0 or name.endswith(("bias_in", "null_emb")):
                p.normal_(0, 0.5)
            elif name.startswith("warp_flow."):  # a flow of a latent pixel or so
                p.normal_(0, 0.1)
    return model.to(dtype).eval().requires_grad_(False)


def save_checkpoint(
    folder: str | os.PathLike, cfg: WaypointConfig, model: WaypointModel, dtype: torch.dtype | None = None
) -> Path:
    """Write config.yaml and model.safetensors in the public layout (shared tensors stored under every block)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_yaml(folder / "config.yaml")
    state = {k: v.detach().to(dtype or v.dtype).cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    return folder


def random_checkpoint(
    folder: str | os.PathLike, cfg: WaypointConfig | str, seed: int = 0, image_size: tuple[int, int] | None = None
) -> Path:
    """A checkpoint folder of RANDOM weights, clearly for tests and benchmarks only.

    With `image_size` (H, W) it also gets a random autoencoder in `folder/autoencoder` (its `ae_uri`),
    whose images are that size and whose latents are the model's, so image methods work.
    """
    cfg = preset_config(cfg) if isinstance(cfg, str) else cfg
    if image_size is not None and cfg.taehv_ae:  # Waypoint-1.5: a RANDOM TAEHV, whose frames are image_size
        from .taehv import random_taehv

        ae = random_taehv(cfg.auto_aspect_ratio, seed=seed + 1)
        if ae.video_size(cfg.latent_shape[1:]) != tuple(image_size):
            raise ValueError(f"image_size {image_size} is not what TAEHV makes of the latent {cfg.latent_shape[1:]} "
                             f"(auto_aspect_ratio={cfg.auto_aspect_ratio}): {ae.video_size(cfg.latent_shape[1:])}")
        ae.save_pretrained(Path(folder) / "autoencoder")
        cfg = WaypointConfig.from_dict({**cfg.to_dict(), "ae_uri": "autoencoder"})
    elif image_size is not None:
        from .autoencoder import Autoencoder, AutoencoderConfig

        C, h, w = cfg.latent_shape
        stages = int(math.log2(image_size[0] // h))
        if image_size[0] != h * 2**stages or image_size[1] != w * 2**stages:
            raise ValueError(f"image_size {image_size} is not a power-of-two multiple of the latent {h}x{w}")
        ae_cfg = AutoencoderConfig(
            channels=3, ch_0=16, ch_max=16 * 2 ** max(stages - 1, 0), encoder_blocks_per_stage=[1] * stages,
            decoder_blocks_per_stage=[1] * stages, latent_channels=C, skip_logvar=True,
            input_size=image_size, output_size=image_size,
        )
        torch.manual_seed(seed + 1)
        Autoencoder(ae_cfg).save_pretrained(Path(folder) / "autoencoder")
        cfg = WaypointConfig.from_dict({**cfg.to_dict(), "ae_uri": "autoencoder"})
    return save_checkpoint(folder, cfg, random_model(cfg, seed=seed))


PRESET_PREFIX = "preset:"
NO_PROMPT_15 = "this Waypoint-1.5 world has no prompt conditioning: it takes no prompt (leave the prompt None)"


class WorldEngine:
    """Generates frames for `batch_size` independent environments that share one model and one forward pass.

    Every environment has its own KV cache rows, frame index and prompt. Methods take `env_ids` (None for
    all, an int for one, or a sequence) and controls as one CtrlInput, one per selected environment, or an
    array of control vectors [n, n_buttons + 3]. Latents go in and out as float32 tensors; images as uint8
    HxWx3 numpy arrays. In a world with a video autoencoder (Waypoint-1.5, `frames_per_latent` 4) a latent frame
    is 4 video frames: `gen_frame` returns [(n,) 4, H, W, 3] and `append_frame` takes 4 frames or one image per
    env; each environment also has its own autoencoder streams, restarted by `reset`.
    """

    def __init__(
        self,
        model_uri: str | os.PathLike | None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 1,
        compile: bool | None = None,
        n_denoise_steps: int | None = None,
        speedups: Speedups | None = None,
        seed: int | None = None,
        prompt_guidance: float | None = None,
    ):
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}")
        if seed is not None and not is_int(seed):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.device = torch.device(device)
        self.dtype = dtype
        model_uri = resolve_model(model_uri)  # None: the bundled world; short names of published worlds
        if str(model_uri).startswith(PRESET_PREFIX):  # random weights of a published size, for benchmarks
            name = str(model_uri)[len(PRESET_PREFIX):]
            log.warning("building %s with RANDOM weights (benchmarking only)", name)
            self.folder = None
            self.config = preset_config(name)
            self.model = random_model(self.config, self.device, dtype, seed=0)
        else:
            self.folder = resolve_checkpoint(model_uri)
            self.config, self.model = load_model(self.folder, self.device, dtype)
        cfg = self.config
        self.sigmas = sub_schedule(cfg.scheduler_sigmas, n_denoise_steps)
        if prompt_guidance is None:  # the checkpoint's own choice (an extension of config.yaml), else none
            prompt_guidance = cfg.extra.get("prompt_guidance", 1.0)
        if not (isinstance(prompt_guidance, (int, float)) and not isinstance(prompt_guidance, bool)
                and math.isfinite(prompt_guidance) and prompt_guidance >= 0):
            raise ValueError(f"prompt_guidance must be a finite number >= 0, got {prompt_guidance!r}")
        # Classifier-free guidance on the prompt: 1 samples plainly, w > 1 pulls w times as hard toward the
        # prompt (one more model pass per denoising step).
        self.prompt_guidance = float(prompt_guidance)
        self.speedups = (speedups or Speedups(compile=compile)).resolved(self.device)
        if speedups is not None and compile is not None:
            self.speedups.compile = bool(compile)
        self.cache = KVCache(cfg, batch_size, self.device, dtype)
        # Worlds with last_frame_warp read each env's last stored latent (zeros before its first frame).
        self.last_latent = torch.zeros(batch_size, *cfg.latent_shape, device=self.device) if cfg.last_frame_warp \
            else None
        self.generator = torch.Generator(self.device)
        # Without a seed, fresh entropy (torch.seed() would also re-seed torch's global generator).
        self.generator.manual_seed(seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63))
        self.autoencoder = self._load_autoencoder()
        self._prompt_encoder: Callable | None = None
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # text -> (emb [P, Dp], pad [P])
        self._warned_words = False
        # Per-env prompt rows [B, P, Dp] (pad rows zero) and how many rows each env's prompt has.
        self.prompt_emb = torch.zeros(batch_size, 1, cfg.prompt_embedding_dim, device=self.device)
        self.prompt_rows = torch.ones(batch_size, dtype=torch.long, device=self.device)
        self._apply_speedups()

    # ------------------------------------------------------------------------------------ set-up

    def _load_autoencoder(self):
        uri = self.config.ae_uri
        if self.folder is None and self.config.taehv_ae and not uri:  # a 1.5 preset: TAEHV of RANDOM weights too
            from .taehv import random_taehv

            ae = random_taehv(self.config.auto_aspect_ratio, seed=1).to(self.device, self.dtype)
            return self._check_autoencoder(ae)
        if not uri:
            return None
        from .autoencoder import Autoencoder

        local = self.folder / uri if self.folder is not None else Path(uri)
        ae = Autoencoder.from_pretrained(local if local.exists() else uri, device=self.device, dtype=self.dtype,
                                         auto_aspect_ratio=self.config.auto_aspect_ratio)
        return self._check_autoencoder(ae)

    def _check_autoencoder(self, ae):
        """The autoencoder must be of the config's kind (taehv_ae) and give latents of the model's shape."""
        video = getattr(ae, "frames_per_latent", 1)
        if self.config.taehv_ae != (video > 1) or video != self.config.temporal_compression:
            raise ValueError(
                f"the config says taehv_ae={self.config.taehv_ae} and temporal_compression="
                f"{self.config.temporal_compression}, but ae_uri names an autoencoder of {video} frame(s) per latent"
            )
        if ae.latent_channels != self.config.channels:
            raise ValueError(f"ae_uri names an autoencoder of {ae.latent_channels} latent channels, but the model's "
                             f"latents have channels={self.config.channels}")
        if video > 1:
            ae.set_batch_size(self.batch_size)  # one stream per env
            self.video_size(ae)  # latents of the model's size must decode to frames the AE can make
        return ae

    def _apply_speedups(self) -> None:
        s = self.speedups
        if s.fused_qkv:
            fuse_qkv(self.model)
        if s.split_ctrl_fusion:
            split_ctrl_fusion(self.model)
        self._cond_table = conditioning_table(self.model, self.sigmas) if s.cached_conditioning else None
        if s.attention == "flex":
            self.cache.attention = attention_flex
        self._pass = s.compiled(self._forward)

    @property
    def batch_size(self) -> int:
        return self.cache.batch_size

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.config.latent_shape

    @property
    def frames_per_latent(self) -> int:
        """Video frames per latent frame, i.e. per generated step and per action (4 for Waypoint-1.5, else 1)."""
        return self.config.temporal_compression

    def video_size(self, ae=None) -> tuple[int, int]:
        """(H, W) of the frames this world's autoencoder makes from the model's latents."""
        ae = ae or self._require_autoencoder()
        if hasattr(ae, "video_size"):
            return ae.video_size(self.latent_shape[1:])
        return tuple(ae.output_size)

    @property
    def n_denoise_steps(self) -> int:
        return len(self.sigmas) - 1

    def frame_index(self, env_ids: EnvIds = None) -> np.ndarray:
        ids, _, _ = self._select(env_ids)
        frame = self.cache.frame if ids is None else self.cache.frame[ids]
        return frame.cpu().numpy()

    # ------------------------------------------------------------------------------------ state

    def reset(self, env_ids: EnvIds = None) -> None:
        """Forget the history of the selected environments; their next frame is frame 0. Prompts are kept."""
        ids, _, _ = self._select(env_ids)
        self.cache.reset(ids)
        if self.last_latent is not None:
            self.last_latent[slice(None) if ids is None else ids] = 0
        if self.autoencoder is not None and hasattr(self.autoencoder, "set_batch_size"):  # streaming (TAEHV)
            self.autoencoder.reset(None if ids is None else ids.cpu())

    def set_prompt(self, text: str | Sequence[str], env_ids: EnvIds = None) -> None:
        """Encode one prompt for all selected environments, or one prompt per selected environment.

        Encoded texts are cached (the latest PROMPT_CACHE_SIZE), so setting a prompt again costs no encoder pass.
        """
        ids, n, _ = self._select(env_ids)
        texts = [text] * n if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
        if texts is None or len(texts) != n or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"prompt must be a str or a list of {n} str (one per selected env), got {text!r}")
        if not self._uses_prompts():
            return
        rows = [self.encode_prompt(t) for t in texts]
        self.set_prompt_embedding(torch.stack([e for e, _ in rows]), torch.stack([p for _, p in rows]), env_ids)

    def encode_prompt(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A text's (embedding [P, Dp], pad mask [P]) from the prompt encoder, cached as in `set_prompt`."""
        if not isinstance(text, str):
            raise TypeError(f"a prompt must be a str, got {type(text).__name__}")
        if text not in self._prompt_cache:
            unknown = getattr(self.prompt_encoder, "unknown_words", lambda _: [])(text)
            if unknown and not self._warned_words:  # a caption encoder of a grammar: say what it knows, once
                vocab = sorted(set(self.prompt_encoder.vocab[2:]))
                log.warning("prompt %r has words this world never saw, read as unknown: %s; it knows: %s", text,
                            ", ".join(unknown), ", ".join(vocab))
                self._warned_words = True
            emb, pad = self.prompt_encoder([text])
            if len(self._prompt_cache) >= PROMPT_CACHE_SIZE:
                self._prompt_cache.pop(next(iter(self._prompt_cache)))
            self._prompt_cache[text] = (emb[0], pad[0])
        return self._prompt_cache[text]

    @property
    def prompt_encoder(self) -> Callable:
        """texts -> (embedding [N, P, Dp], pad mask [N, P]): the encoder the checkpoint names, loaded on first use."""
        if self._prompt_encoder is None:
            from .prompt import load_prompt_encoder

            uri = self.config.prompt_encoder_uri or "google/umt5-xl"
            self._prompt_encoder = load_prompt_encoder(uri, self.folder, self.device, torch.float32)
        return self._prompt_encoder

    @prompt_encoder.setter
    def prompt_encoder(self, encoder: Callable) -> None:
        """Use another encoder (a smaller or cached one); forgets the texts the old one encoded."""
        if not callable(encoder):
            raise TypeError(f"prompt_encoder must be callable texts -> (emb, pad), got {encoder!r}")
        self._prompt_encoder = encoder
        self._prompt_cache.clear()

    def set_prompt_embedding(self, emb, pad_mask=None, env_ids: EnvIds = None) -> None:
        """Set prompt embeddings directly: [P, Dp] for every selected env, or [n, P, Dp] one each; pad rows zeroed."""
        ids, n, _ = self._select(env_ids)
        if not self._uses_prompts():
            return
        Dp = self.config.prompt_embedding_dim
        emb = _as_float_tensor(emb, "prompt embedding", self.device)
        if not torch.isfinite(emb).all():
            raise ValueError("prompt embedding must be finite; it holds NaN or inf")
        if emb.ndim == 2:
            emb = emb[None].expand(n, -1, -1)
        if emb.ndim != 3 or emb.shape[0] != n or emb.shape[2] != Dp or emb.shape[1] < 1:
            raise ValueError(f"prompt embedding must be [P, {Dp}] or [{n}, P, {Dp}], got {tuple(emb.shape)}")
        P = emb.shape[1]
        if pad_mask is None:
            pad = torch.zeros(n, P, dtype=torch.bool, device=self.device)
        else:
            pad = torch.as_tensor(np.asarray(pad_mask) if not torch.is_tensor(pad_mask) else pad_mask)
            if pad.dtype != torch.bool:
                raise TypeError(f"pad_mask must be bool, got {pad.dtype}")
            pad = pad.to(self.device)
            pad = pad[None].expand(n, -1) if pad.ndim == 1 else pad
            if tuple(pad.shape) != (n, P):
                raise ValueError(f"pad_mask must be [P] or [{n}, P] with P = {P}, got {tuple(pad.shape)}")
        emb = emb * (~pad)[..., None]
        # Keep one buffer of the longest prompt; rows past an env's own length are masked out of its softmax.
        P_buf = self.prompt_emb.shape[1]
        if P > P_buf:
            grown = torch.zeros(self.batch_size, P, Dp, device=self.device)
            grown[:, :P_buf] = self.prompt_emb
            self.prompt_emb = grown
        sel = slice(None) if ids is None else ids
        rows = torch.zeros(n, self.prompt_emb.shape[1], Dp, device=self.device)
        rows[:, :P] = emb
        self.prompt_emb[sel] = rows
        self.prompt_rows[sel] = P

    def _uses_prompts(self) -> bool:
        if not self.config.prompt_conditioning and self.config.model_type == "waypoint-1.5":
            raise ValueError(NO_PROMPT_15)  # as the reference engine does; Waypoint-1 worlds warn, for compatibility
        if not self.config.prompt_conditioning:
            log.warning("this checkpoint has no prompt conditioning; the prompt is ignored")
            return False
        return True

    # ------------------------------------------------------------------------------------ frames

    @torch.inference_mode()
    def append_latent(self, latent, ctrl: Controls = None, env_ids: EnvIds = None) -> None:
        """Store known frames (e.g. seed frames) in the cache: one cache pass, no denoising."""
        ids, n, _ = self._select(env_ids)
        x = self._check_latent(latent, n, "latent")
        ctrl_vec = self._ctrl_vector(ctrl, n)
        self._cache_pass(x, self._frame_inputs(ctrl_vec, ids), ids)

    @torch.inference_mode()
    def gen_latent(self, ctrl: Controls = None, noise=None, env_ids: EnvIds = None,
                   generator: torch.Generator | None = None, store: bool = True):
        """Generate the next frame's latent of each selected env: few-step denoising, then its cache pass.

        With `store=False` the frame is not stored and the envs stay at it: a one-step prediction, to be
        followed by `append_latent` of the real frame (teacher forcing).
        """
        ids, n, single = self._select(env_ids)
        ctrl_vec = self._ctrl_vector(ctrl, n)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if noise is None:
            x = torch.randn((n, *self.latent_shape), generator=generator or self.generator, device=self.device)
        else:
            x = self._check_latent(noise, n, "noise")
        inputs = self._frame_inputs(ctrl_vec, ids)  # shared by the frame's denoising passes and its cache pass
        velocity = lambda x, i: self._pass(x, self._sigma(i, n), inputs)
        if self.prompt_guidance != 1.0 and self.config.prompt_conditioning:
            unguided = self._frame_inputs(ctrl_vec, ids, null_prompt=True)  # same frame, the null prompt
            w = self.prompt_guidance

            def velocity(x, i):  # classifier-free guidance on the prompt
                sigma = self._sigma(i, n)
                v_null = self._pass(x, sigma, unguided)
                return v_null + w * (self._pass(x, sigma, inputs) - v_null)
        x = euler_denoise(x, self.sigmas, velocity)
        if store:
            self._cache_pass(x, inputs, ids)
        return x[0].clone() if single else x.clone()

    def append_frame(self, img, ctrl: Controls = None, env_ids: EnvIds = None) -> None:
        """Encode uint8 image(s) HxWx3 / NxHxWx3 with the autoencoder and append them as frames.

        With a video autoencoder (Waypoint-1.5: `frames_per_latent` 4) one latent frame is 4 video frames: one env
        takes [4, H, W, 3], or one image [H, W, 3] repeated 4 times; n envs take [n, 4, H, W, 3], or [n, H, W, 3]
        (one image each, repeated). One control input conditions the 4 frames.
        """
        ids, n, single = self._select(env_ids)
        ae = self._require_autoencoder()
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            raise TypeError(f"frames must be uint8 images, got dtype {arr.dtype}")
        if self.frames_per_latent > 1:
            chunk = self._video_chunk(arr, n)  # [n, 4, H, W, 3]
            ctrl_vec = self._ctrl_vector(ctrl, n)  # checked before the autoencoder's streams move
            with torch.inference_mode():
                latent = ae.encode(chunk, env_ids=None if ids is None else ids.cpu()).float()
            self.append_latent(latent, ctrl_vec, env_ids)
            return
        if arr.ndim == 3 and n == 1:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[0] != n or arr.shape[-1] != 3:
            raise ValueError(f"frames must be HxWx3 (one env) or {n}xHxWx3 uint8, got shape {arr.shape}")
        with torch.inference_mode():
            latent = ae.encode(arr).float()
        self.append_latent(latent, ctrl, env_ids if not single else env_ids)

    def gen_frame(self, ctrl: Controls = None, env_ids: EnvIds = None, return_img: bool = True, noise=None,
                  generator=None):
        """Generate the next frame: a uint8 image (HxWx3, or NxHxWx3), or its latent when return_img is False.

        With a video autoencoder (`frames_per_latent` 4) the latent's 4 video frames: [4, H, W, 3] or [n, 4, H, W, 3].
        """
        ae = self._require_autoencoder() if return_img else None
        z = self.gen_latent(ctrl, noise, env_ids, generator)
        if not return_img:
            return z
        with torch.inference_mode():
            if self.frames_per_latent > 1:  # the latent's 4 video frames, [(n,) 4, H, W, 3]
                ids, _, _ = self._select(env_ids)
                return ae.decode(z.to(self.dtype), env_ids=None if ids is None else ids.cpu())
            return ae.decode(z.to(self.dtype))

    # ------------------------------------------------------------------------------------ passes

    def _sigma(self, step: int | None, n: int) -> tuple[torch.Tensor, Conditioning | None]:
        """The noise level of a denoising step (None: the cache pass at sigma 0) for n envs."""
        s = 0.0 if step is None else self.sigmas[step]
        sigma = torch.full((n,), s, device=self.device)
        if self._cond_table is None:
            return sigma, None
        c = self._cond_table[s]
        return sigma, Conditioning([m.expand(n, -1, -1, -1) for m in c.blocks], c.out.expand(n, -1, -1, -1))

    def _prompt(self, ids) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The selected envs' prompt rows [n, P, Dp], and which rows exist [n, P] when prompts differ in length."""
        if not self.config.prompt_conditioning:
            return None, None
        prompt = self.prompt_emb if ids is None else self.prompt_emb[ids]
        rows = self.prompt_rows if ids is None else self.prompt_rows[ids]
        if bool((rows == prompt.shape[1]).all()):
            return prompt, None
        return prompt, torch.arange(prompt.shape[1], device=self.device)[None] < rows[:, None]

    def _frame_inputs(self, ctrl_vec, ids, null_prompt: bool = False) -> FrameInputs:
        """Per-frame inputs of the selected envs (frozen ring plan, RoPE, control and prompt embeddings)."""
        prompt, prompt_mask = self._prompt(ids)
        plan = self.cache.plan(ids, commit=False)
        t = self.cache.frame if ids is None else self.cache.frame[ids]
        if null_prompt:  # the embedding the prompt was dropped to in training
            prompt, prompt_mask = self.model.null_prompt(self.model.prompt_cfg.null_emb.expand(len(t), 1, -1)), None
        last = None if self.last_latent is None else self.last_latent if ids is None else self.last_latent[ids]
        return self.model.frame_inputs(t, ctrl_vec, prompt, plan, self.cache, prompt_mask, last_frame=last)

    def _cache_pass(self, x, inputs: FrameInputs, ids) -> None:
        """The pass at sigma 0 that stores the frame's keys and values, then the move to the next frame."""
        committing = dataclasses.replace(inputs, plan=dataclasses.replace(inputs.plan, commit=True))
        self._pass(x, self._sigma(None, x.shape[0]), committing)
        self.cache.advance(committing.plan)
        if self.last_latent is not None:
            self.last_latent[slice(None) if ids is None else ids] = x

    def _forward(self, x, sigma_cond, inputs: FrameInputs) -> torch.Tensor:
        """One model pass for the selected envs; compiled as a whole (one graph per commit flag and selection)."""
        sigma, cond = sigma_cond
        return self.model(x, sigma, cond=cond, inputs=inputs).float()

    # ------------------------------------------------------------------------------------ input checks

    def _select(self, env_ids: EnvIds) -> tuple[torch.Tensor | None, int, bool]:
        """-> (index tensor or None for all, how many, whether results come back unbatched)."""
        B = self.batch_size
        if env_ids is None:
            return None, B, B == 1
        single = is_int(env_ids)
        ids = np.atleast_1d(np.asarray(env_ids.cpu() if torch.is_tensor(env_ids) else env_ids))
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"env_ids must be an int or a non-empty sequence of ints, got {env_ids!r}")
        if ids.min() < 0 or ids.max() >= B:
            raise IndexError(f"env_ids {ids.tolist()} out of range for batch_size {B}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"env_ids has duplicates: {ids.tolist()}")
        if len(ids) == B and (ids == np.arange(B)).all():
            return None, B, single
        return torch.as_tensor(ids, device=self.device), len(ids), single

    def _check_latent(self, latent, n: int, what: str) -> torch.Tensor:
        x = _as_float_tensor(latent, what, self.device)
        shape = self.latent_shape
        if x.ndim == 3 and n == 1:
            x = x[None]
        if tuple(x.shape) != (n, *shape):
            want = f"{list(shape)} or [{n}, {', '.join(map(str, shape))}]"
            raise ValueError(f"{what} must be {want}, got {list(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{what} contains NaN or inf")
        return x.clone()  # our own copy (an inference tensor here), so compiled passes see one kind of input

    def _video_chunk(self, arr: np.ndarray, n: int) -> np.ndarray:
        """Frames for append_frame with a video autoencoder -> [n, k, H, W, 3] (k = frames_per_latent)."""
        k = self.frames_per_latent
        if arr.ndim == 3 and n == 1:  # one image
            arr = arr[None]
        if arr.ndim == 4 and n == 1 and arr.shape[0] == k:  # one env's k frames
            arr = arr[None]
        elif arr.ndim == 4 and arr.shape[0] == n:  # one image per env, repeated k times
            arr = np.repeat(arr[:, None], k, axis=1)
        if arr.ndim != 5 or arr.shape[:2] != (n, k) or arr.shape[-1] != 3:
            one = f"[{k}, H, W, 3] or one image [H, W, 3] (repeated {k} times)"
            many = f"[{n}, {k}, H, W, 3] or [{n}, H, W, 3] (one image per env, repeated)"
            raise ValueError(
                f"this world encodes {k} video frames per latent frame: frames must be "
                f"{one if n == 1 else many}, got shape {arr.shape}"
            )
        H, W = self.video_size()
        if arr.shape[2:4] != (H, W):
            raise ValueError(f"frames must be {H}x{W} for this world's autoencoder, got {arr.shape[2]}x{arr.shape[3]}")
        return arr

    def _ctrl_vector(self, ctrl: Controls, n: int) -> torch.Tensor:
        """Controls of n envs -> [n, 2 + n_buttons + 1] = concat(mouse, multi-hot buttons, scroll sign)."""
        nb = self.config.n_buttons
        if isinstance(ctrl, (np.ndarray, torch.Tensor)):
            vec = _as_float_tensor(ctrl, "control vectors", self.device)
            if tuple(vec.shape) != (n, nb + 3):
                raise ValueError(f"control vectors must be [{n}, {nb + 3}] (n_buttons + 3), got {list(vec.shape)}")
            if not torch.isfinite(vec).all():
                raise ValueError("control vectors contain NaN or inf")
            buttons, scroll = vec[:, 2:-1], vec[:, -1]
            if not ((buttons == 0) | (buttons == 1)).all() or not ((scroll == 0) | (scroll.abs() == 1)).all():
                raise ValueError("control vectors hold buttons of 0 or 1 and a scroll sign of -1, 0 or 1 "
                                 "(columns 2..n_buttons+1 and the last)")
            return vec
        if ctrl is None or isinstance(ctrl, CtrlInput):
            ctrls = [ctrl] * n
        elif isinstance(ctrl, (list, tuple)):
            ctrls = list(ctrl)
        else:
            raise TypeError(f"controls must be CtrlInput, a list of them or control vectors, got {type(ctrl).__name__}")
        if len(ctrls) != n:
            raise ValueError(f"expected one CtrlInput or a list of {n} (one per selected env), got {len(ctrls)}")
        return torch.from_numpy(ctrl_input_vectors(ctrls, nb)).to(self.device)

    def _require_autoencoder(self):
        if self.autoencoder is None:
            raise RuntimeError(
                f"checkpoint {self.folder} has no ae_uri: it works in latent space only "
                "(use append_latent / gen_latent)"
            )
        return self.autoencoder


def _as_float_tensor(value, what: str, device) -> torch.Tensor:
    t = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
    if not (t.is_floating_point()):
        raise TypeError(f"{what} must be a floating-point array, got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.float32)
