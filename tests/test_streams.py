"""The named random streams (crackjax/streams.py): one table, no number used twice, and every module draws from it."""

import ast
import os

import jax
import numpy as np

from crackjax import streams

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "crackjax")


def test_no_two_streams_share_a_number():
  numbers = list(streams.STREAMS.values())
  assert len(numbers) == len(set(numbers))


def test_a_streams_key_and_generator_are_its_numbers():
  k = streams.key(3, "predict")
  np.testing.assert_array_equal(k, jax.random.fold_in(jax.random.PRNGKey(3), streams.STREAMS["predict"]))
  a, b = streams.rng(3, "crops", 5).random(4), streams.rng(3, "student_crops", 5).random(4)
  assert not np.allclose(a, b)  # the same seed and step, another stream
  np.testing.assert_array_equal(a, np.random.default_rng([3, streams.STREAMS["crops"], 5]).random(4))


def test_no_module_draws_from_a_number_of_its_own():
  """Planted: `jax.random.fold_in(jax.random.PRNGKey(config.seed), 5)` or `default_rng([config.seed, 7])` anywhere
  in the package is a stream outside the table."""
  found = []
  for dirpath, _, files in os.walk(PACKAGE):
    for f in files:
      if not f.endswith(".py") or f in ("streams.py", "export_loader.py"):  # the loader runs without crackjax
        continue
      tree = ast.parse(open(os.path.join(dirpath, f)).read())
      for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("PRNGKey", "default_rng"):
          arg = ast.unparse(node.args[0]) if node.args else ""
          if ("config.seed" in arg or arg.startswith("[seed,")) and arg != "[seed, index]":  # index: a data set's image
            found.append(f"{f}:{node.lineno}: {ast.unparse(node)}")
  assert not found, found
