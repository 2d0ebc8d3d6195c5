"""Prompt encoders: text -> (embedding [N, P, Dp], pad mask [N, P]) for the model's cross-attention.

Waypoint-1 uses UMT5 (`T5PromptEncoder`). Worlds whose prompts come from a grammar use a small `CaptionEncoder`
trained together with the world model: words are looked up in a fixed vocabulary (unknown words map to <unk>),
given learned positions and passed through a two-layer MLP per token. A checkpoint names it with
`prompt_encoder_uri: prompt_encoder` (a folder beside `config.yaml` holding `prompt_encoder.yaml` and
`prompt_encoder.safetensors`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .loading import load_strict, require_files, resolve_uri

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


PAD, UNK = "<pad>", "<unk>"
CONFIG_FILE, WEIGHTS_FILE = "prompt_encoder.yaml", "prompt_encoder.safetensors"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class CaptionEncoder(nn.Module):
    """Captions of a small grammar -> (embedding [N, P, Dp], pad mask [N, P]), P = max_tokens words."""

    def __init__(self, vocab: list[str], embedding_dim: int, max_tokens: int = 8):
        super().__init__()
        self.vocab = [PAD, UNK] + [w for w in vocab if w not in (PAD, UNK)]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.embedding_dim, self.max_tokens = embedding_dim, max_tokens
        self.tok_emb = nn.Embedding(len(self.vocab), embedding_dim)
        self.pos_emb = nn.Parameter(torch.randn(max_tokens, embedding_dim) * 0.02)
        self.fc1 = nn.Linear(embedding_dim, 2 * embedding_dim)
        self.fc2 = nn.Linear(2 * embedding_dim, embedding_dim)

    @classmethod
    def for_captions(cls, captions: list[str], embedding_dim: int, max_tokens: int | None = None) -> CaptionEncoder:
        vocab = sorted({w for c in captions for w in words(c)})
        longest = max(len(words(c)) for c in captions)
        return cls(vocab, embedding_dim, max_tokens or longest)

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` outside the vocabulary (they are read as <unk>)."""
        return [w for w in words(text) if w not in self.index]

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> token ids [N, P] and pad mask [N, P] (True on padding); long captions are cut at P words."""
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, text in enumerate(texts):
            toks = [self.index.get(w, self.index[UNK]) for w in words(text)][: self.max_tokens] or [self.index[UNK]]
            ids[i, : len(toks)] = torch.tensor(toks)
        return ids.to(self.tok_emb.weight.device), ids.eq(0).to(self.tok_emb.weight.device)

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, pad = self.tokenize(texts)
        h = self.tok_emb(ids) + self.pos_emb  # [N, P, Dp]
        h = h + self.fc2(F.gelu(self.fc1(h)))
        return h * (~pad)[..., None], pad

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        conf = {"vocab": self.vocab[2:], "embedding_dim": self.embedding_dim, "max_tokens": self.max_tokens}
        (folder / CONFIG_FILE).write_text(yaml.safe_dump(conf, sort_keys=False))
        save_file({k: v.detach().float().contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS_FILE)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device="cpu", dtype=torch.float32) -> CaptionEncoder:
        folder = Path(folder)
        require_files(folder, [CONFIG_FILE, WEIGHTS_FILE])
        conf = yaml.safe_load((folder / CONFIG_FILE).read_text())
        enc = cls(conf["vocab"], conf["embedding_dim"], conf["max_tokens"])
        load_strict(enc, load_file(folder / WEIGHTS_FILE), what=str(folder / WEIGHTS_FILE))
        return enc.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_prompt_encoder(uri: str, checkpoint_dir: Path | None, device="cpu", dtype=torch.float32) -> PromptEncoder:
    """The encoder named by a checkpoint's `prompt_encoder_uri` (a folder beside the checkpoint, or a hub id)."""
    local = checkpoint_dir / uri if checkpoint_dir is not None else None
    if local is not None and (local / CONFIG_FILE).is_file():  # a caption encoder we trained
        return CaptionEncoder.from_pretrained(local, device=device, dtype=dtype)
    return T5PromptEncoder(str(local) if local is not None and local.is_dir() else uri, device=device, dtype=dtype)
