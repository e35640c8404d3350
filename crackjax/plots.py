"""Figures an inspector reads (matplotlib, Agg, host side): score histogram with the threshold, ROC, PR,
confusion matrix, and four-panel figures (image, anomaly map, heatmap overlay, red mask) for single images
and for galleries of the worst misses and false alarms."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crackjax import files, metrics, overlay  # noqa: E402


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  try:
    with files.writing(path):
      fig.savefig(path, dpi=110, bbox_inches="tight")
  finally:
    plt.close(fig)
  return path


def histogram(scores, labels, threshold: float, path: str, title: str = "") -> str:
  scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
  fig, ax = plt.subplots(figsize=(6, 3.6))
  bins = np.linspace(scores.min(), scores.max(), 40)
  ax.hist(scores[~labels], bins=bins, alpha=0.6, color="tab:green", label=f"good ({(~labels).sum()})")
  ax.hist(scores[labels], bins=bins, alpha=0.6, color="tab:red", label=f"crack ({labels.sum()})")
  if np.isfinite(threshold):
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
  ax.set(xlabel="anomaly score", ylabel="images", title=title or "Score histogram")
  ax.legend()
  return _save(fig, path)


def roc(scores, labels, path: str) -> str:
  fpr, tpr, _ = metrics.roc_curve(scores, labels)
  fig, ax = plt.subplots(figsize=(4.2, 4.2))
  ax.plot(fpr, tpr, color="tab:blue", label=f"AUROC {metrics.auroc(scores, labels):.4f}")
  ax.plot([0, 1], [0, 1], color="0.7", ls=":")
  ax.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
  ax.legend(loc="lower right")
  return _save(fig, path)


def pr(scores, labels, path: str) -> str:
  precision, recall, _ = metrics.pr_curve(scores, labels)
  fig, ax = plt.subplots(figsize=(4.2, 4.2))
  ax.step(
    np.r_[0, recall],
    np.r_[precision[0], precision],
    where="post",
    color="tab:purple",
    label=f"AP {metrics.average_precision(scores, labels):.4f}",
  )
  ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01))
  ax.legend(loc="lower left")
  return _save(fig, path)


def confusion(conf: dict, path: str) -> str:
  m = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]])
  fig, ax = plt.subplots(figsize=(3.6, 3.2))
  ax.imshow(m, cmap="Blues")
  for (i, j), v in np.ndenumerate(m):
    ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black", fontsize=13)
  ax.set(
    xticks=[0, 1],
    yticks=[0, 1],
    xticklabels=["good", "crack"],
    yticklabels=["good", "crack"],
    xlabel="predicted",
    ylabel="true",
    title="Confusion matrix (test)",
  )
  return _save(fig, path)


def four_panel_rows(rows: list[dict], decision, threshold: float, path: str, title: str = "") -> str:
  """rows: dicts with image uint8 [H,W,3], map [H,W], hot (the red mask, bool [H,W]), score, label, filename,
  (optional) gt mask [H,W]. decision: the red mask's (mask.Decision): the maps share its colour scale, and its
  thresholds are marked on the colour bar; the verdict is score >= threshold."""
  vmax = decision.colour_max
  n = len(rows)
  fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n + 0.4), squeeze=False)
  for r, row in enumerate(rows):
    verdict = "CRACK" if row["score"] >= threshold else "good"
    truth = {0: "good", 1: "crack"}.get(int(row["label"]), "?")
    panels = [
      row["image"] / 255.0,
      None,
      overlay.heat(row["image"], row["map"], vmax),  # the same panels predict's figure composes
      overlay.red(row["image"], row["hot"]),
    ]
    names = [
      f"{os.path.basename(row['filename'])} (true: {truth})",
      "anomaly map",
      "heatmap overlay",
      f"red mask -> {verdict} ({row['score']:.3g})",
    ]
    for c, ax in enumerate(axes[r]):
      if c == 1:
        im = ax.imshow(row["map"], cmap="jet", vmin=0, vmax=vmax)
        if row.get("gt") is not None and row["gt"].any():
          ax.contour(row["gt"], levels=[0.5], colors="white", linewidths=0.6)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        for v in (decision.low, decision.high):  # the red mask's hysteresis thresholds
          bar.ax.axhline(v, color="white", linewidth=1.2)
        bar.ax.tick_params(labelsize=6)
      else:
        ax.imshow(panels[c])
      ax.set_title(names[c], fontsize=8)
      ax.axis("off")
  if title:
    fig.suptitle(title)
  return _save(fig, path)


def sweep_curves(rows: list[dict], out_dir: str) -> list[str]:
  """A sampler/step sweep's plots: image and pixel AUROC vs steps, images/s vs steps, AUROC vs seconds per image."""
  samplers = list(dict.fromkeys(r["sampler"] for r in rows))
  paths = []
  panels = [
    ("image_auroc", "steps", "image AUROC", "auroc_vs_steps.png"),
    ("pixel_auroc", "steps", "pixel AUROC", "pixel_auroc_vs_steps.png"),
    ("images_per_second", "steps", "images/s", "images_per_second_vs_steps.png"),
    ("image_auroc", "seconds_per_image", "image AUROC", "auroc_vs_seconds.png"),
  ]
  for y_key, x_key, y_label, name in panels:
    if not any(r[y_key] is not None for r in rows):
      if y_key == "image_auroc" and any(r["pixel_auroc"] is not None for r in rows):
        y_key, y_label = "pixel_auroc", "pixel AUROC"  # a root without good test images: rank pixels instead
      else:
        continue
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, s in enumerate(samplers):  # distinct styles: DDPM and DDIM eta = 1 coincide, one must not hide the other
      pts = sorted((r[x_key], r[y_key]) for r in rows if r["sampler"] == s and r[y_key] is not None)
      if pts:
        ax.plot(*zip(*pts), marker="os^v"[i % 4], ls=("-", "--", ":")[i % 3], ms=8 - 2 * (i % 3), label=s)
    ax.set_xscale("log")
    ax.set(xlabel="seconds per image" if x_key == "seconds_per_image" else "healing steps", ylabel=y_label)
    if y_key == "images_per_second":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, os.path.join(out_dir, name)))
  return paths


def image_grid(images: np.ndarray, path: str, col_titles=None, title: str = "") -> str:
  """images [R, C, H, W] in [0, 1], shown grey (no interpolation), with optional column titles."""
  rows, cols = images.shape[:2]
  fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.5), squeeze=False)
  for r in range(rows):
    for c in range(cols):
      axes[r, c].imshow(images[r, c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
      axes[r, c].axis("off")
      if r == 0 and col_titles:
        axes[r, c].set_title(col_titles[c], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path)


def memorization_histograms(gen: dict, ref: dict, path: str) -> str:
  """Nearest-neighbour distances of generated samples to train and held-out images, and the train/held-out
  ratio of generated samples against fresh real images."""
  fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
  bins = np.linspace(0, max(gen["d_train"].max(), gen["d_heldout"].max()) * 1.05, 30)
  a.hist(gen["d_train"], bins=bins, alpha=0.6, label="to nearest train")
  a.hist(gen["d_heldout"], bins=bins, alpha=0.6, label="to nearest held-out")
  a.set(xlabel="RMS distance (blurred)", ylabel="generated samples", title="Generated samples")
  a.legend(fontsize=8)
  hi = max(gen["ratio"].max(), ref["ratio"].max(), 1.5)
  bins = np.linspace(0, hi * 1.05, 30)
  b.hist(gen["ratio"], bins=bins, alpha=0.6, density=True, label=f"generated (median {np.median(gen['ratio']):.2f})")
  b.hist(ref["ratio"], bins=bins, alpha=0.6, density=True, label=f"fresh real (median {np.median(ref['ratio']):.2f})")
  b.axvline(1.0, color="k", ls=":")
  b.set(xlabel="d_train / d_held-out", ylabel="density", title="< 1: nearer the training set")
  b.legend(fontsize=8)
  return _save(fig, path)
