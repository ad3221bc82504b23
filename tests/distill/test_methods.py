"""The distillation methods' maths on small problems, without run folders (the run layer is tested in test_cli)."""

import numpy as np
import pytest
import torch

from genlab.distill import straightness
from genlab.errors import GenlabError
from genlab.methods.consistency import ConsistencyConfig, discretisation, pair_weights
from genlab.methods.progressive import two_step_target
from genlab.methods.student import ddim_step
from genlab.paths import from_x_eps, get_path
from genlab.settings import SampleSettings
from tests.distill.helpers import MU, STD, ExactTeacher, fit, student


def gaussian_batches(n: int = 256):
    """Batches of real data from the teacher's Gaussian, a fresh seeded draw per step."""

    def batches(step: int) -> dict:
        g = torch.Generator().manual_seed(1000 + step)
        return {"x": (MU + STD * torch.randn(n, 2, generator=g)).float()}

    return batches


def write_exact_pairs(path, n: int = 4096):
    """Couplings (ε, ODE(ε)) of the exact Gaussian teacher, from its closed-form ODE endpoint."""
    teacher = ExactTeacher()
    eps = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    x = teacher.mixture.ode_endpoint(teacher.path, eps, 1.0).float()
    np.savez(path, noise=eps.numpy(), x=x.numpy())
    return eps, x


def test_reflow_of_an_exact_gaussian_teacher_is_straight_and_exact_in_one_step(tmp_path):
    teacher = ExactTeacher()
    write_exact_pairs(tmp_path / "pairs.npz")
    m = student("reflow", teacher, pairs=str(tmp_path / "pairs.npz"), init="random")
    losses = fit(m, gaussian_batches(256), steps=400)
    assert np.mean(losses[-50:]) < 0.2 * np.mean(losses[:20])
    s_teacher, s_student = straightness(teacher, 256), straightness(m, 256)
    assert s_teacher > 0.02  # the 1-RF of N(μ, 0.5²) moves at a varying speed: not straight
    assert s_student < 0.1 * s_teacher  # its reflow is (nearly) straight
    eps = torch.randn(512, 2, generator=torch.Generator().manual_seed(7))
    one_step = m.sample(512, settings=m_settings("euler", 1), noise=eps).x
    exact = teacher.mixture.ode_endpoint(teacher.path, eps, 1.0).float()
    assert (one_step - exact).abs().mean() < 0.05  # one Euler step lands where the exact ODE does


def m_settings(sampler: str, steps: int):
    from genlab.settings import SampleSettings

    return SampleSettings(sampler=sampler, steps=steps, guidance_scale=1.0)


def test_reflow_one_step_trains_only_at_t_equal_one(tmp_path):
    teacher = ExactTeacher()
    write_exact_pairs(tmp_path / "pairs.npz", n=64)
    m = student("reflow", teacher, pairs=str(tmp_path / "pairs.npz"), one_step=True, init="random")
    seen = []
    m.net = lambda x_t, t, label: seen.append(t.clone()) or torch.zeros_like(x_t)
    m.loss({"x": torch.zeros(8, 2)})
    assert torch.equal(seen[0], torch.ones(8))


def test_reflow_refuses_a_missing_pairs_file(tmp_path):
    m = student("reflow", ExactTeacher(), pairs=str(tmp_path / "none.npz"))
    with pytest.raises(GenlabError, match="no such file"):
        m.loss({"x": torch.zeros(4, 2)})


def test_progressive_target_matches_a_hand_computation():
    """Rectified path, teacher velocity v(x, t) = x (linear), one student step from t = 1 to s = 0.5 (mid 0.75).
    Two Euler steps: x_m = x + (0.75 − 1)·x = 0.75 x; x_s = x_m + (0.5 − 0.75)·x_m = 0.5625 x.
    The student's x̂ must satisfy x_s = a_s x̂ + (b_s/b_t)(x_t − a_t x̂) = 0.5 x̂ + 0.5 x (a_t = 0, b_t = 1),
    so x̂ = (0.5625 − 0.5)/0.5 · x = 0.125 x."""
    path = get_path("rectified")
    x_t = torch.tensor([[2.0, -4.0]])
    t, mid, s = torch.tensor([1.0]), torch.tensor([0.75]), torch.tensor([0.5])

    def step(x, t_from, t_to):  # Euler with v(x, t) = x, written as a DDIM step from (x̂, ε̂)
        x_hat, eps_hat = x - t_from * x, x + (1 - t_from) * x  # x̂ = x − t·v, ε̂ = x + (1 − t)·v
        return ddim_step(path, x_hat, eps_hat, t_to)

    x_s = step(step(x_t, t, mid), mid, s)
    assert torch.allclose(x_s, 0.5625 * x_t)
    target = two_step_target(path, x_t, t, s, x_s)
    assert torch.allclose(target, 0.125 * x_t)
    # and one DDIM step of the student with that x̂ lands on x_s
    eps_hat = (x_t - path.a(t) * target) / path.b(t)
    assert torch.allclose(ddim_step(path, target, eps_hat, s), x_s)


def test_progressive_round_teacher_follows_the_student_at_round_ends():
    m = student("progressive", ExactTeacher(), teacher_steps=8, rounds=3, steps_per_round=2)
    assert [m.round(k) for k in range(8)] == [0, 0, 1, 1, 2, 2, 2, 2]
    assert [m.student_steps(r) for r in range(3)] == [4, 2, 1]
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(1.0)
    m.step = 0
    m.after_step()  # not a round end
    assert not torch.equal(m.round_teacher.out.bias, m.model.out.bias)
    m.step = 1
    m.after_step()  # end of round 0: the student becomes round 1's teacher
    assert torch.equal(m.round_teacher.out.bias, m.model.out.bias)


def test_progressive_loss_falls_from_an_exact_teacher():
    m = student("progressive", ExactTeacher(), teacher_steps=4, rounds=1, steps_per_round=300, init="random")
    losses = fit(m, gaussian_batches(128), steps=200)
    assert np.mean(losses[-30:]) < 0.3 * np.mean(losses[:10])


def test_consistency_boundary_condition_is_exact():
    m = student("consistency", ExactTeacher())
    with torch.no_grad():
        for p in m.model.parameters():
            p.normal_()
    x = torch.randn(32, 2)
    assert torch.equal(m.consistency(x, torch.zeros(32), None), x)


def test_consistency_schedule_and_pair_weights():
    cfg = ConsistencyConfig(n_start=10, n_end=80, schedule_steps=400)
    assert [discretisation(cfg, k) for k in (0, 99, 100, 200, 300, 399)] == [10, 10, 20, 40, 80, 80]
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    w = pair_weights(get_path("rectified"), ts)
    assert w.shape == (10,) and torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (w > 0).all()


@pytest.mark.parametrize("mode", ["distill", "train"])
def test_consistency_loss_falls_and_one_step_samples_approach_the_data(mode):
    teacher = ExactTeacher()
    steps = 300 if mode == "distill" else 600  # training without a teacher has the noisier target
    m = student("consistency", teacher, mode=mode, init="random", n_start=8, n_end=32, schedule_steps=steps)
    losses = fit(m, gaussian_batches(256), steps=steps)
    assert np.mean(losses[-30:]) < np.mean(losses[:10])
    x = m.sample(2000, settings=m_settings("euler", 1), generator=torch.Generator().manual_seed(0)).x
    # from zero output (f = ε, mean error 1.5): the teacher's steps get within 0.25, training alone (biased at
    # small N, Song et al.) within 0.4
    assert (x.mean(0) - MU[0]).abs().max() < (0.25 if mode == "distill" else 0.4)


def test_consistency_ema_target_lags_the_model():
    m = student("consistency", ExactTeacher(), target_ema=0.9)
    with torch.no_grad():
        m.model.out.bias.add_(1.0)
    before = m.target_model.out.bias.clone()
    m.after_step()
    assert torch.allclose(m.target_model.out.bias, before + 0.1 * (m.model.out.bias - before))


class CfgTeacher(ExactTeacher):
    """A class-conditional teacher: label 0 → the Gaussian's velocity, null label → that velocity + 1."""

    def __init__(self):
        super().__init__()
        self.num_classes = 1

    def net(self, x_t, t, label):
        v = self.exact(x_t, t)
        return v + (label == self.num_classes).to(v)[:, None]


def test_guidance_distilled_student_matches_the_guided_teacher():
    teacher = CfgTeacher()
    m = student("guidance_distill", teacher, scale_min=1.0, scale_max=4.0, init="random")

    def batches(step):
        b = gaussian_batches(256)(step)
        return {**b, "label": torch.zeros(256, dtype=torch.long)}

    x_t, t = torch.randn(256, 2), torch.rand(256)
    label = torch.zeros(256, dtype=torch.long)

    def error(scale):
        w = torch.full((256,), scale)
        with torch.no_grad():
            return float((m.net_w(x_t, t, label, w) - m.teacher_guided(x_t, t, label, w)).abs().mean())

    before = error(3.0)
    fit(m, batches, steps=400)
    after = error(3.0)
    assert after < 0.15 * before and after < 0.3
    # one network evaluation per step, at the scale the settings ask for
    out = m.sample(8, cond=torch.zeros(8, dtype=torch.long), settings=m_settings("euler", 4).replace(guidance_scale=3))
    assert out.nfe == 4


def test_students_follow_the_teachers_guidance_interval():
    teacher, label = CfgTeacher(), torch.zeros(8, dtype=torch.long)
    x_t, early, late = torch.randn(8, 2), torch.full((8,), 0.8), torch.full((8,), 0.2)  # t = 1 is noise
    m = student("progressive", teacher, teacher_guidance=3.0, teacher_guidance_interval=(0.5, 1.0), init="random")
    guided = teacher.prediction(8, label, SampleSettings(guidance_scale=3.0))
    plain = teacher.prediction(8, label, SampleSettings())
    for t, want in ((early, guided), (late, plain)):  # guided inside the interval, the conditional outside
        x_hat, eps_hat = m.teacher_x_eps(x_t, t, label)
        torch.testing.assert_close(from_x_eps(m.path, m.cfg.target, t, x_hat, eps_hat), want(x_t, t))
    assert not torch.equal(guided(x_t, late), plain(x_t, late))  # so the two cases differ
    with pytest.raises(GenlabError, match="method.teacher_guidance_interval must be"):
        student("progressive", teacher, teacher_guidance=3.0, teacher_guidance_interval=(0.8, 0.2), init="random")
    g = student("guidance_distill", teacher, init="random")  # w = 1 (the conditional) outside the interval
    fn = g.prediction(8, label, SampleSettings(guidance_scale=3.0, guidance_interval=(0.5, 1.0)))
    for t, w in ((early, 3.0), (late, 1.0)):
        torch.testing.assert_close(fn(x_t, t), g.net_w(x_t, t, label, torch.full((8,), w)))


def test_meanflow_forward_mode_total_derivative_matches_reverse_mode():
    """The one forward-mode JVP (tangent (v, 1, 1) in (x, t, h = t − r)) equals the total derivative at fixed r,
    v·∂_x u + ∂_t u + ∂_h u, assembled from reverse-mode Jacobians of the same network."""
    m = student("meanflow", ExactTeacher(), init="random")
    with torch.no_grad():
        for p in m.model.parameters():
            p.normal_(0, 0.3)
    x, v = torch.randn(3, 2), torch.randn(3, 2)
    t, h = torch.tensor([0.2, 0.6, 0.9]), torch.tensor([0.1, 0.0, 0.5])

    def u(x_in, t_in, h_in):
        return m.average_velocity(x_in, t_in, h_in, None)

    _, jvp = torch.func.jvp(u, (x, t, h), (v, torch.ones_like(t), torch.ones_like(h)))
    jx, jt, jh = torch.autograd.functional.jacobian(u, (x, t, h))  # (3, 2, 3, 2), (3, 2, 3), (3, 2, 3)
    reverse = torch.einsum("bdce,ce->bd", jx, v) + jt.sum(-1) + jh.sum(-1)
    assert torch.allclose(jvp, reverse, rtol=1e-4, atol=1e-3)


def exact_average_velocity(x_t, t, h, label):
    """u(x_t, r = t − h, t) = (x_t − x_r)/(t − r) of the exact Gaussian teacher's ODE, whose trajectory through x_t is
    x_τ = (1 − τ)·μ + σ_τ·e with σ_τ = √((1 − τ)² s² + τ²) and e fixed (the ODE of one Gaussian is affine)."""
    mu, s = MU[0], float(STD[0])

    def sigma(tau):
        return torch.sqrt((1 - tau) ** 2 * s**2 + tau**2)[:, None]

    r = t - h
    e = (x_t - (1 - t)[:, None] * mu) / sigma(t)
    x_r = (1 - r)[:, None] * mu + sigma(r) * e
    return (x_t - x_r) / torch.where(h > 0, h, torch.ones_like(h))[:, None] + (h == 0)[:, None] * (
        e * (2 * t - 2 * (1 - t) * s**2)[:, None] / (2 * sigma(t)) - mu
    )


def test_meanflow_target_is_zero_error_for_the_exact_average_velocity():
    """Plugging the exact u into the loss: the identity u = v − (t − r)·du/dt makes the target equal u itself."""
    m = student("meanflow", ExactTeacher(), equal_fraction=0.25, adaptive_p=0.0)
    m.average_velocity = exact_average_velocity
    x = (MU + STD * torch.randn(512, 2, generator=torch.Generator().manual_seed(0))).float()
    torch.manual_seed(0)
    loss, logs = m.loss({"x": x})
    assert float(logs["mse"]) < 1e-8


def test_meanflow_loss_falls_and_one_step_lands_near_the_mean():
    m = student("meanflow", ExactTeacher(), init="random")
    losses = fit(m, gaussian_batches(128), steps=200, lr=1e-3)
    assert np.mean(losses[-30:]) < np.mean(losses[:10])
    x = m.sample(2000, settings=m_settings("euler", 1), generator=torch.Generator().manual_seed(0)).x
    assert (x.mean(0) - MU[0]).abs().max() < 0.2


def test_a_student_needs_its_teachers_path():
    with pytest.raises(GenlabError, match="shares its teacher's path"):
        student("reflow", ExactTeacher(), path="vp_cosine")


def test_meanflow_trains_through_self_attention():
    """The JVP runs attention on its plain-math kernel (the fused CPU/GPU kernels have no forward-mode rule)."""
    from genlab.methods.flow import FlowConfig, FlowMethod
    from genlab.methods.meanflow import MeanFlowConfig, MeanFlowMethod
    from genlab.models.unet import UNetConfig

    unet = UNetConfig(in_channels=1, image_size=8, num_classes=0, channels=16, attention_resolutions=(4,))
    teacher = FlowMethod(FlowConfig(), unet)
    m = MeanFlowMethod(MeanFlowConfig(teacher="unused"), unet, {"teacher": teacher})
    loss, _ = m.loss({"x": torch.rand(4, 1, 8, 8) * 2 - 1})
    loss.backward()
    assert torch.isfinite(loss) and all(
        torch.isfinite(p.grad).all() for p in m.model.parameters() if p.grad is not None
    )
