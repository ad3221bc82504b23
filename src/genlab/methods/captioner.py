"""A LLaVA-style captioner (Liu et al. 2023, small) as a method on the one trainer (method.kind `captioner`).

Image x → the frozen image tower of a genlab CLIP run (`method.encoder`, copied into this run like latent_flow
copies its autoencoder): its final layer-normed patch tokens (the [CLS] token dropped), optionally average-pooled
`method.pool`×`method.pool` over the patch grid → P tokens (B, P, E) → the MLP projector → a prefix of P tokens
for a small causal LM (genlab.models.captioner). The sequence is [image tokens, <bos>, caption words, <eos>] and
the loss is next-token cross-entropy over the caption's words and <eos> only: the image positions (and <bos>'s
input, padding) carry no label. With probability `method.vqa` a training sequence is a visual question instead,
[image tokens, <bos>, question words ending in "?", answer, <eos>], scored on the answer and <eos>; the questions
are templates over what the caption states (`questions_of`: how many shapes, the colour of a named shape, the
shape of a named colour).

Stages (LLaVA's two, plus the pretrained LM LLaVA starts from): `stage: 0` trains the LM alone on the captions
and answers as text (no image; the "pretrained language model"); `stage: 1` trains the projector only (LM and
encoder frozen); `stage: 2` trains projector and LM (encoder frozen). `method.init: RUN` starts from a captioner
run of an earlier stage: all its weights (encoder, projector, LM) are copied and its encoder is used
(`method.encoder` is then ignored); only this run's weights are saved with it.

Decoding (`caption`): prefill [image tokens, <bos>, question] into a KV cache, then one token per LM call, greedy
(temperature 0) or drawn at a temperature with top-p (nucleus) filtering, until <eos> or the trained length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.constraints import NonEmpty, NonNegFloat, PositiveInt, Probability, TopP
from genlab.data.shapes import parse_caption
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.models.captioner import BOS, EOS, PAD, UNK, CaptionerConfig, CaptionerNet
from genlab.models.transformer import sample_logits


@dataclass
class CaptionerMethodConfig:
    kind: str = "captioner"
    stage: Literal[0, 1, 2] = 2  # 0: LM on text alone; 1: projector only; 2: projector + LM
    encoder: Annotated[str, NonEmpty()] = "runs/shapes-clip"  # a clip run: its image tower, frozen, copied here
    init: str = ""  # a captioner run of an earlier stage to start from (its encoder is used); "": random
    frozen: dict = field(default_factory=dict)  # the parts' recipes, recorded when the run is created
    pool: PositiveInt = 1  # average-pool the encoder's patch grid by this factor (fewer image tokens)
    vqa: Probability = 0.25  # share of training sequences that are a visual question and its answer
    temperature: NonNegFloat = 0.0  # decoding defaults; 0 is greedy
    top_p: TopP = 1.0


def questions_of(text: str) -> list[tuple[str, str]]:
    """(question, one-word answer) pairs that a shapes caption answers; [] outside the grammar."""
    scene = parse_caption(text)
    if scene is None:
        return []
    qa = [("how many shapes are there?", ("one", "two")[len(scene.shapes) - 1])]
    kinds, colours = [s.kind for s in scene.shapes], [s.colour for s in scene.shapes]
    for s in scene.shapes:
        if kinds.count(s.kind) == 1:
            qa.append((f"what colour is the {s.kind}?", s.colour))
        if colours.count(s.colour) == 1:
            qa.append((f"what shape is the {s.colour} object?", s.kind))
    return qa


def masked_loss(logits: Tensor, targets: Tensor, keep: Tensor) -> Tensor:
    """Mean cross-entropy of logits (B, N, V) against targets (B, N) over the positions where keep (B, N) is True."""
    return F.cross_entropy(logits[keep].float(), targets[keep])


class CaptionerMethod(Method):
    generates = False

    @classmethod
    def frozen_parts(cls, cfg: CaptionerMethodConfig) -> dict[str, tuple[str, str]]:
        return {"init": (cfg.init, "captioner")} if cfg.init else {"encoder": (cfg.encoder, "clip")}

    def __init__(self, cfg: CaptionerMethodConfig, model_cfg: CaptionerConfig, parts: dict | None = None):
        super().__init__()
        if model_cfg.kind != "captioner":
            raise GenlabError(f"method.kind=captioner needs model.kind=captioner, got {model_cfg.kind!r}")
        parts = parts or {}
        init = parts.get("init")
        clip = init.encoder if init is not None else parts.get("encoder")
        if clip is None:
            raise GenlabError("method.kind=captioner needs an image encoder: set method.encoder to a CLIP run")
        enc = clip.model.cfg
        for name in ("in_channels", "image_size"):
            ours = getattr(model_cfg, name)
            if ours is not None and ours != getattr(enc, name):
                raise GenlabError(
                    f"model.{name}={ours} but the encoder {cfg.encoder} was trained with {getattr(enc, name)}: "
                    "train the captioner on the CLIP's data"
                )
        grid = enc.image_size // enc.patch
        if grid % cfg.pool:
            raise GenlabError(f"method.pool={cfg.pool} must divide the encoder's {grid}x{grid} patch grid")
        self.cfg = cfg
        self.encoder = clip.requires_grad_(False).eval()
        self.net = CaptionerNet(model_cfg, encoder_width=enc.width, image_tokens=(grid // cfg.pool) ** 2)
        self.tokenizer = self.net.tokenizer
        if init is not None:
            self.start_from(init)
        trained = {0: (self.net.lm,), 1: (self.net.projector,), 2: (self.net.lm, self.net.projector)}[cfg.stage]
        self.net.requires_grad_(False)
        for module in trained:
            module.requires_grad_(True)

    def start_from(self, run: CaptionerMethod) -> None:
        """Copy every weight of an earlier-stage run (method.init); a GenlabError unless the networks match."""
        if run.net.cfg != self.net.cfg or run.cfg.pool != self.cfg.pool:
            raise GenlabError(
                f"method.init={self.cfg.init} has another model section or method.pool than this recipe: copy them"
            )
        self.load_state_dict(run.state_dict())

    def train(self, mode: bool = True) -> CaptionerMethod:
        super().train(mode)
        self.encoder.eval()
        return self

    # -- inputs

    @torch.no_grad()
    def image_tokens(self, x: Tensor) -> Tensor:
        """The frozen encoder's patch tokens (B, P, E) of images (B, C, H, W) in [-1, 1]."""
        tower = self.encoder.model.image
        x = x.to(device=tower.pos.device, dtype=tower.pos.dtype)
        h = tower.patchify(x).flatten(2).transpose(1, 2)  # (B, grid², E)
        h = torch.cat([tower.cls.expand(len(h), -1, -1), h], 1) + tower.pos  # (B, 1 + grid², E)
        for block in tower.blocks:
            h = block(h)
        h = tower.ln(h)[:, 1:]  # (B, grid², E)
        if self.cfg.pool > 1:
            b, n, e = h.shape
            side = int(round(n**0.5))
            grid = h.transpose(1, 2).reshape(b, e, side, side)
            h = F.avg_pool2d(grid, self.cfg.pool).flatten(2).transpose(1, 2)  # (B, P, E)
        return h

    def prompt_ids(self, question: str | None) -> list[int]:
        """<bos>, then the question's words (ending with "?") for a visual question."""
        if question is None:
            return [BOS]
        question = question.strip()
        if not question.endswith("?"):
            question += "?"
        return [BOS, *self.tokenizer.encode(question)]

    def training_rows(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, answer ids) per caption: the caption itself, or with probability `vqa` a question on it."""
        rows = []
        for text in texts:
            qa = questions_of(text) if self.cfg.vqa > 0 and float(torch.rand(())) < self.cfg.vqa else []
            if qa:
                question, answer = qa[int(torch.randint(len(qa), ()))]
                rows.append((self.prompt_ids(question), self.tokenizer.encode(answer)))
            else:
                rows.append((self.prompt_ids(None), self.tokenizer.encode(text)))
        return rows

    def text_batch(self, rows: list[tuple[list[int], list[int]]]) -> tuple[Tensor, Tensor, Tensor]:
        """(ids, targets, keep), each (B, T): ids = prompt + answer + <eos> padded with <pad> (cut to max_text);
        targets[j] = ids[j + 1]; keep marks the positions whose target is an answer word or the <eos>."""
        limit = self.net.cfg.max_text
        seqs = [(p + a + [EOS])[:limit] for p, a in rows]
        length = max(map(len, seqs))
        ids = torch.full((len(seqs), length), PAD, dtype=torch.long)
        keep = torch.zeros(len(seqs), length, dtype=torch.bool)
        for i, ((prompt, _), seq) in enumerate(zip(rows, seqs)):
            ids[i, : len(seq)] = torch.tensor(seq)
            keep[i, len(prompt) - 1 : len(seq) - 1] = True
        targets = torch.cat([ids[:, 1:], torch.full((len(seqs), 1), PAD, dtype=torch.long)], 1)
        return ids.to(self.device), targets.to(self.device), keep.to(self.device)

    def sequence(self, x: Tensor | None, rows: list[tuple[list[int], list[int]]]) -> tuple[Tensor, Tensor, Tensor]:
        """(logits (B, P + T, V), targets (B, P + T), keep (B, P + T)) of the whole sequence: image positions are
        never kept. Without images (x None, stage 0) there is no prefix (P = 0)."""
        ids, targets, keep = self.text_batch(rows)
        if x is None:
            return self.net(ids), targets, keep
        prefix = self.image_tokens(x)
        b, p = prefix.shape[:2]
        targets = torch.cat([torch.full((b, p), PAD, dtype=torch.long, device=ids.device), targets], 1)
        keep = torch.cat([torch.zeros(b, p, dtype=torch.bool, device=ids.device), keep], 1)
        return self.net(ids, prefix), targets, keep

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=captioner needs captioned images (data.kind: shapes)")
        rows = self.training_rows(list(batch["text"]))
        logits, targets, keep = self.sequence(None if self.cfg.stage == 0 else batch["x"], rows)
        loss = masked_loss(logits, targets, keep)
        acc = (logits[keep].argmax(-1) == targets[keep]).float().mean()
        return loss, {"loss": loss.detach(), "token_acc": acc.detach()}

    @torch.no_grad()
    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """`genlab eval`: the caption loss (nats per scored token, captions only) on n held-out images, and for
        stage 1-2 the greedy captions' checker scores (genlab.metrics.caption) and BLEU-4 against the grammar's
        captions of what the data's caption states."""
        from genlab.metrics.caption import caption_attributes, corpus_bleu, references

        if data.texts is None:
            raise GenlabError("the held-out data has no captions: a captioner is measured on captioned images")
        x, texts = data.x[: n or 200], list(data.texts[: n or 200])
        rows = [(self.prompt_ids(None), self.tokenizer.encode(t)) for t in texts]
        losses = []
        for i in range(0, len(texts), 100):
            logits, targets, keep = self.sequence(None if self.cfg.stage == 0 else x[i : i + 100], rows[i : i + 100])
            losses.append(float(masked_loss(logits, targets, keep)) * int(keep.sum()))
        count = sum(len(a) + 1 for _, a in rows)
        out = {"caption_loss": sum(losses) / count, "n": len(texts)}
        if self.cfg.stage == 0:
            return out
        with torch.random.fork_rng(devices=[]):
            caps = [c for i in range(0, len(x), 100) for c in self.caption(x[i : i + 100], temperature=0.0)]
        refs = [references(s) if (s := parse_caption(t)) is not None else [t] for t in texts]
        scores = caption_attributes(x, caps)
        return {**out, **{f"caption_{k}": v for k, v in scores.items()}, "bleu4": corpus_bleu(caps, refs)}

    # -- decoding

    @torch.no_grad()
    def decode(
        self,
        prefix: Tensor,
        prompt: Tensor,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """New token ids (B, n) after image tokens `prefix` (B, P, E) and `prompt` ids (B, T), one LM call per
        token through a KV cache; rows that ended carry on (their tokens after <eos> are ignored)."""
        cache = self.net.new_cache()
        logits = self.net(prompt, prefix, cache=cache)[:, -1]  # (B, V)
        room = self.net.seq_len - prefix.shape[1] - prompt.shape[1]
        banned = torch.tensor([PAD, UNK, BOS], device=logits.device)
        out, done = [], torch.zeros(len(prompt), dtype=torch.bool, device=logits.device)
        for step in range(room):
            logits = logits.float().index_fill(-1, banned, float("-inf"))
            token = sample_logits(logits, temperature=temperature, top_p=top_p, generator=generator)  # (B,)
            out.append(token)
            done |= token == EOS
            if bool(done.all()) or step == room - 1:
                break
            logits = self.net(token[:, None], cache=cache)[:, -1]
        return torch.stack(out, 1)

    @torch.no_grad()
    def caption(
        self,
        x: Tensor,
        *,
        questions: list[str | None] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """A caption (or, where questions[i] is given, an answer) for each image of x (N, C, H, W) in [-1, 1]."""
        if self.cfg.stage == 0:
            raise GenlabError("a stage-0 captioner is the text-only LM: caption with a stage 1 or 2 run")
        enc = self.encoder.model.cfg
        if x.dim() != 4 or tuple(x.shape[1:]) != (enc.in_channels, enc.image_size, enc.image_size):
            raise GenlabError(
                f"images must be (N, {enc.in_channels}, {enc.image_size}, {enc.image_size}) in [-1, 1] for this "
                f"captioner, got {tuple(x.shape)}"
            )
        temperature = self.cfg.temperature if temperature is None else temperature
        top_p = self.cfg.top_p if top_p is None else top_p
        if temperature < 0:
            raise GenlabError(f"--temperature must be >= 0 (0: greedy), got {temperature}")
        if not 0 < top_p <= 1:
            raise GenlabError(f"--top-p must be in (0, 1], got {top_p}")
        questions = [None] * len(x) if questions is None else list(questions)
        if len(questions) != len(x):
            raise GenlabError(f"give one question (or None) per image: {len(questions)} for {len(x)} images")
        for q in questions:
            if q is not None and (not q.strip() or self.tokenizer.unknown(q)):
                raise GenlabError(
                    f"the captioner cannot read the question {q!r}: ask one of its templates, e.g. 'what colour "
                    "is the circle?', 'what shape is the red object?', 'how many shapes are there?'"
                )
        prefix = self.image_tokens(x)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, q in enumerate(questions):
            groups.setdefault(tuple(self.prompt_ids(q)), []).append(i)
        texts: list[str] = [""] * len(x)
        for prompt, rows in groups.items():
            ids = torch.tensor(prompt, device=prefix.device)[None].expand(len(rows), -1)
            new = self.decode(prefix[rows], ids, temperature=temperature, top_p=top_p, generator=generator)
            for i, row in zip(rows, new.tolist()):
                texts[i] = self.tokenizer.decode(row)
        return texts

    def sample(self, n: int, **_) -> None:
        raise GenlabError("a captioner makes text from images, not images: use genlab caption IMAGE --run RUN")
