"""Loading Caffe's bvlc_alexnet: seconds and peak memory, on a file of the real file's size.

    python benchmarks/load_pretrained.py [--classes=1000] [--repeats=3]

Writes a .caffemodel of random weights in each of Caffe's two forms (V1 `layers`, as BVLC
released bvlc_alexnet.caffemodel, 243,862,414 bytes; and the current `layer`), then, in a fresh
process per measurement:

- `build`: `AlexNet(lrn="caffe")` with `weights=None` (the baseline);
- `load`: build, then `load_pretrained` (what `AlexNet(weights=file)` does after building):
  read, check and convert the file, set the weights;
- `plain`: build, then `np.fromfile` of the whole file and `set_weights` of arrays of the model's
  shapes: the least any loader could do.

Then, for `AlexNet(weights="imagenet")` (the V1 file standing in for BVLC's release, served from
the Keras cache in a temporary KERAS_HOME):

- `cached`: build, then find the converted file in the cache, check it against its record
  (size and sha256) and load it: what every `weights="imagenet"` call after the first costs;
- `h5`: build, then `model.load_weights` of the same converted `.weights.h5`, unchecked.

Each process times its build and what follows separately. Prints, per form, the best of
`--repeats` times of what follows the build, `load` as a ratio to `plain`, and each process's
peak resident memory over the `build` process's.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_integer("classes", 1000, "Classes of fc8 (1000: the real file's size).")
flags.DEFINE_integer("repeats", 3, "Fresh processes per measurement; the best is kept.")

_CHILD = r"""
import dataclasses, json, os, resource, sys, time
import keras_alexnet, numpy as np
from keras_alexnet.weights import cache as weights_cache
from keras_alexnet.weights.caffe import load_pretrained
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS
mode, path, classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
release = dataclasses.replace(IMAGENET_WEIGHTS, sources=(dataclasses.replace(
    IMAGENET_WEIGHTS.sources[0], size=os.path.getsize(path),
    digest=sys.argv[4] if len(sys.argv) > 4 else ""),))
if mode == "install":
    weights_cache.install(path, lambda: keras_alexnet.AlexNet(lrn="caffe"), release)
    sys.exit()
start = time.perf_counter()
model = keras_alexnet.AlexNet(lrn="caffe", classes=classes)
built = time.perf_counter()
if mode == "cached":
    model.load_weights(weights_cache.imagenet_weights_file(lambda: model, release))
elif mode == "h5":
    model.load_weights(os.path.join(weights_cache.models_dir(), release.cache_file))
elif mode == "load":
    load_pretrained(model, path, include_top=True)
elif mode == "plain":
    data = np.fromfile(path, np.uint8)
    model.set_weights([np.ones(w.shape, np.float32) for w in model.get_weights()])
    del data
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"build": built - start, "file": done - built, "peak_mib": peak}))
"""


def _measure(mode, path, classes, *extra, env=None):
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, path, str(classes), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env=dict(os.environ, **(env or {})),
    )
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def main(argv):
    del argv
    import keras_alexnet  # noqa: F401  (before TensorFlow: the oneDNN switch)
    from keras_alexnet.machine import describe_this_machine
    from tests.weights import caffe_files

    print(describe_this_machine())
    weights = caffe_files.random_weights(classes=FLAGS.classes)
    with tempfile.TemporaryDirectory() as folder:
        for form in ("v1", "current"):
            path = os.path.join(folder, f"bvlc_alexnet_{form}.caffemodel")
            caffe_files.write_caffemodel(path, weights, form=form)
            runs = {
                mode: [_measure(mode, path, FLAGS.classes) for _ in range(FLAGS.repeats)]
                for mode in ("build", "load", "plain")
            }
            build = min(r["build"] for rs in runs.values() for r in rs)
            cost = {m: min(r["file"] for r in rs) for m, rs in runs.items()}
            peak = {m: min(r["peak_mib"] for r in rs) for m, rs in runs.items()}
            extra = {m: peak[m] - peak["build"] for m in ("load", "plain")}
            print(
                f"{form:>7} form, {os.path.getsize(path):,} bytes: build {build:.2f} s; reading, "
                f"checking, converting and setting the weights {cost['load']:.2f} s "
                f"({cost['load'] / cost['plain']:.2f}x a plain read + set_weights, "
                f"{cost['plain']:.2f} s); peak memory over build: load +{extra['load']:.0f} "
                f"MiB, plain +{extra['plain']:.0f} MiB (build {peak['build']:.0f} MiB)"
            )
        _cached(os.path.join(folder, "bvlc_alexnet_v1.caffemodel"), folder)


def _cached(path, folder):
    """weights="imagenet" from the cache against a plain load_weights of the same file."""
    import hashlib

    sha1 = hashlib.sha1(open(path, "rb").read()).hexdigest()
    env = {"KERAS_HOME": os.path.join(folder, "keras_home")}
    _measure("install", path, 1000, sha1, env=env)
    runs = {
        mode: [_measure(mode, path, 1000, sha1, env=env) for _ in range(FLAGS.repeats)]
        for mode in ("cached", "h5")
    }
    cost = {m: min(r["file"] for r in rs) for m, rs in runs.items()}
    print(
        f'weights="imagenet" from the cache (checked against its record): {cost["cached"]:.2f} s '
        f"after the build, {cost['cached'] / cost['h5']:.2f}x a plain load_weights of the same "
        f".weights.h5 ({cost['h5']:.2f} s)"
    )


if __name__ == "__main__":
    app.run(main)
