"""Loading Caffe's bvlc_alexnet: seconds and peak memory, on a file of the real file's size.

    python benchmarks/load_pretrained.py [--classes=1000] [--repeats=3]

Writes a .caffemodel of random weights in each of Caffe's two forms (V1 `layers`, as BVLC
released bvlc_alexnet.caffemodel, 243,862,414 bytes; and the current `layer`), then, in a fresh
process per measurement:

- `build`: `AlexNet(lrn="caffe")` with `weights=None` (the baseline);
- `load`: `AlexNet(weights=file)`: build, read, check and convert, set the weights;
- `plain`: build, then `np.fromfile` of the whole file and `set_weights` of arrays of the model's
  shapes: the least any loader could do.

Prints, per form, the best of `--repeats` times, `load - build` (the cost of the file) as a
ratio to `plain - build`, and each process's peak resident memory over the `build` process's.
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
import json, resource, sys, time
start = time.perf_counter()
import keras_alexnet, numpy as np
imported = time.perf_counter()
mode, path, classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "load":
    model = keras_alexnet.AlexNet(weights=path, classes=classes)
else:
    model = keras_alexnet.AlexNet(lrn="caffe", classes=classes)
    if mode == "plain":
        data = np.fromfile(path, np.uint8)
        model.set_weights([np.ones(w.shape, np.float32) for w in model.get_weights()])
        del data
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": done - imported, "peak_mib": peak}))
"""


def _measure(mode, path, classes):
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, path, str(classes)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    import keras_alexnet  # noqa: F401  (before TensorFlow: the oneDNN switch)
    from keras_alexnet.machine import describe_this_machine
    from tests.pretrained import caffe_files

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
            best = {m: min(r["seconds"] for r in rs) for m, rs in runs.items()}
            peak = {m: min(r["peak_mib"] for r in rs) for m, rs in runs.items()}
            cost, floor = best["load"] - best["build"], best["plain"] - best["build"]
            extra = {m: peak[m] - peak["build"] for m in ("load", "plain")}
            print(
                f"{form:>7} form, {os.path.getsize(path):,} bytes: build {best['build']:.2f} s, "
                f"load {best['load']:.2f} s (file: {cost:.2f} s, {cost / floor:.2f}x a plain "
                f"read + set_weights, {floor:.2f} s); peak memory over build: load "
                f"+{extra['load']:.0f} MiB, plain +{extra['plain']:.0f} MiB (build "
                f"{peak['build']:.0f} MiB)"
            )


if __name__ == "__main__":
    app.run(main)
