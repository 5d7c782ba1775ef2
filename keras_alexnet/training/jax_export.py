"""The export at the end of a run on JAX: the same SavedModel as a TensorFlow run's, written by
a TensorFlow-backend process from the run's `best.keras`, and checked against the JAX model.

The SavedModel's signatures are TensorFlow graphs around the network (`serving.signatures`),
which a JAX model cannot be traced into. So `export_run` (in the JAX process: process 0 of a
multi-process run) loads `best.keras` on JAX, on this process's devices alone, computes its
probabilities on a seeded probe batch, and runs this module as a program under
`KERAS_BACKEND=tensorflow`:

    python -m keras_alexnet.training.jax_export <request.json>

which does what `alexnet-export --model_dir=<run>` does (`serving.export`), and before the
version is renamed into place, feeds the probe to its `predict_images` signature: the
SavedModel's probabilities must equal the JAX model's within `TOLERANCE[policy]`, or no
version is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_alexnet.serving import trained_model

# Probabilities of the SavedModel (TensorFlow) against the JAX model's, largest absolute
# difference: float32 sums in other orders (the backends' logits agree within 1e-5 of their
# scale, tests/backends_test.py); 16-bit policies round every activation to 8 or 11 bits.
TOLERANCE = {"float32": 1e-4, "mixed_bfloat16": 5e-2, "mixed_float16": 1e-2}
PROBE_IMAGES = 2
PROBE_SEED = 20120
_RESULT = "result.json"


def export_run(model_dir: str, export_dir: str, mean_rgb, policy: str, verbose: int = 1) -> str:
    """Exports the run in `model_dir` (its best.keras, class names, stats) into
    `<export_dir>/<next version>/` from a TensorFlow process; returns the version's path.
    With `verbose`, prints how close its probabilities came to the JAX model's.

    Raises:
        ValueError: the export failed or its probabilities are not the JAX model's (the
            TensorFlow process's one-line reason).
    """
    # (Loaded here, outside the run's keras.distribution: its arrays on this process only.)
    model = trained_model.load_keras_model(os.path.join(model_dir, trained_model.BEST_MODEL_FILE))
    size = model.input_shape[1]
    images = np.random.default_rng(PROBE_SEED).uniform(0, 255, (PROBE_IMAGES, size, size, 3))
    images = images.astype(np.float32)
    probabilities = np.asarray(model.predict_on_batch(images - np.float32(mean_rgb)))
    del model
    with tempfile.TemporaryDirectory(prefix="jax-export-") as folder:
        np.savez(os.path.join(folder, "probe.npz"), images=images, probabilities=probabilities)
        request = {
            "model_dir": os.path.abspath(model_dir),
            "export_dir": os.path.abspath(export_dir),
            "tolerance": TOLERANCE[policy],
        }
        with open(os.path.join(folder, "request.json"), "w") as f:
            json.dump(request, f)
        # (On the CPU: the JAX process holds the GPUs' memory; two probe images are quick.)
        environment = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="-1")
        done = subprocess.run(
            [sys.executable, "-m", "keras_alexnet.training.jax_export", folder],
            env=environment,
            capture_output=True,
            text=True,
        )
        result = os.path.join(folder, _RESULT)
        if done.returncode != 0 or not os.path.exists(result):
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {done.returncode}"
            raise ValueError(f"The export of {model_dir} in a TensorFlow process failed: {reason}")
        with open(result) as f:  # (this process's private folder: written by its child)
            written = json.load(f)
    if verbose:
        print(
            f"Exported from a TensorFlow process; its probabilities are within "
            f"{written['difference']:.2g} of the JAX model's (tolerance {TOLERANCE[policy]})."
        )
    return written["export_path"]


def _export_and_check(folder: str) -> dict:
    """The TensorFlow side: the export, its probabilities compared before it is renamed into
    place. Returns what `export_run` reads."""
    import tensorflow as tf  # (the program runs on the TensorFlow backend)

    from keras_alexnet.serving import export

    with open(os.path.join(folder, "request.json")) as f:
        request = json.load(f)
    with np.load(os.path.join(folder, "probe.npz")) as probe:
        images, expected = probe["images"], probe["probabilities"]
    trained = trained_model.load_trained_model(request["model_dir"])
    measured = {}

    def check(version: str) -> None:
        signature = tf.saved_model.load(version).signatures["predict_images"]
        got = signature(images=tf.constant(images))["probabilities"].numpy()
        measured["difference"] = float(np.max(np.abs(got - expected)))
        if not measured["difference"] <= request["tolerance"]:
            raise ValueError(
                f"the SavedModel's probabilities differ from the JAX model's by up to "
                f"{measured['difference']:.3g} (tolerance {request['tolerance']}); no version "
                "was written."
            )

    path = export.export_saved_model(
        trained.model,
        request["export_dir"],
        trained.class_names,
        trained.stats,
        card=trained.card or None,
        check=check,
    )
    return {"export_path": path, **measured}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m keras_alexnet.training.jax_export FOLDER", file=sys.stderr)
        return 2
    try:
        result = _export_and_check(argv[1])
    except (ValueError, OSError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    with open(os.path.join(argv[1], _RESULT), "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
