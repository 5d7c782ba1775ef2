"""Runs `backend_job.compute` under one Keras backend and saves the results for
`backends_test.py`:

    KERAS_BACKEND=tensorflow python tests/backend_worker.py JOB_DIR --prepare
    KERAS_BACKEND=jax python tests/backend_worker.py JOB_DIR

writes `JOB_DIR/<backend>.npz` (and `<backend>.keras`). Under any backend but TensorFlow,
TensorFlow is made unimportable first, as on a machine without it. `--prepare` (TensorFlow)
writes the job's files first. Under JAX it adds a finite-difference check of LRN's gradient
in float64.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import no_tensorflow  # noqa: E402

if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    no_tensorflow.block()

import numpy as np  # noqa: E402

from keras_alexnet.layers.local_response_normalization import lrn_in_keras_ops  # noqa: E402
from tests import backend_job  # noqa: E402


def lrn_finite_difference_error():
    """The largest relative difference between JAX's gradient of `lrn_in_keras_ops` and central
    finite differences, in float64 (JAX's x64 mode), on an input where LRN is far from the
    identity."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 30.0, (2, 3, 3, 9))
    weights = rng.normal(size=x.shape)

    def objective(v):
        normalized = lrn_in_keras_ops(v, depth_radius=2, bias=1.0, alpha=2e-4, beta=0.75)
        return jnp.sum(normalized * weights)

    automatic = np.asarray(jax.grad(objective)(jnp.asarray(x)))
    step = 1e-5
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (float(objective(up)) - float(objective(down))) / (2 * step)
    jax.config.update("jax_enable_x64", False)
    return np.max(np.abs(automatic - numeric)) / np.max(np.abs(numeric))


def main(job, *options):
    if "--prepare" in options:
        backend_job.prepare(job)
    results = backend_job.compute(job)
    if backend_job.BACKEND == "jax":
        results["lrn_finite_difference_error"] = np.array(lrn_finite_difference_error())
    np.savez(os.path.join(job, f"{backend_job.BACKEND}.npz"), **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
