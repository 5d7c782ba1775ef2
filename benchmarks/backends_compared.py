"""AlexNet's training images/s on Keras' TensorFlow and JAX backends in the same run: each
against its own matmul rate, JAX against TensorFlow, and both against PyTorch.

    python benchmarks/backends_compared.py                 # this CPU: float32 and bfloat16
    python benchmarks/backends_compared.py --backends=jax --batch_sizes=128,256 \\
        --policies=float32,mixed_bfloat16 --torch_compile  # a GPU machine without TensorFlow

Each round runs `backend_throughput.py` once per (batch size, policy, backend), one process
each (a backend per process), one after the other; a ratio between two backends is taken
within a round (both measured minutes apart on the machine in the same state), and the median
over rounds is printed. The PyTorch AlexNet of `backend_throughput.py` runs in the last
backend's process of each (batch size, policy); with `--torch_compile` under `torch.compile`.
Prints the device, then one Markdown row per (batch size, policy, backend) for
docs/results.md.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["tensorflow", "jax"], "Keras backends, the first the baseline.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
flags.DEFINE_list("batch_sizes", ["32"], "Batch sizes.")
flags.DEFINE_integer("rounds", 3, "Rounds of measurements.", lower_bound=1)
flags.DEFINE_integer("steps", 3, "Timed steps per measurement.", lower_bound=1)
flags.DEFINE_bool("torch_reference", True, "Also time the PyTorch AlexNet.")
flags.DEFINE_bool("torch_compile", False, "The PyTorch AlexNet under torch.compile.")

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(backend: str, policy: str, batch_size: int, torch: bool, folder: str) -> dict:
    """One round of `backend_throughput.py` under `backend`: its figures."""
    output = os.path.join(folder, f"{backend}-{policy}-{batch_size}.json")
    command = [
        sys.executable,
        os.path.join(HERE, "backend_throughput.py"),
        f"--policy={policy}",
        f"--batch_size={batch_size}",
        f"--steps={FLAGS.steps}",
        "--repeats=1",
        f"--torch_reference={torch}",
        f"--torch_compile={FLAGS.torch_compile}",
        f"--json={output}",
    ]
    done = subprocess.run(
        command, env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{backend} {policy} batch {batch_size} failed:\n{done.stderr[-3000:]}")
    with open(output) as f:
        result = json.load(f)
    print(f"  {backend} {policy} batch {batch_size}: {result['rounds'][0]}", flush=True)
    return result


def main(argv):
    del argv
    cases = [(int(b), p) for b in FLAGS.batch_sizes for p in FLAGS.policies]
    results = {}  # (batch, policy, backend) -> [round figures]
    devices = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(FLAGS.rounds):
            print(f"round {round_ + 1}", flush=True)
            for batch, policy in cases:
                for backend in FLAGS.backends:
                    torch = FLAGS.torch_reference and backend == FLAGS.backends[-1]
                    result = measure(backend, policy, batch, torch, folder)
                    devices[backend] = result["device"]
                    figures = dict(result["rounds"][0], forward=result["forward_flop"])
                    results.setdefault((batch, policy, backend), []).append(figures)
    for device in devices.values():
        print(device)
    baseline = FLAGS.backends[0]
    print(
        f"| batch | policy | backend | train img/s | train / matmul | / {baseline} "
        "(same round) | / PyTorch (same round) |\n|---|---|---|---|---|---|---|"
    )
    for batch, policy in cases:
        torch_rates = [r["torch_train"] for r in results[(batch, policy, FLAGS.backends[-1])]]
        for backend in FLAGS.backends:
            rounds = results[(batch, policy, backend)]
            base = results[(batch, policy, baseline)]
            train = statistics.median(r["train"] for r in rounds)
            of_matmul = statistics.median(
                r["train"] * 3 * r["forward"] / r["matmul"] for r in rounds
            )
            of_base = statistics.median(
                r["train"] / b["train"] for r, b in zip(rounds, base, strict=True)
            )
            line = f"| {batch} | {policy} | {backend} | {train:.1f} | {of_matmul:.2f} |"
            line += f" {of_base:.2f} |"
            if all(rate is not None for rate in torch_rates):
                of_torch = statistics.median(
                    r["train"] / t for r, t in zip(rounds, torch_rates, strict=True)
                )
                line += f" {of_torch:.2f} |"
            else:
                line += " - |"
            print(line)
        if all(rate is not None for rate in torch_rates):
            print(f"| {batch} | {policy} | PyTorch | {statistics.median(torch_rates):.1f} | | | |")


if __name__ == "__main__":
    app.run(main)
