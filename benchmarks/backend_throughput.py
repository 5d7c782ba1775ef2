"""AlexNet's training and inference images/s under the current Keras backend, as fractions of
that backend's own matmul rate on the same device and dtype, and against a plain PyTorch
AlexNet in the same run.

    KERAS_BACKEND=jax python benchmarks/backend_throughput.py [--batch_size=128] [--steps=5]
    KERAS_BACKEND=torch python benchmarks/backend_throughput.py --policy=mixed_bfloat16

Runs on TensorFlow, JAX and PyTorch (TensorFlow is not imported unless it is the backend), on
whatever device the backend uses (a GPU when it sees one). In one process, `--repeats`
rounds of:

1. a (size x size) @ (size x size) `keras.ops.matmul` in the policy's compute dtype: the
   device's reachable FLOP/s for this backend;
2. training: `train_on_batch` with SGD (momentum 0.9) on in-memory data, `--steps` steps
   after a warm-up step (compilation); images/s and FLOP/s, the model's FLOP counted from its
   layer shapes (forward multiply-adds x 2, and the backward pass twice the forward);
3. inference: `predict_on_batch`, images/s;
4. with `--torch_reference` and PyTorch installed: the same training step of a plain
   PyTorch AlexNet written for this benchmark (two towers as `groups=2` convolutions,
   `nn.LocalResponseNorm`, the same layer sizes), on the same device, in float32 or under
   `torch.autocast` with the policy's dtype; with `--torch_compile`, its training step
   compiled by `torch.compile` (PyTorch at its best; the compilation is in the warm-up step).

The Keras model is compiled as a training run compiles it (`training.recipe`): XLA on JAX,
TensorFlow's graph without XLA (`--jit_compile`'s default). `benchmarks/backends_compared.py`
runs this script under each backend and policy, round after round, and compares them.

Each ratio is taken within a round (both sides saw the machine in the same state); the median
over rounds is printed. Names the device first.
"""

import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_alexnet  # noqa: E402, I001  (first: it sets TensorFlow's oneDNN switch)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from keras import ops  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Batch size (paper: 128).", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Timed steps per measurement.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Rounds of measurements.", lower_bound=1)
flags.DEFINE_integer("matmul_size", 4096, "Side of the square matmul.", lower_bound=256)
flags.DEFINE_enum(
    "policy", "float32", ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy."
)
flags.DEFINE_bool("torch_reference", True, "Also time a plain PyTorch AlexNet (if installed).")
flags.DEFINE_bool("torch_compile", False, "Compile the PyTorch AlexNet with torch.compile.")
flags.DEFINE_string("json", None, "Also write the rounds' figures to this JSON file.")


def forward_flop_per_image(model) -> float:
    """2 x the multiply-adds of the convolutions and dense layers, from their shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kh, kw, channels, _ = layer.kernel.shape
            total += height * width * filters * kh * kw * channels
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return 2.0 * total


def describe_device() -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        version = f"jax {jax.__version__}"
    elif backend == "torch":
        import torch

        gpu = torch.cuda.is_available()
        devices = torch.cuda.get_device_name(0) if gpu else "CPU"
        version = f"torch {torch.__version__}"
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        devices = ", ".join(g.name for g in gpus) or "CPU"
        version = f"tensorflow {tf.__version__}"
    from keras_alexnet import machine

    return (
        f"backend {backend} ({version}, keras {keras.__version__}) on {devices}; "
        f"CPU: {machine.cpu_info().describe()}; Python {platform.python_version()}"
    )


def _sync(value):
    """Waits for the device: a transfer to the host of a scalar that depends on `value`."""
    return float(ops.convert_to_numpy(ops.sum(ops.cast(value, "float32")[..., :1])))


def matmul_flops(dtype: str, size: int) -> float:
    a = ops.cast(keras.random.normal((size, size)), dtype)
    b = ops.cast(keras.random.normal((size, size)), dtype)
    _sync(ops.matmul(a, b))
    start = time.perf_counter()
    for _ in range(4):
        c = ops.matmul(a, b)
    _sync(c)
    return 4 * 2 * size**3 / (time.perf_counter() - start)


def keras_rates(model, images, labels, steps):
    """Training and inference images/s of the Keras model (after one untimed step each)."""
    model.train_on_batch(images, labels)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(images, labels)
    float(np.asarray(loss).ravel()[0])
    train = steps * len(images) / (time.perf_counter() - start)
    _sync(model.predict_on_batch(images))
    start = time.perf_counter()
    for _ in range(steps):
        out = model.predict_on_batch(images)
    _sync(out)
    return train, steps * len(images) / (time.perf_counter() - start)


def torch_alexnet(classes: int):
    """The same network in plain PyTorch: towers as groups=2 convolutions where the paper
    splits them (conv2, conv4, conv5), `nn.LocalResponseNorm` (whose alpha is divided by n;
    the cost is the same)."""
    from torch import nn

    def conv(cin, cout, k, groups=1, stride=1, padding=0):
        return [nn.Conv2d(cin, cout, k, stride, padding, groups=groups), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv(3, 96, 11, stride=4),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
        nn.MaxPool2d(3, 2),
        *conv(96, 256, 5, groups=2, padding=2),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
        nn.MaxPool2d(3, 2),
        *conv(256, 384, 3, padding=1),
        *conv(384, 384, 3, groups=2, padding=1),
        *conv(384, 256, 3, groups=2, padding=1),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, classes),
    )


def torch_train_rate(net, images, labels, steps, dtype, device):
    import torch

    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.tensor(np.transpose(images, (0, 3, 1, 2))).to(device)
    y = torch.tensor(labels, dtype=torch.long).to(device)
    autocast = dtype != "float32"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=getattr(torch, dtype), enabled=autocast):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        return loss

    step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    return steps * len(images) / (time.perf_counter() - start)


def main(argv):
    del argv
    print(describe_device())
    keras.config.set_dtype_policy(FLAGS.policy)
    compute_dtype = keras.config.dtype_policy().compute_dtype
    classes = 1000
    model = keras_alexnet.AlexNet(classes=classes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=keras.backend.backend() == "jax",  # as `training.recipe` compiles
    )
    rng = np.random.default_rng(0)
    images = rng.normal(0, 50, (FLAGS.batch_size, 227, 227, 3)).astype("float32")
    labels = rng.integers(0, classes, FLAGS.batch_size)
    forward = forward_flop_per_image(model)
    print(
        f"policy {FLAGS.policy}, batch {FLAGS.batch_size}, {FLAGS.steps} steps; "
        f"{forward / 1e9:.2f} GFLOP forward, {3 * forward / 1e9:.2f} GFLOP a training step, "
        f"per image"
    )

    torch_net = None
    if FLAGS.torch_reference:
        try:
            import torch

            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            torch_net = torch_alexnet(classes).to(device)
            if FLAGS.torch_compile:
                torch_net = torch.compile(torch_net)
        except ImportError:
            print("PyTorch is not installed: no PyTorch reference.")

    rows = []
    for round_ in range(FLAGS.repeats):
        matmul = matmul_flops(compute_dtype, FLAGS.matmul_size)
        train, infer = keras_rates(model, images, labels, FLAGS.steps)
        reference = (
            torch_train_rate(torch_net, images, labels, FLAGS.steps, compute_dtype, device)
            if torch_net is not None
            else None
        )
        rows.append((matmul, train, infer, reference))
        line = (
            f"round {round_ + 1}: matmul {matmul / 1e9:.0f} GFLOP/s; train {train:.1f} img/s "
            f"({train * 3 * forward / matmul:.2f} of matmul); inference {infer:.1f} img/s "
            f"({infer * forward / matmul:.2f})"
        )
        if reference is not None:
            line += f"; PyTorch AlexNet train {reference:.1f} img/s"
        print(line)

    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(
                {
                    "device": describe_device(),
                    "policy": FLAGS.policy,
                    "batch_size": FLAGS.batch_size,
                    "forward_flop": forward,
                    "rounds": [
                        dict(zip(("matmul", "train", "inference", "torch_train"), r, strict=True))
                        for r in rows
                    ],
                },
                f,
            )

    def median(values):
        return statistics.median(values)

    print(
        f"median: train {median([r[1] for r in rows]):.1f} img/s = "
        f"{median([r[1] * 3 * forward / r[0] for r in rows]):.2f} of the matmul rate; "
        f"inference {median([r[2] for r in rows]):.1f} img/s = "
        f"{median([r[2] * forward / r[0] for r in rows]):.2f}"
        + (
            f"; keras_alexnet / PyTorch AlexNet (training) "
            f"{median([r[1] / r[3] for r in rows]):.2f}"
            if torch_net is not None
            else ""
        )
    )


if __name__ == "__main__":
    app.run(main)
