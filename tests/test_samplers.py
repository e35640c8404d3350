import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import samplers
from crackjax import schedule as sch

SCHED = sch.make_schedule(kind="linear", num_timesteps=1000, beta_start=1e-4, beta_end=0.02)


def perfect_denoiser(x0_true):
  """The exact eps for data that is always x0_true: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
  ab = jnp.asarray(SCHED.alpha_bar)

  def eps_fn(x_t, t):
    a = ab[t][:, None, None, None]
    return (x_t - jnp.sqrt(a) * x0_true) / jnp.sqrt(1 - a)

  return eps_fn


def gaussian_denoiser(mu, s):
  """E[eps | x_t] for data ~ N(mu, s^2) per pixel: sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab)."""
  ab = jnp.asarray(SCHED.alpha_bar)

  def eps_fn(x_t, t):
    a = ab[t][:, None, None, None]
    return jnp.sqrt(1 - a) * (x_t - jnp.sqrt(a) * mu) / (a * s**2 + 1 - a)

  return eps_fn


@pytest.mark.parametrize("t_start,steps", [(999, 1000), (999, 50), (250, 10), (250, 1), (0, 1), (5, 6)])
def test_timestep_sequence(t_start, steps):
  ts = samplers.timestep_sequence(t_start=t_start, steps=steps)
  assert len(ts) == steps and ts[0] == t_start and np.all(np.diff(ts) < 0) and ts[-1] >= 0
  if steps > 1:
    assert ts[-1] == 0


def test_timestep_sequence_rejects_too_many_steps():
  with pytest.raises(ValueError, match="steps must be"):
    samplers.timestep_sequence(t_start=9, steps=11)


def test_heal_steps_is_the_share_of_the_schedule_below_t_start():
  assert samplers.heal_steps(schedule_steps=50, t_start=199, num_timesteps=1000) == 10
  assert samplers.heal_steps(schedule_steps=1000, t_start=199, num_timesteps=1000) == 200
  assert samplers.heal_steps(schedule_steps=1, t_start=199, num_timesteps=1000) == 1


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("t_start,steps", [(999, 20), (300, 7), (300, 1)])
def test_perfect_denoiser_recovers_the_data_point(key, sampler, t_start, steps):
  x0 = jax.random.uniform(key, (2, 8, 8, 3), minval=-0.9, maxval=0.9)
  x_t = jax.random.normal(jax.random.fold_in(key, 1), x0.shape)
  out = samplers.sample(perfect_denoiser(x0), SCHED, x_t, key, sampler=sampler, t_start=t_start, steps=steps)
  np.testing.assert_allclose(out, x0, atol=1e-4)


def test_ddim_eta0_is_deterministic_and_inverts_its_noising(key):
  x0 = jax.random.uniform(key, (2, 8, 8, 3), minval=-0.9, maxval=0.9)
  eps = jax.random.normal(jax.random.fold_in(key, 1), x0.shape)
  ab = SCHED.alpha_bar[400]
  x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
  a = samplers.sample(perfect_denoiser(x0), SCHED, x_t, jax.random.PRNGKey(1), sampler="ddim", t_start=400, steps=9, eta=0.0)
  b = samplers.sample(perfect_denoiser(x0), SCHED, x_t, jax.random.PRNGKey(2), sampler="ddim", t_start=400, steps=9, eta=0.0)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(a, x0, atol=1e-4)
  # With a denoiser that is only approximately right, eta = 0 is still key-independent, eta = 1 is not.
  eps_fn = gaussian_denoiser(0.1, 0.3)
  a = samplers.sample(eps_fn, SCHED, x_t, jax.random.PRNGKey(1), sampler="ddim", t_start=400, steps=9, eta=0.0)
  b = samplers.sample(eps_fn, SCHED, x_t, jax.random.PRNGKey(2), sampler="ddim", t_start=400, steps=9, eta=0.0)
  c = samplers.sample(eps_fn, SCHED, x_t, jax.random.PRNGKey(2), sampler="ddim", t_start=400, steps=9, eta=1.0)
  np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(a - c).max()) > 1e-2


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", 1000, 0.0), ("ddim", 1000, 0.0), ("ddim", 1000, 1.0)])
def test_analytic_gaussian_eps_gives_the_right_moments(key, sampler, steps, eta):
  mu, s = 0.3, 0.2
  x_T = jax.random.normal(key, (64, 16, 16, 1))
  out = samplers.sample(
    gaussian_denoiser(mu, s), SCHED, x_T, key, sampler=sampler, t_start=999, steps=steps, eta=eta, clip_x0=False
  )
  np.testing.assert_allclose(float(out.mean()), mu, atol=0.01)
  np.testing.assert_allclose(float(out.std()), s, rtol=0.05)


def test_trajectory_and_one_step(key):
  x_t = jax.random.normal(key, (2, 8, 8, 3))
  eps_fn = gaussian_denoiser(0.0, 0.5)
  out, traj = samplers.sample(eps_fn, SCHED, x_t, key, sampler="ddpm", t_start=99, steps=5, return_trajectory=True)
  assert traj.shape == (5, 2, 8, 8, 3)
  np.testing.assert_array_equal(traj[-1], out)


def test_unknown_sampler_is_rejected(key):
  with pytest.raises(ValueError, match="sampler"):
    samplers.sample(lambda x, t: x, SCHED, jnp.zeros((1, 4, 4, 1)), key, sampler="euler", t_start=10, steps=2)
