"""Sample grid: originals next to each sub-policy's output on real images (report and MLflow)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from deepaug_pipeline.augment import imaging
from deepaug_pipeline.augment.policy import Policy, apply_sub_policies


def grid_mosaic(rows: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Rows of uint8 images (n, h, w, c) laid out as one RGB image, with a white band above each row for its label;
    returns the image and the y coordinate of each band's bottom."""
    n, h, w = rows[0].shape[:3]
    gap, band = max(1, w // 14), max(10, h // 3)
    canvas = np.full((len(rows) * (band + h), n * w + (n - 1) * gap, 3), 255, np.uint8)
    label_y = []
    for r, row in enumerate(rows):
        top = r * (band + h) + band
        label_y.append(top - 1)
        for i, image in enumerate(row):
            canvas[top : top + h, i * (w + gap) : i * (w + gap) + w] = image  # one channel broadcasts to grey
    return canvas, label_y


def sample_grid(policy: Policy, images: np.ndarray, seed: int = 0, max_images: int = 8) -> Figure:
    """One row of originals, then one row per sub-policy applied to the same images (uint8 input), drawn as a single
    mosaic so thumbnails are large and cheap to render (MLflow gets one per trial). A plain ``Figure``, not
    pyplot's: MLflow tracking draws these on a background thread, and nothing needs closing."""
    images = np.asarray(images)[:max_images]
    n = len(images)
    unit = imaging.to_unit(tf.constant(images))
    tensors = policy.tensors()
    rows, titles = [images], ["original"]
    for k, sub in enumerate(policy.sub_policies):
        chosen = tf.fill([n], k)
        out = apply_sub_policies(unit, tensors, chosen, tf.constant([seed, k], tf.int64), policy.op_indices())
        rows.append(imaging.from_unit(out, tf.uint8).numpy())
        titles.append(f"{k + 1}: {sub.describe()}")
    canvas, label_y = grid_mosaic(rows)
    inches_per_pixel = 1.1 / max(images.shape[1:3])  # a thumbnail is about 1.1 inches wide
    fig = Figure(figsize=(canvas.shape[1] * inches_per_pixel, canvas.shape[0] * inches_per_pixel))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for y, title in zip(label_y, titles):
        ax.text(0, y, title, fontsize=9, va="bottom", ha="left")
    return fig
