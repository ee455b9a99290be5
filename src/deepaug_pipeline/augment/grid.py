"""Sample grid: originals next to each sub-policy's output on real images (report and MLflow)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deepaug_pipeline.augment import ops as ops_lib  # noqa: E402
from deepaug_pipeline.augment.policy import Policy, apply_sub_policies  # noqa: E402


def sample_grid(policy: Policy, images: np.ndarray, seed: int = 0, max_images: int = 8) -> plt.Figure:
    """One row of originals, then one row per sub-policy applied to the same images (uint8 input)."""
    images = np.asarray(images)[:max_images]
    n = len(images)
    unit = ops_lib.to_unit(tf.constant(images))
    tensors = policy.tensors()
    rows = [("original", images)]
    for k, sub in enumerate(policy.sub_policies):
        chosen = tf.fill([n], k)
        out = apply_sub_policies(unit, tensors, chosen, tf.constant([seed, k], tf.int64), policy.op_indices())
        rows.append((f"{k + 1}: {sub.describe()}", ops_lib.from_unit(out, tf.uint8).numpy()))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n + 0.2, 1.35 * len(rows)), squeeze=False)
    gray = images.shape[-1] == 1
    for r, (title, row) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(row[c, ..., 0] if gray else row[c], cmap="gray" if gray else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    return fig
