"""Language models on one backbone (genlab.models.lm): autoregressive (`ar_lm`) and masked diffusion (`mdlm`).

Both read windows x = int64 (B, L) of token ids (genlab.data.text) over a vocabulary of V ids whose last two are
the specials of genlab.text.bpe: V−2 = <eos> (ends a document; also padding) and V−1 = <mask>. Neither model ever
puts probability on <mask> (its logit is −inf), so each conditional is a distribution over the V−1 other ids.
Likelihoods are in nats per window; divided by L·ln 2 they are bits per token, and by the data's UTF-8 bytes per
token on top of that, bits per byte.

ar_lm (causal backbone). p(x) = Π_i p(x_i | s, x_<i) with the start symbol s = <eos>: a window is read as if a
document had just ended, which is what <eos> means in the data. Loss = −(1/L) Σ_i log p(x_i | s, x_<i) (nats per
token); `log_likelihood` is that sum, exactly. Sampling draws one token per network call through the KV cache
(temperature, top-k, top-p), optionally after prompt ids.

mdlm (bidirectional backbone; MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025). Forward process: each token is
replaced by <mask> independently with probability t (the linear schedule α_t = 1 − t). The network sees x_t and
not t (with an absorbing mask the posterior of a masked token does not depend on t, as MDLM and LLaDA note) and
predicts every masked token. The continuous-time ELBO is
    −log p(x) ≤ E_{t~U(0,1]} E_{x_t} [(1/t) Σ_{i: x_t,i = <mask>} −log p_θ(x_i | x_t)]
and the loss (`loss_estimator="time"`, the default) is that integrand divided by L, with t drawn low-discrepancy
over the batch (t_b = 1 − frac(u + b/B), one u per batch) and kept in (eps, 1] so the 1/t weight stays finite.
Grouping masks by their size m gives
    −ELBO(x) = Σ_{m=1}^{L} (1/m) E_{|S|=m} Σ_{i∈S} −log p_θ(x_i | x with S masked)
(∫_0^1 t^{−1} C(L,m) t^m (1−t)^{L−m} dt = 1/m), the mean over uniformly random orders σ of the any-order
autoregressive log-likelihood −log Π_k p_θ(x_σ(k) | x_σ(<k)). So −ELBO/L = E_{m~U{1..L}} [mean over the m masked
tokens of −log p_θ]: `loss_estimator="count"` trains on that form (m low-discrepancy over the batch, exactly m
tokens masked, each weighted 1/m), the same expectation with bounded weights and less variance than 1/t.
`log_likelihood` estimates the ELBO with K draws per sequence: `estimator="count"` (default; LLaDA's form: m
stratified over {1..L}, weight L/m) or "time" (t stratified over (0, 1], weight 1/t); both are unbiased for the
bound, which the result is a noisy estimate of.

Sampling (LLaDA, low-confidence remasking): start from all <mask> after an optional kept prompt; in each of N steps
predict every masked position (argmax at temperature 0, else a draw at the temperature, top-k/top-p filtered),
keep the k predictions with the highest probability (`remasking="low_confidence"`) or k at random ("random")
and leave the rest masked, k following the linear schedule (the masked count falls evenly over the steps). With
`block_length` > 0 the generated span is filled block by block, left to right (semi-autoregressive), the steps
split evenly over the blocks. An unmasked token never changes. `infill` fills only the masked positions of given
sequences. Random remasking with N = L steps at temperature 1 draws exactly from the any-order mixture
(1/L!) Σ_σ Π_k p_θ(x_σ(k) | x_σ(<k)), whose log-probability the ELBO lower-bounds (Jensen).

SFT (LLaDA's supervised fine-tuning): a batch with "prompt_length" (B,) or "prompt_mask" (B, L) (True = prompt)
trains on the response only: the mdlm never masks prompt tokens and normalises each sequence by its response
length; the ar_lm averages next-token cross-entropy over response positions per sequence, then over the batch.
Instruction data (genlab.data.text, `format: instructions`) carries "prompt_length". `method.init: RUN` starts
from the weights of a pretrained run of the same kind, backbone and tokenizer: the run layer loads RUN as a frozen
part (genlab.runs) and the constructor copies its network's weights, then drops it (only the fine-tuned weights
are saved; a saved run rebuilds the part from its recorded recipe, untrained, and loads its own weights on top).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from torch import Tensor

from genlab.constraints import Count, Fraction, NonNegFloat, OneOf, PositiveInt, TopP
from genlab.errors import GenlabError
from genlab.methods.base import Method, no_options
from genlab.models.lm import TextTransformer
from genlab.models.transformer import sample_logits
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo
from genlab.text.bpe import BPETokenizer

REMASKING = ("low_confidence", "random")
ESTIMATORS = ("count", "time")
#: the SampleSettings the text models read
AR_LM_SETTINGS = frozenset({"temperature", "top_k", "top_p"})
MDLM_SETTINGS = frozenset({"steps", "temperature", "top_k", "top_p"})
MAX_ROWS = 256  # sequences per network call in log_likelihood
MAX_LOGITS = 2**25  # logits (rows × L × V) per network call when sampling


@dataclass
class ARLMConfig:
    kind: str = "ar_lm"
    tokenizer: dict = field(default_factory=dict)  # the data's tokenizer (genlab.text.bpe), filled by resolve
    init: str = ""  # a pretrained run folder (same kind, backbone, tokenizer) to start from (SFT); "": random
    frozen: dict = field(default_factory=dict)  # the init run's recipe, recorded when the run is created
    temperature: NonNegFloat = 1.0  # sampling defaults; temperature 0 is greedy
    top_k: Count = 0  # 0: all tokens
    top_p: TopP = 1.0


@dataclass
class MDLMConfig:
    kind: str = "mdlm"
    tokenizer: dict = field(default_factory=dict)  # the data's tokenizer (genlab.text.bpe), filled by resolve
    init: str = ""  # a pretrained run folder (same kind, backbone, tokenizer) to start from (SFT); "": random
    frozen: dict = field(default_factory=dict)  # the init run's recipe, recorded when the run is created
    loss_estimator: Annotated[str, OneOf(ESTIMATORS)] = "time"  # time: t ~ U(eps, 1]; count: m ~ U{1..L} masked
    eps: Fraction = 1e-3  # the time estimator draws t in (eps, 1]
    elbo_samples: PositiveInt = 16  # K Monte-Carlo draws per sequence of log_likelihood
    remasking: Annotated[str, OneOf(REMASKING)] = "low_confidence"  # sampling defaults
    block_length: Count = 0  # semi-autoregressive blocks of this many tokens; 0: the whole sequence at once
    temperature: NonNegFloat = 1.0  # 0: argmax predictions (LLaDA's default)
    top_k: Count = 0
    top_p: TopP = 1.0


def response_mask(batch: dict, shape: torch.Size, device) -> Tensor | None:
    """(B, L) bool, True at response tokens, from batch["prompt_length"] (B,) or batch["prompt_mask"] (B, L)
    (True = prompt); None when the batch has neither (every token is trained on)."""
    if batch.get("prompt_mask") is not None:
        return ~batch["prompt_mask"].to(device=device, dtype=torch.bool)
    if batch.get("prompt_length") is not None:
        lengths = batch["prompt_length"].to(device)
        return torch.arange(shape[1], device=device)[None] >= lengths[:, None]
    return None


def lowest(noise: Tensor, m: Tensor) -> Tensor:
    """(B, L) bool: in each row of noise (B, L), the m (B,) positions of lowest noise (a uniform choice of m
    positions when the noise is i.i.d.)."""
    return noise.argsort(1).argsort(1) < m[:, None]


def linear_schedule(left: Tensor, steps: int) -> Tensor:
    """(n, steps) int64: how many of each row's `left` (n,) masked tokens to unmask at each step, as even as
    possible (the first left % steps steps take one more), so the masked count falls linearly to 0."""
    base = (left // steps)[:, None].expand(-1, steps)
    extra = torch.arange(steps, device=left.device)[None] < (left % steps)[:, None]
    return base + extra.long()


class _TextLM(Method):
    """What both text methods share: the backbone, the special ids, prompts, decoding, `init` from a run."""

    makes_text = True

    @classmethod
    def frozen_parts(cls, cfg) -> dict[str, tuple[str, str]]:
        return {"init": (cfg.init, cfg.kind)} if cfg.init else {}

    def __init__(self, cfg, model_cfg, *, causal: bool, parts: dict | None = None):
        super().__init__()
        if model_cfg.kind != "lm":
            raise GenlabError(f"method.kind={cfg.kind} needs model.kind=lm, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.model = TextTransformer(model_cfg, causal=causal)
        self.vocab_size, self.seq_len = model_cfg.vocab_size, model_cfg.seq_len
        self.eos_id, self.mask_id = self.vocab_size - 2, self.vocab_size - 1  # genlab.text.bpe: specials last
        self._tokenizer = None
        if cfg.tokenizer and self.tokenizer.vocab_size != self.vocab_size:
            raise GenlabError(
                f"method.tokenizer has {self.tokenizer.vocab_size} ids but model.vocab_size={self.vocab_size}: "
                "remove model.vocab_size (it is filled from the data)"
            )
        if parts and "init" in parts:
            self.start_from(parts["init"])

    def start_from(self, run: _TextLM) -> None:
        """Copy the weights of `run`'s network (method.init); a GenlabError unless backbone and tokenizer match."""
        if run.cfg.tokenizer != self.cfg.tokenizer:
            raise GenlabError(
                f"method.init={self.cfg.init} was trained with another tokenizer: use its data section (source, "
                "seed, merges)"
            )
        theirs, ours = run.model.state_dict(), self.model.state_dict()
        if {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in ours.items()}:
            raise GenlabError(
                f"method.init={self.cfg.init} has another backbone than this recipe's model section: copy its model "
                "section and data.seq_len"
            )
        self.model.load_state_dict(theirs)

    @property
    def tokenizer(self) -> BPETokenizer:
        """The data's BPETokenizer, rebuilt from cfg.tokenizer."""
        if self._tokenizer is None:
            if not self.cfg.tokenizer:
                raise GenlabError(
                    f"this {self.kind} run holds no tokenizer (method.tokenizer is empty): train on text data"
                )
            self._tokenizer = BPETokenizer.from_dict(self.cfg.tokenizer)
        return self._tokenizer

    def decode_text(self, ids: Tensor, *, eos: str = "") -> list[str]:
        """The text of each row of ids (n, L): specials dropped, `eos` written where an <eos> ended a document."""
        rows = ids.tolist() if isinstance(ids, Tensor) else [list(r) for r in ids]
        out = []
        for row in rows:
            docs, cur = [], []
            for i in row:
                if i == self.eos_id:
                    docs.append(cur)
                    cur = []
                else:
                    cur.append(i)
            out.append(eos.join(self.tokenizer.decode(d) for d in [*docs, cur]))
        return out

    def logits(self, tokens: Tensor, **kw) -> Tensor:
        """The backbone's logits (float32, <mask> at −inf): every conditional is over the V−1 other ids."""
        logits = self.model(tokens, **kw).float()
        return logits.index_fill(-1, torch.tensor([self.mask_id], device=logits.device), float("-inf"))

    def check_tokens(self, x: Tensor, what: str = "x") -> Tensor:
        """x as int64 (B, L) on the method's device; a GenlabError unless 1 <= L <= seq_len and every id is a
        text token or <eos>."""
        if x.dim() != 2 or x.dtype.is_floating_point or not 1 <= x.shape[1] <= self.seq_len:
            raise GenlabError(
                f"{what} must be int64 token ids (B, L) with 1 <= L <= {self.seq_len}, got {tuple(x.shape)}"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > self.eos_id):
            raise GenlabError(f"{what} holds ids outside [0, {self.eos_id}] (<mask> included): wrong tokenizer?")
        return x.long().to(self.device)

    def prompt_tensor(self, prompt_ids: Any, n: int) -> Tensor:
        """(n, P) int64 prompt from ids (P,) shared by all rows or (n, P); an empty (n, 0) for None."""
        if prompt_ids is None:
            return torch.zeros(n, 0, dtype=torch.long, device=self.device)
        p = torch.as_tensor(prompt_ids, dtype=torch.long)
        p = p[None].expand(n, -1) if p.dim() == 1 else p
        if p.dim() != 2 or p.shape[0] != n:
            raise GenlabError(f"prompt_ids must be (P,) or ({n}, P) token ids, got shape {tuple(p.shape)}")
        if p.shape[1] > self.seq_len:
            raise GenlabError(f"the prompt has {p.shape[1]} tokens but sequences hold {self.seq_len}: shorten it")
        return self.check_tokens(p, "prompt_ids") if p.shape[1] else p.to(self.device)

    def options(self, settings: SampleSettings, names: frozenset[str]) -> dict:
        """The sampling settings `names` of `settings`, each None one from the method config."""
        return {k: getattr(self.cfg, k) if v is None else v for k, v in settings.as_dict(names).items()}


class ARLMMethod(_TextLM):
    likelihood = "exact"
    sample_settings = AR_LM_SETTINGS
    sampled_by = "ancestral sampling (one token per pass, KV cache)"

    def __init__(self, cfg: ARLMConfig, model_cfg, parts: dict | None = None):
        super().__init__(cfg, model_cfg, causal=True, parts=parts)

    def token_log_probs(self, x: Tensor) -> Tensor:
        """(B, L) log p(x_i | <eos>, x_<i), float32, differentiable."""
        start = torch.full_like(x[:, :1], self.eos_id)
        logp = self.logits(torch.cat([start, x[:, :-1]], 1)).log_softmax(-1)  # (B, L, V)
        return logp.gather(-1, x[..., None]).squeeze(-1)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        logp = self.token_log_probs(x)
        resp = response_mask(batch, x.shape, x.device)
        if resp is None:
            nll = -logp.mean()
        else:  # SFT: mean over each sequence's response tokens, then over the batch
            nll = (-torch.where(resp, logp, 0.0).sum(1) / resp.sum(1).clamp(min=1)).mean()
        return nll, {"loss": nll.detach(), "bits_per_token": nll.detach() / math.log(2)}

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, cond: Any = None, *, stats: dict | None = None, **opts) -> Tensor:
        """Exact log p(x) = Σ_i log p(x_i | <eos>, x_<i) in nats per sequence, (B,)."""
        no_options(self, opts)
        x = self.check_tokens(x)
        if stats is not None:
            stats.update(nfe=1, estimator="exact (one causal pass)")
        return torch.cat([self.token_log_probs(c).sum(1) for c in x.split(MAX_ROWS)])

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: Any = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        prompt_ids: Any = None,
    ) -> Samples:
        """n sequences (n, seq_len) int64, the prompt (if any) first, then one token per cached pass."""
        if cond is not None:
            raise GenlabError(f"{self.kind} is unconditional: pass prompt_ids instead of cond")
        opts = self.options(settings, AR_LM_SETTINGS)
        tokens = self.prompt_tensor(prompt_ids, n)
        cache = self.model.new_cache()
        step = torch.cat([torch.full((n, 1), self.eos_id, dtype=torch.long, device=self.device), tokens], 1)
        total = self.seq_len - tokens.shape[1]
        for i in range(total):
            logits = self.logits(step, cache=cache)[:, -1]  # (n, V)
            step = sample_logits(logits, generator=generator, **opts)[:, None]
            tokens = torch.cat([tokens, step], 1)
            if callback is not None:
                callback(StepInfo(step=i, total=total, t=None, x_t=tokens, x_hat=None))
        return Samples(tokens, total, self.sampled_by)


class MDLMMethod(_TextLM):
    likelihood = "bound"
    sample_settings = MDLM_SETTINGS
    sampled_by = "masked-diffusion unmasking (LLaDA remasking, one pass per step)"

    def __init__(self, cfg: MDLMConfig, model_cfg, parts: dict | None = None):
        super().__init__(cfg, model_cfg, causal=False, parts=parts)

    # -- the forward process and the ELBO

    def strata(self, b: int, device) -> Tensor:
        """(b,) low-discrepancy u_j = frac(u + j/b) in [0, 1), one u ~ U[0, 1) (global RNG) per batch."""
        return (torch.rand((), device=device) + torch.arange(b, device=device) / b) % 1

    def draw_t(self, b: int, device) -> Tensor:
        """(b,) times in (eps, 1], low-discrepancy: t_j = eps + (1 − eps)(1 − u_j)."""
        return self.cfg.eps + (1 - self.cfg.eps) * (1 - self.strata(b, device))

    def nelbo_terms(self, x: Tensor, masked: Tensor, weight: Tensor) -> Tensor:
        """(B,) Σ_{i masked} −log p_θ(x_i | x_t) · weight, x_t = x with `masked` (B, L) replaced by <mask>."""
        x_t = torch.where(masked, self.mask_id, x)
        logp = self.logits(x_t).log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)  # (B, L)
        return -torch.where(masked, logp, 0.0).sum(1) * weight

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        """−ELBO per (response) token, estimated as cfg.loss_estimator says (see the module docstring)."""
        x = batch["x"]
        resp = response_mask(batch, x.shape, x.device)
        length = (
            torch.full((x.shape[0],), float(x.shape[1]), device=x.device)
            if resp is None
            else resp.sum(1).clamp(min=1).float()  # SFT: each sequence normalised by its response length
        )
        if self.cfg.loss_estimator == "time":  # mask each token with probability t, weight 1/(t·length)
            t = self.draw_t(x.shape[0], x.device)
            masked, weight = torch.rand(x.shape, device=x.device) < t[:, None], 1 / (t * length)
        else:  # mask m ~ U{1..length} of the tokens, weight 1/m (the mean loss over the masked tokens)
            m = (1 + (self.strata(x.shape[0], x.device) * length).floor()).clamp(max=length)
            noise = torch.rand(x.shape, device=x.device)
            noise = noise if resp is None else noise.masked_fill(~resp, 2.0)  # prompt tokens rank last
            masked, weight = lowest(noise, m), 1 / m
        if resp is not None:  # prompt tokens stay visible
            masked = masked & resp
        nll = self.nelbo_terms(x, masked, weight).mean()
        logs = {"loss": nll.detach(), "bits_per_token": nll.detach() / math.log(2)}
        return nll, {**logs, "mask_rate": masked.float().mean().detach()}

    def elbo_draw(
        self, b: int, length: int, k: int, K: int, u: Tensor, estimator: str, generator
    ) -> tuple[Tensor, Tensor]:
        """(masked (b, L) bool, weight (b,)) of draw k of K, stratified by u (b,) ~ U[0, 1): "time": t = 1 − (k+u)/K,
        each token masked with probability t, weight 1/t; "count": m = 1 + ⌊L(k+u)/K⌋ tokens masked uniformly,
        weight L/m. Both have expectation −ELBO when averaged over k and u (see the module docstring)."""
        s = (k + u) / K  # (b,) in [0, 1)
        noise = torch.rand(b, length, generator=generator, dtype=torch.float64)
        if estimator == "time":
            t = 1 - s
            return noise < t[:, None], 1 / t
        m = (1 + (s * length).floor()).clamp(max=length)
        return lowest(noise, m), length / m

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        cond: Any = None,
        *,
        stats: dict | None = None,
        samples: int | None = None,
        estimator: str = "count",
        seed: int = 0,
        **opts,
    ) -> Tensor:
        """The ELBO on log p(x) in nats per sequence, (B,), estimated with K = `samples` (default
        method.elbo_samples) stratified draws per sequence from a generator seeded by `seed`."""
        no_options(self, opts)
        if estimator not in ESTIMATORS:
            raise GenlabError(f"mdlm estimator {estimator!r}: use one of {', '.join(ESTIMATORS)}")
        K = self.cfg.elbo_samples if samples is None else int(samples)
        if K < 1:
            raise GenlabError(f"mdlm likelihood samples must be >= 1, got {K}")
        x = self.check_tokens(x)
        gen = torch.Generator().manual_seed(seed)
        b, length = x.shape
        u = torch.rand(b, generator=gen, dtype=torch.float64)
        total = torch.zeros(b, dtype=torch.float64)
        for k in range(K):
            masked, weight = self.elbo_draw(b, length, k, K, u, estimator, gen)
            terms = [
                self.nelbo_terms(c, mk.to(self.device), w.to(self.device, torch.float32)).double().cpu()
                for c, mk, w in zip(x.split(MAX_ROWS), masked.split(MAX_ROWS), weight.split(MAX_ROWS))
            ]
            total += torch.cat(terms)
        if stats is not None:
            stats.update(nfe=K, estimator=f"ELBO, {K} stratified {estimator} draws per sequence", elbo_samples=K)
        return (-total / K).float()

    @torch.no_grad()
    def exact_nelbo(self, x: Tensor) -> Tensor:
        """(B,) −ELBO(x) by enumerating every mask S ≠ ∅ of the L positions, weight (|S|−1)!(L−|S|)!/L!
        (= (1/m)/C(L, m)); 2^L − 1 network passes, for tiny L (tests, checks)."""
        x = self.check_tokens(x)
        b, length = x.shape
        bits = torch.arange(1, 2**length, device=self.device)
        masks = (bits[:, None] >> torch.arange(length, device=self.device)) & 1  # (2^L − 1, L)
        total = torch.zeros(b, dtype=torch.float64, device=self.device)
        for mk in masks.bool():
            m = int(mk.sum())
            w = math.factorial(m - 1) * math.factorial(length - m) / math.factorial(length)
            total += self.nelbo_terms(x, mk[None].expand(b, -1), torch.full((b,), w, device=self.device)).double()
        return total

    # -- sampling

    @torch.no_grad()
    def unmask(
        self,
        x: Tensor,
        *,
        steps: int,
        start: int = 0,
        block_length: int = 0,
        remasking: str = "low_confidence",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> tuple[Tensor, int]:
        """(x with every <mask> filled, passes). x (n, L) int64 on the method's device; the span [start, L) is cut
        into blocks of block_length (0: one block) filled left to right, steps split evenly over the blocks; each
        step unmasks, per row, the linear-schedule count of the block's masked positions (see the module
        docstring). Steps with nothing to unmask cost no pass."""
        if remasking not in REMASKING:
            raise GenlabError(f"remasking={remasking!r}: use one of {', '.join(REMASKING)}")
        length = x.shape[1]
        span = length - start
        size = block_length if 0 < block_length < span else max(span, 1)
        blocks = -(-span // size)
        if steps < blocks:
            raise GenlabError(f"steps={steps} < {blocks} blocks of {size} tokens: raise steps or block_length")
        pos = torch.arange(length, device=x.device)
        passes, done = 0, 0
        for j in range(blocks):
            lo, hi = start + j * size, min(start + (j + 1) * size, length)
            in_block = (pos >= lo) & (pos < hi)
            s = steps // blocks + (1 if j < steps % blocks else 0)
            counts = linear_schedule(((x == self.mask_id) & in_block).sum(1), s)  # (n, s)
            for i in range(s):
                if counts[:, i].sum() == 0:
                    continue
                want = (x == self.mask_id) & in_block  # the positions this step may unmask
                draw, conf = self.predict(
                    x, remasking, generator, want=want, temperature=temperature, top_k=top_k, top_p=top_p
                )
                conf = conf.masked_fill(~want, float("-inf"))
                rank = conf.argsort(1, descending=True).argsort(1)
                x = torch.where(rank < counts[:, i : i + 1], draw, x)
                passes += 1
                if callback is not None:
                    pred = torch.where(x == self.mask_id, draw, x)
                    t = float((x == self.mask_id).float().mean())
                    callback(StepInfo(step=done + i, total=steps, t=t, x_t=x, x_hat=pred))
            done += s
        return x, passes

    def predict(
        self, x: Tensor, remasking: str, generator: torch.Generator | None, *, want: Tensor | None = None, **filters
    ) -> tuple[Tensor, Tensor]:
        """(draw, confidence), both (n, L): a token from p_θ(· | x) (temperature, top_k, top_p in `filters`) at every
        position of x (n, L) where `want` (n, L) bool is set (None: all), and its probability (low_confidence) or a
        uniform number (random); elsewhere <mask> and confidence −inf. Only the wanted positions are drawn, which is
        most of a sampling step's cost. Rows go through the network in chunks of at most MAX_LOGITS logits, so
        memory does not grow with n."""
        where = generator.device if generator is not None else x.device
        want = torch.ones_like(x, dtype=torch.bool) if want is None else want
        draws, confs = [], []
        rows = max(1, MAX_LOGITS // (x.shape[1] * self.vocab_size))
        for chunk, keep in zip(x.split(rows), want.split(rows)):
            draw = torch.full_like(chunk, self.mask_id)
            conf = torch.full(chunk.shape, float("-inf"), device=x.device)
            if keep.any():
                logits = self.logits(chunk)[keep]  # (m, V): the wanted positions only
                picked = sample_logits(logits, generator=generator, **filters)  # (m,)
                draw[keep] = picked
                if remasking == "low_confidence":
                    conf[keep] = logits.float().softmax(-1).gather(-1, picked[:, None]).squeeze(-1)
                else:
                    conf[keep] = torch.rand(picked.shape, generator=generator, device=where).to(x.device)
            draws.append(draw)
            confs.append(conf)
        return torch.cat(draws), torch.cat(confs)

    def sampling(self, settings: SampleSettings, **overrides) -> dict:
        """unmask's options: steps, temperature, top_k, top_p from settings (None: the config's), remasking and
        block_length from the config unless overridden (None: keep)."""
        opts = self.options(settings, MDLM_SETTINGS)
        for key in ("remasking", "block_length"):
            opts[key] = getattr(self.cfg, key) if overrides.get(key) is None else overrides[key]
        return opts

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: Any = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        prompt_ids: Any = None,
        remasking: str | None = None,
        block_length: int | None = None,
    ) -> Samples:
        """n sequences (n, seq_len) int64: the prompt (if any) kept, the rest unmasked from all <mask>."""
        if cond is not None:
            raise GenlabError(f"{self.kind} is unconditional: pass prompt_ids instead of cond")
        prompt = self.prompt_tensor(prompt_ids, n)
        rest = torch.full((n, self.seq_len - prompt.shape[1]), self.mask_id, dtype=torch.long, device=self.device)
        opts = self.sampling(settings, remasking=remasking, block_length=block_length)
        x, passes = self.unmask(
            torch.cat([prompt, rest], 1), start=prompt.shape[1], generator=generator, callback=callback, **opts
        )
        return Samples(x, passes, self.sampled_by)

    @torch.no_grad()
    def infill(
        self,
        ids: Tensor,
        mask: Tensor,
        *,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        remasking: str | None = None,
        block_length: int = 0,
    ) -> Samples:
        """ids (n, L) with the positions where mask (n, L) is True filled by unmasking, every other token kept."""
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
        ids = torch.as_tensor(ids)
        if mask.shape != ids.shape:
            raise GenlabError(f"infill: mask {tuple(mask.shape)} and ids {tuple(ids.shape)} must have one shape")
        x = torch.where(mask, self.mask_id, self.check_tokens(torch.where(mask.cpu(), 0, ids.cpu()), "ids"))
        opts = self.sampling(settings, remasking=remasking, block_length=block_length)
        x, passes = self.unmask(x, generator=generator, callback=callback, **opts)
        return Samples(x, passes, self.sampled_by)
