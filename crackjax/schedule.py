"""Noise schedules and the closed-form forward process of DDPM (Ho et al., 2020).

    beta_t                       noise added at step t, t = 0 .. T-1
    alpha_bar_t = prod_{s<=t} (1 - beta_s)
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)

Tables are computed in float64 NumPy and cast to float32 once. Index `t` runs over 0 .. T-1;
the clean image is "t = -1", whose alpha_bar is 1 (`alpha_bar_ext[t + 1]`).
The cosine schedule is Nichol & Dhariwal (2021), eq. 17, with s = 0.008 and betas clipped at 0.999.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Schedule:
  """float32 tables of length T (alpha_bar_ext has length T + 1, entry 0 is the clean image)."""

  betas: np.ndarray
  alpha_bar: np.ndarray
  alpha_bar_ext: np.ndarray

  @property
  def num_timesteps(self) -> int:
    return int(self.betas.shape[0])


def betas_linear(num_timesteps: int, *, beta_start: float, beta_end: float) -> np.ndarray:
  """Linear betas, scaled so that any T gives the same curve as Ho et al.'s T = 1000 one."""
  scale = 1000.0 / num_timesteps
  return np.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=np.float64)


def betas_cosine(num_timesteps: int, *, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  f = np.cos((steps + s) / (1.0 + s) * np.pi / 2.0) ** 2
  alpha_bar = f / f[0]
  return np.clip(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.0, max_beta)


def make_schedule(*, kind: str, num_timesteps: int, beta_start: float, beta_end: float) -> Schedule:
  """Builds the tables for `kind` in {'linear', 'cosine'}."""
  if kind == "linear":
    betas = betas_linear(num_timesteps, beta_start=beta_start, beta_end=beta_end)
  elif kind == "cosine":
    betas = betas_cosine(num_timesteps)
  else:
    raise ValueError(f"schedule.kind must be 'linear' or 'cosine', got {kind!r}")
  alpha_bar = np.cumprod(1.0 - betas)
  alpha_bar_ext = np.concatenate([[1.0], alpha_bar])
  f32 = lambda a: a.astype(np.float32)  # noqa: E731
  return Schedule(betas=f32(betas), alpha_bar=f32(alpha_bar), alpha_bar_ext=f32(alpha_bar_ext))


def q_sample(schedule: Schedule, *, x0: jnp.ndarray, t: jnp.ndarray, eps: jnp.ndarray) -> jnp.ndarray:
  """Draws x_t ~ q(x_t | x_0) given the noise.

  x0, eps: [B, H, W, C]; t: [B] int in 0 .. T-1. Returns x_t: [B, H, W, C].
  """
  ab = jnp.asarray(schedule.alpha_bar)[t][:, None, None, None]
  return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * eps
