"""Which child regime can tell augmentations apart? Reduced Fashion-MNIST, several seeds per base augmentation.

Run by hand: ``python benchmarks/bench_child_regime.py [child index ...]`` → ``benchmarks/results/child_regime.json``
(rows of children not run this time are kept from the file).
For each candidate child (model, training images, epochs, batch size; SGD + Nesterov + cosine) and each augmentation
(none, pad + crop, crop + flip), train under several seeds (a seed changes the
initial weights, the data order, the augmentation draws and the validation sample) and record the reward (mean
validation accuracy of the last 3 epochs on 5000 pool images), the 10k test accuracy and the time per fit. The search
default must be a child in which crop + flip beats no augmentation beyond seed noise, as it does for the final model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, load_fashion_subset, write_results  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deepaug_pipeline.augment import baselines  # noqa: E402
from deepaug_pipeline.data import LabelledImages  # noqa: E402
from deepaug_pipeline.models import build_model  # noqa: E402
from deepaug_pipeline.models.training import FitSettings, Trainer  # noqa: E402
from deepaug_pipeline.seeding import stream_rng, stream_seed  # noqa: E402

SEED, SEEDS, VALIDATION, LAST_K = 7, 3, 5000, 3
CHILDREN = [  # (model, training images, epochs, batch size, learning rate)
    ("wrn_10_1", 1000, 60, 32, 0.02),  # 1880 SGD steps
    ("wrn_10_1", 2000, 15, 32, 0.02),  # 940 steps
]
AUGMENTS = ["none", "crop", "standard"]


def augment(x, args, seed):
    base, trivial = args
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    x = baselines.base_augment(x, base, s1)
    return tf.cond(trivial, lambda: baselines.trivialaugment_wide(x, s2), lambda: x)


def main(which: list[int]) -> None:
    splits = load_fashion_subset(max(c[1] for c in CHILDREN), SEED)
    chosen = [CHILDREN[i] for i in which]
    path = RESULTS / "child_regime.json"
    kept = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = [r for r in kept if (r["model"], r["train_images"], r["epochs"], r["batch_size"], r["learning_rate"]) not in chosen]
    for model_name, n_train, epochs, batch, lr in chosen:
        idx = np.sort(stream_rng(SEED, "child_subset", n_train).choice(len(splits.search_subset), n_train, replace=False))
        train = LabelledImages(splits.search_subset.x[idx], splits.search_subset.y[idx])
        shape, n_classes = train.x.shape[1:], len(splits.class_names)
        settings = FitSettings(epochs=epochs, batch_size=batch, optimizer="sgd", learning_rate=lr, schedule="cosine",
                               validate_last=LAST_K)  # fmt: skip
        trainer = Trainer(build_model(model_name, shape, n_classes), train, settings, augment, graph_seed=stream_seed(SEED, "child_init", 0))
        for s in range(SEEDS):
            keras.utils.set_random_seed(stream_seed(SEED, "child_init", s))
            state = [v.numpy() for v in build_model(model_name, shape, n_classes).variables]
            pool = splits.seed_validation_pool
            vidx = np.sort(stream_rng(SEED, "validation", s).choice(len(pool), VALIDATION, replace=False))
            val = LabelledImages(pool.x[vidx], pool.y[vidx])
            for name in AUGMENTS:
                base = name.split("+")[0]
                args = (baselines.base_params(base), tf.constant("trivialaugment" in name))
                trainer.reset(state)
                start = time.perf_counter()
                h = trainer.fit(args, stream_seed(SEED, "fit", s), val)
                secs = time.perf_counter() - start
                _, test_acc = trainer.evaluate(splits.test)
                row = {"model": model_name, "train_images": n_train, "epochs": epochs, "batch_size": batch,
                       "learning_rate": lr, "seed": s, "augment": name,
                       "reward": float(np.mean(h.val_accuracy[-LAST_K:])), "train_accuracy": float(h.train_accuracy[-1]),
                       "test_accuracy": test_acc, "fit_seconds": secs}  # fmt: skip
                rows.append(row)
                print(row, flush=True)
        write_results("child_regime", {"protocol": __doc__.split("\n\n")[1], "rows": rows, "summary": summarise(rows)})


def summarise(rows: list[dict]) -> list[dict]:
    import pandas as pd

    frame = pd.DataFrame(rows)
    out = []
    # One child is all five settings: two that differ only in learning rate are two children, never one summary.
    for (model, n, epochs, batch, lr), part in frame.groupby(["model", "train_images", "epochs", "batch_size", "learning_rate"]):
        none = part[part.augment == "none"].set_index("seed")
        for name, sub in part.groupby("augment"):
            paired = sub.set_index("seed")["reward"] - none["reward"]
            out.append({"model": model, "train_images": n, "epochs": epochs, "batch_size": batch, "learning_rate": lr,
                        "augment": name, "seeds": len(sub),
                        "reward_mean": sub.reward.mean(), "reward_std": sub.reward.std(ddof=1),
                        "paired_gain_vs_none": paired.mean(), "paired_gain_se": paired.std(ddof=1) / np.sqrt(len(paired)),
                        "test_error_mean": 1 - sub.test_accuracy.mean(), "fit_seconds_mean": sub.fit_seconds.mean()})  # fmt: skip
    return out


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or list(range(len(CHILDREN))))
