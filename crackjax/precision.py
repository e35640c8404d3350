"""Mixed precision: compute in config.compute.dtype (float32, or bfloat16 on TPUs and recent GPUs), keep parameters
and optimizer state in float32.

One policy for every network (the UNet, the baselines, the student): `apply` casts the float parameters and inputs to
the compute dtype, runs the module, and casts the floating outputs back to float32, so losses, gradients (through
the cast, into the float32 parameters), EMA and optimizer updates stay in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype(config: ml_collections.ConfigDict):
  return DTYPES[config.compute.dtype]


def cast(tree, to):
  return jax.tree.map(lambda a: a.astype(to) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def apply(module_apply, params, *args, compute_dtype=jnp.float32, **kwargs):
  """module_apply({"params": params}, *args, **kwargs) computed in `compute_dtype`, floating outputs in float32."""
  if compute_dtype == jnp.float32:
    return module_apply({"params": params}, *args, **kwargs)
  out = module_apply({"params": cast(params, compute_dtype)}, *cast(args, compute_dtype), **kwargs)
  return cast(out, jnp.float32)
