"""Where a training step's time goes: a TensorFlow profiler trace of `model.fit`, summed up.

    python benchmarks/profile_step.py [--policy=float32] [--steps=4] [--logdir=DIR]

Builds AlexNet as `train_throughput.py` does (the paper's optimizer and weight decay, batch
128, in-memory data), runs two warm-up steps, then traces `--steps` steps with
`tf.profiler.experimental` and prints the ops' self time grouped by part of the network
(each layer kind, forward and backward apart; LRN's own gradient; the optimizer) and by op
type, as shares of the total. On a multi-core CPU several ops run at once, so the total is
more than the wall time; the shares are what matters. The trace stays in `--logdir` when given
(open it with TensorBoard's profile plugin, `pip install tensorboard-plugin-profile`).
"""

import collections
import glob
import json
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_throughput  # noqa: E402  (its flags are defined too; only batch_size is used)

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "policy", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Precision policy."
)
flags.DEFINE_string("logdir", None, "Where to keep the trace (default: a temporary directory).")
flags.DEFINE_integer("top", 15, "Op types to list.", lower_bound=1)


def part_of_network(operation: str, op_type: str) -> str:
    """The group an op's time is counted in, from its name."""
    if "lrn_gradient" in operation:
        return "lrn backward (whole-tensor gradient)"
    if "/sgd/" in operation or op_type.startswith(("Assign", "ResourceApply")):
        return "optimizer update"
    layer = re.search(r"alexnet(?:_\d+)?/([a-z]+?)\d*(?:_[ab])?(?:_\d+)?/", operation)
    if layer:
        kind = {"norm": "lrn", "predictions": "fc8"}.get(layer.group(1), layer.group(1))
        return f"{kind} {'backward' if 'gradient_tape' in operation else 'forward'}"
    if "gradient_tape" in operation:
        return "other backward (weight decay, loss)"
    return "other (weight decay, loss, metrics)"


def op_stats(logdir: str) -> list[dict]:
    """The trace's per-op table (the profile plugin's "framework_op_stats"), one dict per op."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise RuntimeError(f"no trace (*.xplane.pb) was written under {logdir}")
    raw, ok = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"could not read the trace in {logdir}: {raw[:200]!r}")
    table = json.loads(raw)[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [
        dict(zip(columns, [cell["v"] for cell in row["c"]], strict=True)) for row in table["rows"]
    ]
    return [r for r in rows if r["type"] != "IDLE"]


def _print_shares(title, times, total, limit=None):
    print(f"\n{title:<40} {'self time (s)':>14} {'share':>7}")
    for name, seconds in collections.Counter(times).most_common(limit):
        print(f"{name:<40} {seconds:>14.3f} {seconds / total:>7.1%}")


def main(argv):
    del argv
    import tensorflow as tf

    from keras_alexnet import machine

    print(machine.describe_this_machine())
    logdir = FLAGS.logdir or tempfile.mkdtemp(prefix="alexnet_profile_")
    model = train_throughput.build(FLAGS.policy)
    memory = train_throughput.in_memory(FLAGS.batch_size)
    model.fit(memory, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)  # warm-up
    tf.profiler.experimental.start(logdir)
    rate = train_throughput.fit_images_per_second(model, memory, FLAGS.steps)
    tf.profiler.experimental.stop()

    rows = op_stats(logdir)
    total = sum(r["total_self_time"] for r in rows) / 1e6
    print(
        f"{FLAGS.policy}, batch {FLAGS.batch_size}, {FLAGS.steps} steps traced: {rate:.1f} img/s "
        f"while tracing (steps after the first); ops' self time {total:.2f} s, "
        f"{total / FLAGS.steps:.2f} s per step. Trace: {logdir}"
    )
    parts, types = collections.Counter(), collections.Counter()
    for r in rows:
        parts[part_of_network(r["operation"], r["type"])] += r["total_self_time"] / 1e6
        types[r["type"]] += r["total_self_time"] / 1e6
    _print_shares("part of the network", parts, total)
    _print_shares("op type", types, total, FLAGS.top)


if __name__ == "__main__":
    app.run(main)
