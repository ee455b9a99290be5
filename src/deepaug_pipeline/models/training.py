"""Fast, resettable training: a whole fit (all epochs, per-epoch validation) is one ``tf.function`` call.

The model, optimizer and traced graph are built once per process. ``reset()`` restores the initial
weights, the dropout seed state and a fresh optimizer state, so every fit starts from the same point
(DeepAugment reloaded weights but kept the RMSprop state, so its learning rate drifted across trials).
The augmentation is data (``aug_args``) passed to the traced function, so changing it never retraces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from deepaug_pipeline.augment.imaging import to_unit
from deepaug_pipeline.config import SGD_MOMENTUM
from deepaug_pipeline.data import LabelledImages
from deepaug_pipeline.models import outputs_probabilities

AugmentFn = Callable[[tf.Tensor, object, tf.Tensor], tf.Tensor]  # (float [0,1] batch, aug_args, seed) → batch


def no_augmentation(images: tf.Tensor, aug_args: object, seed: tf.Tensor) -> tf.Tensor:
    return images


@dataclass(frozen=True)
class FitSettings:
    """How one fit trains."""

    epochs: int
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd | rmsprop
    learning_rate: float = 1e-3
    momentum: float = SGD_MOMENTUM  # sgd only (Nesterov)
    schedule: str = "constant"  # constant | cosine
    eval_batch_size: int = 500
    validate_last: int | None = None  # validate only the last N epochs (the ones a reward reads); None: every epoch


@dataclass(frozen=True)
class History:
    """Per-epoch curves of one fit."""

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [float(v) for v in getattr(self, k)] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**{k: np.asarray(data[k], np.float64) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")})

    @property
    def finite(self) -> bool:
        validated = ~np.isnan(self.val_accuracy)  # epochs without a validation pass hold NaN in both val curves
        return bool(np.isfinite(self.train_loss).all() and np.isfinite(self.val_loss[validated]).all())


def keras_optimizer(settings: FitSettings, steps_total: int) -> keras.optimizers.Optimizer:
    """The Keras optimiser a fit trains with (the search's skopt one is ``search.space.policy_optimizer``)."""
    lr = settings.learning_rate
    if settings.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=max(1, steps_total))
    elif settings.schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule '{settings.schedule}' (constant, cosine)")
    if settings.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=settings.momentum, nesterov=True)
    if settings.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    raise ValueError(f"unknown optimizer '{settings.optimizer}' (adam, sgd, rmsprop)")


class Trainer:
    """Trains one model on one training set, many times, each from the same starting point. A fit's data order is
    drawn from its seed and ``graph_seed``."""

    def __init__(
        self,
        model: keras.Model,
        train: LabelledImages,
        settings: FitSettings,
        augment: AugmentFn = no_augmentation,
        graph_seed: int = 87654321,  # TensorFlow's own graph seed when none was set (0 fails: tf.data's shuffle takes a tensor seed)
    ) -> None:
        self.model = model
        self.settings = settings
        # Augmentation is plain graph code (the dispatch's one branch is tf.cond, written out): autograph converting
        # it, with every function it calls, took ~1.6 s of each process's first trace on 2 cores.
        self.augment = tf.autograph.experimental.do_not_convert(augment)
        self.graph_seed = graph_seed
        self.traces = 0  # how often the fit graph was traced: once per process is the target
        self.scoring_traces = 0  # the same for the augmented evaluation (density reward)
        self._train_x = tf.constant(train.x)
        self._train_y = tf.constant(train.y.astype(np.int32))
        self.steps_per_epoch = math.ceil(len(train) / settings.batch_size)
        self.optimizer = keras_optimizer(settings, self.steps_per_epoch * settings.epochs)
        if model.dtype_policy.compute_dtype == "float16":  # mixed_float16: small gradients underflow without scaling
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(model.trainable_variables)
        self._from_logits = not outputs_probabilities(model)
        self._snapshot()
        self._fit_fn = tf.function(self._fit_graph, reduce_retracing=True)
        self._eval_fn = tf.function(self._eval_batch, reduce_retracing=True)
        self._eval_augmented_fn = tf.function(self._eval_augmented_graph, reduce_retracing=True)

    # ----------------------------------------------------------------- state
    def _state_variables(self) -> list:
        return list(self.model.variables) + list(self.optimizer.variables)

    def _snapshot(self) -> None:
        self._initial = [tf.identity(v) for v in self._state_variables()]

    def reset(self, model_state: list | None = None) -> None:
        """Back to the initial weights, dropout seeds and a fresh optimizer state.

        ``model_state`` (values for ``model.variables``, e.g. another seed's initial weights) replaces the
        initial weights for this fit only.
        """
        initial = list(self._initial)
        if model_state is not None:
            if len(model_state) != len(self.model.variables):
                raise ValueError(f"model_state has {len(model_state)} values, the model {len(self.model.variables)} variables")
            initial[: len(model_state)] = model_state
        for var, value in zip(self._state_variables(), initial):
            var.assign(value)

    def adopt_current_weights(self) -> None:
        """Make the current weights the starting point of every later fit (pre-training); the optimizer starts fresh."""
        model_vars = list(self.model.variables)
        self._initial = [tf.identity(v) for v in model_vars] + self._initial[len(model_vars) :]

    # ----------------------------------------------------------------- graph
    def _loss(self, y, out):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=self._from_logits))

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            out = tf.cast(self.model(x, training=True), tf.float32)  # a mixed-precision model computes in float16
            loss = self._loss(y, out)
            total = loss + tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses]) if self.model.losses else loss
            scaled = self.optimizer.scale_loss(total)  # the loss itself unless the optimizer scales it (float16)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), y), tf.float32))
        return loss, correct

    def _eval_batch(self, x, y):
        out = tf.cast(self.model(to_unit(x), training=False), tf.float32)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=self._from_logits))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), y), tf.float32))
        return loss, correct

    def _evaluate_in_graph(self, val_x, val_y):
        n, bs = tf.shape(val_x)[0], self.settings.eval_batch_size
        loss, correct = tf.constant(0.0), tf.constant(0.0)
        # A graph loop, not one copy of the model per chunk: a whole pool of 56k images is 112 chunks.
        for start in tf.range(0, n, bs):
            l, c = self._eval_batch(val_x[start : start + bs], val_y[start : start + bs])
            loss, correct = loss + l, correct + c
        return loss / tf.cast(n, tf.float32), correct / tf.cast(n, tf.float32)

    def _eval_augmented_graph(self, aug_args, seed, x, y):
        self.scoring_traces += 1
        n, bs = tf.shape(x)[0], self.settings.eval_batch_size
        loss, correct = tf.constant(0.0), tf.constant(0.0)
        for start in tf.range(0, n, bs):  # a graph loop: a policy of another shape may retrace with unknown sizes
            images = self.augment(to_unit(x[start : start + bs]), aug_args, tf.stack([seed, tf.cast(start, tf.int64)]))
            l, c = self._eval_batch(images, y[start : start + bs])
            loss, correct = loss + l, correct + c
        return loss / tf.cast(n, tf.float32), correct / tf.cast(n, tf.float32)

    def _fit_graph(self, aug_args, seed, val_x, val_y):
        self.traces += 1
        # tf.data's shuffle pairs each fit's seed with the graph's seed, which a traced graph otherwise takes from the
        # global seed at tracing: whichever run Keras seeded last (a resumed search's first seed, a Dask worker's first
        # fit). Set here, a fit's data order depends on its own seed only.
        tf.random.set_seed(self.graph_seed)
        s = self.settings
        n = int(self._train_x.shape[0])
        seed = tf.cast(seed, tf.int64)
        # The input pipeline and its iterator on the CPU, where tf.data runs: a dataset made inside a tf.function on
        # a GPU machine is otherwise placed there, which TensorFlow cannot copy (DatasetVariantWrapper).
        with tf.device("/CPU:0"):
            ds = tf.data.Dataset.from_tensor_slices((self._train_x, self._train_y))
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(s.batch_size).repeat(s.epochs)
            batches = iter(ds.prefetch(tf.data.AUTOTUNE))
        curves = tf.TensorArray(tf.float32, size=s.epochs, element_shape=[4])  # per epoch: the 4 History curves
        first_validated = s.epochs - min(s.validate_last or s.epochs, s.epochs)
        nan = tf.constant(float("nan"))
        loss_sum, correct, seen = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        stopped_after = tf.constant(s.epochs)
        # A range loop that pulls batches, not `for x, y in ds`: autograph turns a loop over a dataset into a tf.data
        # reduce whose function (this whole body: augmentation, train step, validation) tf.data instantiates anew for
        # every iterator, i.e. every fit. With the op dispatch that cost ~1.5 s a fit on 2 cores, against ~3 ms of
        # augmenting a batch; a graph while-loop is instantiated once. Batch ``step`` is augmented under (seed, step).
        for step in tf.range(self.steps_per_epoch * s.epochs, dtype=tf.int64):
            x, y = next(batches)
            loss, corr = self._train_step(self.augment(to_unit(x), aug_args, tf.stack([seed, step])), y)
            size = tf.cast(tf.shape(y)[0], tf.float32)
            loss_sum, correct, seen = loss_sum + loss * size, correct + corr, seen + size
            if (step + 1) % self.steps_per_epoch == 0:
                epoch = tf.cast(step // self.steps_per_epoch, tf.int32)
                if epoch >= first_validated:
                    v_loss, v_acc = self._evaluate_in_graph(val_x, val_y)
                else:  # an epoch no reward reads: skip its validation pass
                    v_loss, v_acc = nan, nan
                curves = curves.write(epoch, tf.stack([loss_sum / seen, correct / seen, v_loss, v_acc]))
                if not tf.math.is_finite(loss_sum):
                    # A diverged fit is a failed one whatever follows: stop at this epoch rather than spend the rest
                    # (a WRN-28-10 diverging at epoch 3 would otherwise train 197 more epochs on NaN weights).
                    stopped_after = epoch + 1
                    break
                loss_sum, correct, seen = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        for skipped in tf.range(stopped_after, s.epochs):  # the epochs a diverged fit skipped: NaN, as History expects
            curves = curves.write(skipped, tf.fill([4], nan))
        return tf.transpose(curves.stack())

    # ----------------------------------------------------------------- public
    def fit(self, aug_args, seed: int, validation: LabelledImages) -> History:
        """One fit from the current state; the caller resets first when it wants a fresh start."""
        curves = self._fit_fn(
            aug_args,
            tf.constant(seed, tf.int64),
            tf.constant(validation.x),
            tf.constant(validation.y.astype(np.int32)),
        )
        return History(*curves.numpy().astype(np.float64))

    def evaluate_augmented(self, aug_args, seed: int, data: LabelledImages) -> tuple[float, float]:
        """Loss and accuracy of the current weights on ``data`` as the augmentation transforms it under ``seed``
        (the density reward); ``aug_args`` are data, so a new policy never retraces."""
        loss, accuracy = self._eval_augmented_fn(
            aug_args, tf.constant(seed, tf.int64), tf.constant(data.x), tf.constant(data.y.astype(np.int32))
        )
        return float(loss), float(accuracy)

    def evaluate(self, data: LabelledImages) -> tuple[float, float]:
        """Loss and accuracy on ``data`` (e.g. the test split), in batches."""
        bs = self.settings.eval_batch_size
        loss, correct = 0.0, 0.0
        for start in range(0, len(data), bs):
            l, c = self._eval_fn(tf.constant(data.x[start : start + bs]), tf.constant(data.y[start : start + bs].astype(np.int32)))
            loss, correct = loss + float(l), correct + float(c)
        return loss / len(data), correct / len(data)
