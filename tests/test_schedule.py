import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import samplers
from crackjax import schedule as sch


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_tables_are_monotone_and_end_near_pure_noise(kind):
  s = sch.make_schedule(kind=kind, num_timesteps=1000, beta_start=1e-4, beta_end=0.02)
  assert s.betas.dtype == np.float32 and s.alpha_bar.shape == (1000,) and s.alpha_bar_ext.shape == (1001,)
  assert np.all(np.diff(s.alpha_bar) < 0)
  assert s.alpha_bar_ext[0] == 1.0 and 0.99 < s.alpha_bar[0] < 1.0
  assert s.alpha_bar[-1] < 1e-3  # x_{T-1} is almost pure noise


def test_linear_matches_ho_et_al():
  s = sch.make_schedule(kind="linear", num_timesteps=1000, beta_start=1e-4, beta_end=0.02)
  np.testing.assert_allclose(s.betas[[0, -1]], [1e-4, 0.02], rtol=1e-6)
  np.testing.assert_allclose(s.alpha_bar, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-5)
  # Rescaling keeps the curve: T = 100 ends at the same alpha_bar to within the coarser step.
  s100 = sch.make_schedule(kind="linear", num_timesteps=100, beta_start=1e-4, beta_end=0.02)
  assert abs(np.log(s100.alpha_bar[-1]) - np.log(s.alpha_bar[-1])) < 0.1 * abs(np.log(s.alpha_bar[-1]))


def test_cosine_alpha_bar_follows_the_closed_form():
  T = 1000
  s = sch.make_schedule(kind="cosine", num_timesteps=T, beta_start=1e-4, beta_end=0.02)
  f = lambda t: np.cos((t / T + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
  t = np.array([0, 100, 500, 900])
  np.testing.assert_allclose(s.alpha_bar[t], f(t + 1) / f(0), rtol=1e-4)


def test_unknown_schedule_is_rejected():
  with pytest.raises(ValueError, match="schedule.kind"):
    sch.make_schedule(kind="quadratic", num_timesteps=10, beta_start=1e-4, beta_end=0.02)


def test_closed_form_q_agrees_with_composing_single_steps(key):
  """x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z, applied t+1 times, has the moments of q(x_t | x_0)."""
  s = sch.make_schedule(kind="linear", num_timesteps=200, beta_start=1e-4, beta_end=0.02)
  x0 = jnp.full((20000,), 0.7)
  x = x0
  for t, beta in enumerate(s.betas[:120]):
    x = jnp.sqrt(1 - beta) * x + jnp.sqrt(beta) * jax.random.normal(jax.random.fold_in(key, t), x.shape)
  ab = s.alpha_bar[119]
  np.testing.assert_allclose(float(x.mean()), np.sqrt(ab) * 0.7, atol=0.02)
  np.testing.assert_allclose(float(x.var()), 1 - ab, rtol=0.05)
  closed = sch.q_sample(s, x0=x0.reshape(-1, 1, 1, 1), t=jnp.full((20000,), 119), eps=jax.random.normal(key, (20000, 1, 1, 1)))
  np.testing.assert_allclose(float(closed.mean()), np.sqrt(ab) * 0.7, atol=0.02)
  np.testing.assert_allclose(float(closed.var()), 1 - ab, rtol=0.05)


def test_the_samplers_x0_estimate_inverts_q_sample(key):
  s = sch.make_schedule(kind="cosine", num_timesteps=100, beta_start=1e-4, beta_end=0.02)
  x0 = jax.random.uniform(key, (3, 4, 4, 3), minval=-1, maxval=1)
  eps = jax.random.normal(jax.random.fold_in(key, 1), x0.shape)
  t = jnp.array([0, 50, 99])
  x_t = sch.q_sample(s, x0=x0, t=t, eps=eps)
  ab = jnp.asarray(s.alpha_bar)[t][:, None, None, None]
  np.testing.assert_allclose(samplers.estimate_x0(x_t=x_t, eps_hat=eps, ab_t=ab, clip_x0=False), x0, atol=2e-3)
