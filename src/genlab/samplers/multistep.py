"""Multistep exponential integrators, data-prediction form: DPM-Solver++ (2M, 3M) and UniPC.

With ρ = a/b the probability-flow ODE on any path (not only VP) is d(x/b) = x̂·dρ, so exactly
    x_s = (b_s/b_t)·x_t + b_s·∫_{ρ_t}^{ρ_s} x̂ dρ,     x̂ ≈ Lagrange polynomial through recent predictions.
In the half-log-SNR λ = log(a/b) = log_snr/2, h = λ_s − λ_t: b_s·dρ = a_s·e^{τ−h}dτ, weights ∫_0^h e^{τ−h}τ^j dτ
= j!·h^{j+1}·φ_{j+1}(−h) (Lu et al.); into b_s = 0 (λ = ∞) the step is x_s = a_s·x̂_t. In the angle variable
u = 1 − cos φ, φ = atan(b/a) (u ≈ σ²/2 near data, ≈ 1 − a/b near noise, so x̂ is smooth in u at both ends)
the weights b_s·∫ ℓ_i(u)·csc²φ dφ come from Gauss–Legendre, and into b_s = 0 they tend to a_s·ℓ_i(0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import Path
from genlab.samplers.ode import Denoiser, _tvec

F64 = torch.float64
INTERPOLATION = ("log_snr", "angle")
_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)  # nodes and weights on [−1, 1]


@dataclass
class _Node:
    """One grid point: path coefficients (floats) and, once evaluated, the prediction x̂ there."""

    a: float
    b: float
    x_hat: Tensor | None = None

    @property
    def lam(self) -> float:  # half log-SNR; −inf where a = 0
        return math.log(self.a / self.b) if self.a > 0 else -math.inf

    @property
    def phi(self) -> float:  # angle atan(b/a) in [0, π/2]
        return math.atan2(self.b, self.a)

    @property
    def u(self) -> float:  # 1 − cos φ, written without cancellation
        return 2 * math.sin(self.phi / 2) ** 2


def _node(path: Path, t: Tensor) -> _Node:
    t64 = t.double().reshape(1)
    return _Node(float(path.a(t64)), float(path.b(t64)))


def exp_integrals(h: float, k: int) -> list[float]:
    """I_j = ∫_0^h e^{τ−h}·τ^j dτ for j < k: φ-function series for h < 1, I_j = h^j − j·I_{j−1} otherwise."""
    if h < 1.0:
        return [
            math.factorial(j) * h ** (j + 1) * sum((-h) ** i / math.factorial(i + j + 1) for i in range(30))
            for j in range(k)
        ]
    out = [-math.expm1(-h)]
    for j in range(1, k):
        out.append(h**j - j * out[-1])
    return out


def _solve_weights(us: list[float], moments: list[float]) -> list[float]:
    """w with Σ_i w_i·P(u_i) = Σ_j c_j·moments_j for every P = Σ_j c_j u^j of degree < len(us)."""
    vander = torch.tensor([[u**j for j in range(len(us))] for u in us], dtype=F64)  # (k, k)
    return torch.linalg.solve(vander.T, torch.tensor(moments, dtype=F64)).tolist()


def _weights_log_snr(cur: _Node, nxt: _Node, nodes: list[_Node]) -> list[float]:
    usable = [n for n in nodes if math.isfinite(n.lam)]
    if cur.a == 0 or len(usable) < 2:  # DDIM: a_s·(1 − e^{−h}), e^{−h} = σ_s/σ_t (0 when a_t = 0)
        return [nxt.a - nxt.b * cur.a / cur.b] + [0.0] * (len(nodes) - 1)
    h = nxt.lam - cur.lam
    moments = [m / h**j for j, m in enumerate(exp_integrals(h, len(usable)))]
    w = iter(_solve_weights([(n.lam - cur.lam) / h for n in usable], moments))
    return [nxt.a * next(w) if math.isfinite(n.lam) else 0.0 for n in nodes]


def _lagrange(us: list[float], i: int, u: np.ndarray | float) -> np.ndarray | float:
    """ℓ_i(u), the Lagrange basis polynomial of node i."""
    return math.prod((u - uj) / (us[i] - uj) for j, uj in enumerate(us) if j != i)


def _weights_angle(cur: _Node, nxt: _Node, nodes: list[_Node]) -> list[float]:
    """b_s·∫_{φ_s}^{φ_t} ℓ_i(u) csc²φ dφ = ℓ_i(u_s)·(a_s − b_s·a_t/b_t) + b_s·∫ (ℓ_i(u) − ℓ_i(u_s)) csc²φ dφ."""
    us = [n.u for n in nodes]
    if nxt.b == 0:  # b_s·∫ csc²φ dφ → a_s and the smooth remainder → 0: extrapolate x̂ to u = 0
        return [nxt.a * _lagrange(us, i, 0.0) for i in range(len(us))]
    lo, hi = nxt.phi, cur.phi
    phi = (hi + lo) / 2 + (hi - lo) / 2 * _GL_X  # (16,)
    quad = (hi - lo) / 2 * _GL_W / np.sin(phi) ** 2
    ddim = nxt.a - nxt.b * cur.a / cur.b
    return [
        _lagrange(us, i, nxt.u) * ddim
        + nxt.b * float(np.sum(quad * (_lagrange(us, i, 2 * np.sin(phi / 2) ** 2) - _lagrange(us, i, nxt.u))))
        for i in range(len(us))
    ]


def exp_step(x: Tensor, cur: _Node, nxt: _Node, nodes: list[_Node], interp: str) -> Tensor:
    """x_t at `cur` → x_s at `nxt`, x̂ interpolated through `nodes` (evaluated, current first; may include
    nxt). Into b_s = 0 the λ-polynomial has no limit, so there x_s = a_s·x̂_t (first order)."""
    if nxt.b == 0 and interp == "log_snr":
        return nxt.a * cur.x_hat
    weights = (_weights_log_snr if interp == "log_snr" else _weights_angle)(cur, nxt, nodes)
    return (nxt.b / cur.b) * x + sum(w * n.x_hat for w, n in zip(weights, nodes) if w != 0.0)


def _evaluate(denoise: Denoiser, x: Tensor, t: Tensor, node: _Node) -> None:
    node.x_hat = denoise(x, _tvec(t, x))[0]


@torch.no_grad()
def _multistep(denoise, x, ts, *, path: Path, order: int, interp: str, corrector: bool) -> Tensor:
    """Shared loop: predict with the last `order` x̂, evaluate there, optionally correct. NFE = steps.

    In λ with fewer than 15 steps the order drops to the number of steps left, as in DPM-Solver's code
    (`lower_order_final`): λ-polynomials extrapolate badly over the long last λ-steps of coarse grids."""
    if order not in (1, 2, 3, 4):
        raise GenlabError(f"order must be 1, 2, 3 or 4, got {order}")
    if interp not in INTERPOLATION:
        raise GenlabError(f"interp must be one of {', '.join(INTERPOLATION)}, got {interp!r}")
    nodes = [_node(path, t) for t in ts]
    n = len(nodes) - 1
    _evaluate(denoise, x, ts[0], nodes[0])
    for i in range(n):
        p = min(order, n - i) if interp == "log_snr" and n < 15 else order  # DPM-Solver's lower_order_final
        past = nodes[max(0, i - p + 1) : i + 1][::-1]  # current first
        x_new = exp_step(x, nodes[i], nodes[i + 1], past, interp)
        if i == n - 1:
            return x_new
        _evaluate(denoise, x_new, ts[i + 1], nodes[i + 1])
        x = exp_step(x, nodes[i], nodes[i + 1], [nodes[i + 1], *past], interp) if corrector else x_new
    return x


def sample_dpmpp_2m(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2): multistep order 2 in λ, NFE = steps.

    The linear term has the exact weight h²·φ₂(−h) (the 'heun' form; Alg. 2's 'midpoint' form uses
    h·φ₁(−h)/2, same order). Where a(t_max) = 0 (λ = −∞) that first prediction only drives the first step."""
    return _multistep(denoise, x, ts, path=path, order=2, interp="log_snr", corrector=False)


def sample_dpmpp_3m(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022, "DPM-Solver++", §4.2 multistep): the quadratic through the last
    three x̂ integrated exactly in λ (φ₁, φ₂, φ₃ weights), order 3, NFE = steps."""
    return _multistep(denoise, x, ts, path=path, order=3, interp="log_snr", corrector=False)


def sample_unipc(
    denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path, order: int = 2, interp: str = "angle"
) -> Tensor:
    """UniPC (Zhao et al. 2023, "UniPC", Alg. 2–3): UniP-p predictor + UniC-p corrector, data prediction.

    The predictor interpolates the last `order` x̂; the model is evaluated at the predicted point and that
    evaluation both corrects the step (interpolant through it too: order + 1) and feeds the next step, so
    NFE = steps (no corrector after the last step). Coefficients are the exact integrals of the Lagrange
    interpolant (UniPC's bh1/bh2 choose B(h) to meet the same order conditions), in the angle variable
    u = 1 − cos φ (interp="angle", default: regular at t = 1 and t = 0, so no order drop at the ends)
    or in λ as in the paper (interp="log_snr")."""
    return _multistep(denoise, x, ts, path=path, order=order, interp=interp, corrector=True)
