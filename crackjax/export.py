"""`--mode=export`: a trained model of any kind as one folder that runs without crackjax.

    <workdir>/export/<name>/
      model.stablehlo     the Scorer's maps function with its parameters baked in, serialised by jax.export
                          (StableHLO, shape-polymorphic in batch, height and width: any image size)
      export.json         everything around it: the threshold and its calibration, resize factor, the side
                          multiple, tiling, the image-score pooling, the format version and the model description
      params.npz          the model's parameters ('/'-joined names), the start of a fine-tuning on another surface
                          (config.train.init_from)
      crackjax_export.py  the loader: jax, numpy and Pillow (to read image files) only; `python crackjax_export.py
                          FOLDER_OR_IMAGE` writes predictions.csv beside it

The loader repeats the few lines of preprocessing and pooling that the exported function does not contain
(decode, resize, mirror padding to a bucket or tiles, top-k pooling): they are copied, not imported, so the folder
runs on a machine without crackjax, and `tests/test_export.py` checks that its maps, scores and verdicts equal the
in-process ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
from jax import export as jax_export

from crackjax import calibration, streams
from crackjax import predict as predict_lib
from crackjax import train as train_lib
from crackjax.scorer import Scorer

log = logging.getLogger(__name__)

FORMAT = "crackjax-export/1"
NAME = "model"  # the export's folder: <workdir>/export/model/
LOADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_loader.py")


def export_scorer(scorer: Scorer, out_dir: str, meta: dict) -> str:
  """Serialises scorer.maps with its parameters for inputs [b, m*h, m*w, 3] (m = scorer.multiple)."""
  os.makedirs(out_dir, exist_ok=True)
  m = scorer.multiple
  # Buckets and tiles are never smaller than 16 pixels (scorer.bucket_side): the bound decides shape-dependent
  # choices such as the smoothing's border mode.
  b, h, w = jax_export.symbolic_shape(f"b, {m}*h, {m}*w", constraints=(f"{m}*h >= 16", f"{m}*w >= 16"))
  params = scorer.params

  def fn(x, key, ids):
    return scorer.maps(params, x, key, ids)

  exported = jax_export.export(jax.jit(fn))(
    jax.ShapeDtypeStruct((b, h, w, 3), jnp.float32),
    jax.ShapeDtypeStruct((2,), jnp.uint32),
    jax.ShapeDtypeStruct((b,), jnp.int32),
  )
  with open(os.path.join(out_dir, "model.stablehlo"), "wb") as f:
    f.write(exported.serialize())
  with open(os.path.join(out_dir, "export.json"), "w") as f:
    json.dump({"format": FORMAT, **meta}, f, indent=2)
  shutil.copy(LOADER, os.path.join(out_dir, "crackjax_export.py"))
  return out_dir


def export(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> str:
  threshold, source = predict_lib.load_threshold(config, workdir)
  decision = calibration.decision(config, workdir, scorer)
  out_dir = os.path.join(workdir, "export", NAME)
  meta = {
    "threshold": threshold,
    "threshold_source": source,
    "resize": config.data.resize,
    "multiple": scorer.multiple,
    **dataclasses.asdict(scorer.pooling),
    **scorer.localization.info(),
    "tile": {"max_side": config.eval.tile_max_side, "size": config.eval.tile_size, "overlap": config.eval.tile_overlap},
    "seed": config.seed,
    "noise_stream": streams.STREAMS["predict"],  # the photos' noise: fold_in(PRNGKey(seed), this), as predict draws it
    "batch_size": config.eval.batch_size,
    "model": dict(scorer.info),
    "mask": {k: v for k, v in decision.to_json().items() if k in ("low", "high", "min_length", "on_good", "explain")},
    "jax_version": jax.__version__,
  }
  export_scorer(scorer, out_dir, meta)
  # the parameters themselves, for fine-tuning on another surface (config.train.init_from; crackjax/weights/)
  train_lib.save_params(
    scorer.params, os.path.join(out_dir, "params.npz"),
    {"model": config.model.to_dict(), "data": config.data.root or "synthetic", "description": scorer.info.get("description", "")},
  )  # fmt: skip
  log.info("exported %s -> %s (threshold %.6g, %s)", scorer.info.get("description", ""), out_dir, threshold, source)
  print(f"exported to {out_dir}: python {os.path.join(out_dir, 'crackjax_export.py')} /folder/of/images", flush=True)
  return out_dir
