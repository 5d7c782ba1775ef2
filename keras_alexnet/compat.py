"""Private TensorFlow and Keras APIs keras_alexnet relies on, each behind one function.

`tests/compat_test.py` calls every function here, so an upgrade that moves one fails there,
loudly and in seconds, instead of somewhere deep in a training run. `setup.py` pins the
Keras minor versions these were checked with.
"""

from __future__ import annotations


def onednn_enabled() -> bool:
    """Whether this TensorFlow process runs its oneDNN CPU kernels (fixed at import time)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def print_msg(message: str) -> None:
    """Prints as Keras' own callbacks do: to stdout, or to absl logging when Keras'
    interactive logging is off."""
    from keras.src.utils import io_utils  # (private API, optional: read only when asked)

    io_utils.print_msg(message)


def weights_file_key(class_name: str) -> str:
    """The snake_case name under which a Keras weights file stores a layer of this class
    (`layers/<key>[_N]/vars/<i>`)."""
    from keras.src.utils import naming  # (private API, optional: read only when asked)

    return naming.to_snake_case(class_name)


def build_metrics_from_shapes(model, data_batch) -> None:
    """Builds a compiled model's metrics from one example batch, and stops `fit` from building
    them again from its first (distributed) batch.

    Under a strategy, Keras 3's `fit` and `evaluate` read a first batch of their data to build
    the metrics (`_maybe_symbolic_build`) and then iterate the data again from the start: a
    dataset that reshuffles on every iteration trains on its second pass, not its first.
    MultiWorkerMirroredStrategy also cannot average that batch over the replicas eagerly
    ("Attempt to convert a value (PerReplica...)"). Call it in the strategy's scope.
    """
    model._symbolic_build(data_batch=data_batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def average_scalar_logs_over_workers() -> None:
    """Makes Keras average a multi-worker train step's scalar logs over the replicas.

    Keras 3 averages them with `strategy.reduce("MEAN", v, axis=0)`, which fails on the
    scalar losses and metrics ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). Scalars are averaged over the replicas instead (axis=None),
    the same all-reduce without the batch axis. Patches Keras' TensorFlow trainer for the
    whole process, once.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "keras_alexnet_patch", False):
        return
    is_multi_worker = tf_trainer._collective_all_reduce_multi_worker

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):

            def mean(value):
                rank = getattr(value, "shape", tf.TensorShape(None)).rank
                return strategy.reduce("MEAN", value, axis=0 if rank else None)

            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.keras_alexnet_patch = True
    tf_trainer.reduce_per_replica = reduce_per_replica
