"""DDPM and DDIM reverse processes in one `lax.scan` (Ho et al., 2020; Song et al., 2021).

Both walk a static, strictly decreasing timestep sequence t_1 > t_2 > ... > t_n >= 0 and end at the clean
image (t = -1, alpha_bar = 1). With s the next timestep and x0_hat = (x_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t):

  DDIM  x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z,
        sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)        (Song et al., eq. 12 and 16)
  DDPM  x_s ~ q(x_s | x_t, x0_hat): the Gaussian posterior with
        mean = sqrt(ab_s) b / (1 - ab_t) x0_hat + sqrt(a) (1 - ab_s) / (1 - ab_t) x_t,
        var  = (1 - ab_s) / (1 - ab_t) b,   a = ab_t / ab_s, b = 1 - a      (Ho et al., eq. 6-7)

With consecutive timesteps DDPM is the ancestral sampler; with strides it is the same posterior over the
skipped interval. A partial start (healing) is just a sequence that begins at t_start < T - 1, and one step
(steps = 1) is a sequence of length one: no special cases.

Names: `steps` is always the number of reverse steps taken; the sampler's S over the whole schedule (DDIM-50) is
`schedule_steps` here and `config.sampler.num_steps` in configs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from crackjax.schedule import Schedule

# eps_fn(x_t: [B, H, W, C], t: [B] int32) -> eps_hat: [B, H, W, C]
EpsFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

SAMPLERS = ("ddpm", "ddim")
# Named sampler variants of the research plan's sweeps: name -> (kind, eta).
VARIANTS = {"ddpm": ("ddpm", 0.0), "ddim_eta0": ("ddim", 0.0), "ddim_eta1": ("ddim", 1.0)}


def timestep_sequence(*, t_start: int, steps: int) -> np.ndarray:
  """`steps` evenly spaced integer timesteps from t_start down to 0 (t_start first), strictly decreasing."""
  if not 1 <= steps <= t_start + 1:
    raise ValueError(f"steps must be in [1, t_start + 1] = [1, {t_start + 1}], got {steps}")
  ts = np.round(np.linspace(t_start, 0, steps)).astype(np.int32) if steps > 1 else np.array([t_start])
  assert len(np.unique(ts)) == steps, ts
  return ts.astype(np.int32)


def heal_steps(*, schedule_steps: int, t_start: int, num_timesteps: int) -> int:
  """Steps a healing run takes: the share of an S-step schedule over [0, T) that lies at or below t_start.

  `schedule_steps` is the sampler's S as in the papers (DDIM-50 = 50 steps over T = 1000); healing from t_start
  walks only the part of that schedule below t_start, and always at least one step.
  """
  return int(min(t_start + 1, max(1, round(schedule_steps * (t_start + 1) / num_timesteps))))


def estimate_x0(*, x_t, eps_hat, ab_t, clip_x0: bool):
  x0_hat = (x_t - jnp.sqrt(1.0 - ab_t) * eps_hat) / jnp.sqrt(ab_t)
  return jnp.clip(x0_hat, -1.0, 1.0) if clip_x0 else x0_hat


def ddim_update(*, x_t, eps_hat, ab_t, ab_s, z, eta: float, clip_x0: bool):
  x0_hat = estimate_x0(x_t=x_t, eps_hat=eps_hat, ab_t=ab_t, clip_x0=clip_x0)
  if clip_x0:  # keep eps consistent with the clipped x0 (Song et al.'s implementation)
    eps_hat = (x_t - jnp.sqrt(ab_t) * x0_hat) / jnp.sqrt(1.0 - ab_t)
  sigma = eta * jnp.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * jnp.sqrt(1.0 - ab_t / ab_s)
  dir_xt = jnp.sqrt(jnp.maximum(1.0 - ab_s - sigma**2, 0.0)) * eps_hat
  return jnp.sqrt(ab_s) * x0_hat + dir_xt + sigma * z, x0_hat


def ddpm_update(*, x_t, eps_hat, ab_t, ab_s, z, clip_x0: bool):
  x0_hat = estimate_x0(x_t=x_t, eps_hat=eps_hat, ab_t=ab_t, clip_x0=clip_x0)
  a = ab_t / ab_s
  b = 1.0 - a
  mean = jnp.sqrt(ab_s) * b / (1.0 - ab_t) * x0_hat + jnp.sqrt(a) * (1.0 - ab_s) / (1.0 - ab_t) * x_t
  var = (1.0 - ab_s) / (1.0 - ab_t) * b
  return mean + jnp.sqrt(var) * z, x0_hat


def normal(key: jax.Array, i, shape: tuple, dtype=jnp.float32) -> jnp.ndarray:
  """Noise number i of a run: one draw per batch row when `key` holds a key per row ([B, 2]), else one draw of
  `shape` from the single key. Per-row keys make an image's noise independent of the batch it is in."""
  if key.ndim == 2:
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, i), shape[1:], dtype))(key)
  return jax.random.normal(jax.random.fold_in(key, i), shape, dtype)


def sample(
  eps_fn: EpsFn,
  schedule: Schedule,
  x_t: jnp.ndarray,
  key: jax.Array,
  *,
  sampler: str,
  t_start: int,
  steps: int,
  eta: float = 0.0,
  clip_x0: bool = True,
  return_trajectory: bool = False,
):
  """Runs the reverse process from x_t at t_start to a clean image.

  Args:
    eps_fn: the noise predictor (a teacher is passed in as a function, never stored).
    x_t: [B, H, W, C], a sample of q(x_{t_start} | x_0) (or pure noise when t_start = T - 1).
    key: one key, or one per batch row ([B, 2]; see `normal`).
    sampler: 'ddpm' or 'ddim'. eta is DDIM's stochasticity (0: deterministic, 1: DDPM-like).
    t_start, steps: static ints; see `timestep_sequence`.
    return_trajectory: also return the states after every step, [steps, B, H, W, C].

  Returns x0 (the last step's x0_hat, in [-1, 1] when clip_x0) and, if asked, the trajectory.
  """
  if sampler not in SAMPLERS:
    raise ValueError(f"sampler.kind must be one of {SAMPLERS}, got {sampler!r}")
  if not 0 <= t_start < schedule.num_timesteps:
    raise ValueError(f"t_start must be in [0, {schedule.num_timesteps - 1}], got {t_start}")
  ts = timestep_sequence(t_start=t_start, steps=steps)
  ss = np.concatenate([ts[1:], [-1]]).astype(np.int32)
  ab_ext = jnp.asarray(schedule.alpha_bar_ext)
  batch = x_t.shape[0]

  def body(x, inputs):
    i, t, s = inputs
    eps_hat = eps_fn(x, jnp.full((batch,), t, jnp.int32))
    z = normal(key, i, x.shape, x.dtype)
    ab_t, ab_s = ab_ext[t + 1], ab_ext[s + 1]
    if sampler == "ddim":
      x_s, x0_hat = ddim_update(x_t=x, eps_hat=eps_hat, ab_t=ab_t, ab_s=ab_s, z=z, eta=eta, clip_x0=clip_x0)
    else:
      x_s, x0_hat = ddpm_update(x_t=x, eps_hat=eps_hat, ab_t=ab_t, ab_s=ab_s, z=z, clip_x0=clip_x0)
    # The last step lands on the clean image, where x_s is x0_hat exactly (ab_s = 1, sigma = 0).
    return x_s, (x_s if return_trajectory else None)

  xs = (jnp.arange(steps), jnp.asarray(ts), jnp.asarray(ss))
  x0, traj = jax.lax.scan(body, x_t, xs)
  return (x0, traj) if return_trajectory else x0
