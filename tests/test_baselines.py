"""The research plan's baselines as model kinds: their maths against known answers, and each kind's tiny run
through main.py's jobs (train, evaluate, resume, predict)."""

import importlib
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import jobs, kinds
from crackjax import train as train_lib
from crackjax.baselines import memae, vae
from crackjax.scorer import count_params


def test_vae_kl_matches_the_closed_form_and_a_monte_carlo_estimate(key):
  np.testing.assert_allclose(vae.kl_normal(jnp.zeros(3), jnp.zeros(3)), 0.0)
  np.testing.assert_allclose(vae.kl_normal(jnp.array(1.0), jnp.array(0.0)), 0.5)
  mu, var = 0.7, 2.5
  closed = 0.5 * (mu**2 + var - 1 - np.log(var))
  np.testing.assert_allclose(vae.kl_normal(jnp.array(mu), jnp.log(jnp.array(var))), closed, rtol=1e-6)
  z = mu + np.sqrt(var) * np.asarray(jax.random.normal(key, (400_000,)))
  log_q = -0.5 * (z - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var)
  log_p = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
  assert np.mean(log_q - log_p) == pytest.approx(closed, rel=0.02)


def test_memae_hard_shrinkage_known_answer():
  w = jnp.array([[0.5, 0.3, 0.15, 0.05]])
  np.testing.assert_allclose(memae.hard_shrink(w, 0.1), [[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]], rtol=1e-5)
  np.testing.assert_allclose(memae.hard_shrink(w, 0.6), [[0.0, 0.0, 0.0, 0.0]])  # nothing passes: all zero, finite
  # Addressing a latent equal to one prototype puts the largest weight on it.
  memory = jnp.eye(4, 6)
  weights = memae.address(memory[2][None], memory, 0.0)
  assert int(jnp.argmax(weights)) == 2 and float(weights.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["ae", "vae", "memae", "draem"])
def test_each_baseline_trains_evaluates_and_resumes(kind, tmp_path):
  config = importlib.import_module(f"configs.{kind}").get_config("tiny")
  out = jobs.train_and_evaluate(config, str(tmp_path / "a"))
  assert out["model"]["kind"] == kind and out["image"]["threshold_source"] == "val_f1_max"
  module = kinds.get(kind)
  state = module.make_scorer(config, str(tmp_path / "a"))
  assert out["model"]["params"] == count_params(state.params) > 0
  # Killed after the step-2 checkpoint: the rerun ends where the uninterrupted run did.
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / str(config.baseline.num_steps))
  shutil.rmtree(tmp_path / "b" / "eval", ignore_errors=True)
  os.remove(tmp_path / "b" / "metrics.json")
  again = jobs.train_and_evaluate(config, str(tmp_path / "b"))
  assert again["image"]["auroc"] == out["image"]["auroc"] and again["image"]["threshold"] == out["image"]["threshold"]
  resumed = module.make_scorer(config, str(tmp_path / "b")).params
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(resumed)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  assert train_lib.checkpoint_manager(str(tmp_path / "b"), config).latest_step() == config.baseline.num_steps
