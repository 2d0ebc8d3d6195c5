"""Prompt encoders: text -> (embedding [N, P, Dp], pad mask [N, P]) for the model's cross-attention."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import torch

log = logging.getLogger(__name__)

UMT5_MAX_TOKENS = 512


class PromptEncoder(Protocol):
    embedding_dim: int

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings [N, P, Dp] with padding rows zeroed, and the pad mask [N, P] (True on padding)."""
        ...


class T5PromptEncoder:
    """The encoder half of a T5-family model through transformers (UMT5-XL for Waypoint-1), padded to 512 tokens."""

    def __init__(self, uri: str, device="cpu", dtype=torch.float32, max_tokens: int = UMT5_MAX_TOKENS):
        try:
            from transformers import AutoTokenizer, UMT5EncoderModel
        except ImportError as e:
            raise ImportError(
                f"prompt encoder {uri!r} needs the `prompt` extra: pip install 'waypoint-gym[prompt]'"
            ) from e
        from .loading import resolve_uri

        folder = resolve_uri(uri)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = UMT5EncoderModel.from_pretrained(folder, torch_dtype=dtype).to(device).eval()
        self.embedding_dim = self.model.config.d_model
        self.max_tokens, self.device = max_tokens, device

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(
            texts, padding="max_length", max_length=self.max_tokens, truncation=True, return_tensors="pt"
        ).to(self.device)
        emb = self.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
        pad = tok.attention_mask == 0
        return emb * (~pad)[..., None], pad


def load_prompt_encoder(uri: str, checkpoint_dir: Path | None, device="cpu", dtype=torch.float32) -> PromptEncoder:
    """The encoder named by a checkpoint's `prompt_encoder_uri` (a folder beside the checkpoint, or a hub id)."""
    local = checkpoint_dir / uri if checkpoint_dir is not None else None
    if local is not None and (local / "prompt_encoder.yaml").is_file():  # a caption encoder we trained
        from waypoint_gym.training.prompt_encoder import CaptionEncoder

        return CaptionEncoder.from_pretrained(local, device=device, dtype=dtype)
    return T5PromptEncoder(str(local) if local is not None and local.is_dir() else uri, device=device, dtype=dtype)
