"""Training on Keras' JAX backend (`training.jax_distribution`, `training.jax_export`), run for
real in subprocesses: the train script with the quickstart recipe stopped and resumed, one run
trained by two processes on 127.0.0.1 through `keras.distribution` (JAX's CPU collectives),
killed and resumed, and data parallel over two logical CPUs in one process. Each run ends with
the SavedModel a TensorFlow run writes, checked against the JAX model's probabilities.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, run_python
from tests.train_script_test import (
    QUIET,
    _flags,
    _free_port,
    _history,
    _interrupt_in_epoch_2,
    _state,
)

JAX = {**QUIET, "KERAS_BACKEND": "jax"}
EXPORT_CHECKED = "Exported from a TensorFlow process; its probabilities are within"


def _interrupt_jax(args, sig):
    previous = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "jax"  # (`_start` passes this test's environment on)
    try:
        return _interrupt_in_epoch_2(args, sig)
    finally:
        if previous is None:
            del os.environ["KERAS_BACKEND"]
        else:
            os.environ["KERAS_BACKEND"] = previous


def _checked_difference(output: str) -> float:
    line = next(line for line in output.splitlines() if line.startswith(EXPORT_CHECKED))
    return float(line[len(EXPORT_CHECKED) :].split()[0])


@pytest.mark.slow
def test_quickstart_on_jax_stopped_by_sigterm_resumes_and_exports(folder, tmp_path):
    """`KERAS_BACKEND=jax scripts/train.py --flagfile=configs/quickstart.flags` (the full
    AlexNet; the small image folder instead of the embedded set, to keep it short): SIGTERM
    in epoch 2 saves the backup and exits 143; the same command resumes there and ends with
    the export, whose probabilities are the JAX model's."""
    args = [
        "--flagfile=configs/quickstart.flags",
        *_flags(folder, tmp_path, epochs=2, steps_per_epoch=3, verbose=2),
    ]
    code, output = _interrupt_jax(args, signal.SIGTERM)
    assert code == 143, output[-3000:]
    assert "Training in precision float32 (none: float32 as asked)" in output
    state = _state(tmp_path / "run")
    assert (state["epoch"], state["step"]) in ((1, 1), (1, 2), (2, 0)), output[-3000:]
    assert not os.path.exists(tmp_path / "export")

    resumed = run_python(["scripts/train.py", *args], env=JAX)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    if state["epoch"] == 1:
        assert f"at epoch 2, step {state['step']} of 3." in resumed.stdout
    assert 0 <= _checked_difference(resumed.stdout) <= 1e-5
    assert f"Exported to {tmp_path / 'export' / '1'}" in resumed.stdout
    assert [row["epoch"] for row in _history(tmp_path / "run")] == ["1", "2"]
    final = _state(tmp_path / "run")
    assert (final["epoch"], final["finished"]) == (2, "epochs")
    assert final["export_path"] == str(tmp_path / "export" / "1")
    version = tmp_path / "export" / "1"
    assert (version / "saved_model.pb").exists()
    card = json.loads((version / "assets.extra" / "model_card.json").read_text())
    assert card["class_names"] == ["blue", "green", "red"]
    assert (version / "assets.extra" / "tf_serving_warmup_requests").exists()
    assert os.listdir(tmp_path / "run" / "logs")  # TensorBoard


TWO_PROCESSES = """
import sys
from keras_alexnet.training import train
from keras_alexnet.training.config import TrainConfig
from tests.stand_in import small_alexnet
from keras_alexnet.cli import report_errors
folder, tmp = sys.argv[1:]
config = TrainConfig(dataset="image_folder", image_dir=folder, model_dir=tmp + "/run",
                     export_dir=tmp + "/export", epochs=3, steps_per_epoch=8, batch_size=2,
                     strategy="multi_worker", mixed_precision="none", init="he", verbose=2)


def run():  # as alexnet-train runs it: SIGTERM's stop exits 143
    result = train(config, build_model=lambda **kw: small_alexnet(**kw))
    print("exported", result.export_path)


sys.exit(report_errors(run))
"""


def _start_two(folder, tmp_path):
    port = _free_port()
    processes = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir(exist_ok=True)
        env = dict(
            os.environ,
            **JAX,
            TMPDIR=str(scratch),
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", TWO_PROCESSES, folder, str(tmp_path)],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    return processes


def _when_process_0_prints(processes, text, act):
    """Reads process 0's output until `text`, then `act(processes)`; returns both outputs."""
    seen = []
    for line in processes[0].stdout:
        seen.append(line)
        if text in line:
            break
    act(processes)
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    return ["".join(seen) + outputs[0], outputs[1]]


@pytest.mark.slow
def test_two_processes_on_localhost_train_one_run_killed_stopped_and_resumed(folder, tmp_path):
    """Two JAX processes (one CPU device each) train one run through keras.distribution.
    Both are killed (SIGKILL) once epoch 2 begins; restarted, they resume from the one
    backup; SIGTERM to process 1 alone in epoch 3 stops both after the same step (process 0
    saves the backup); restarted again, the run ends with one best model and one export,
    written by process 0, and both processes saw the same (global) history."""

    def kill(processes):
        for process in processes:
            process.kill()

    _when_process_0_prints(_start_two(folder, tmp_path), "Epoch 2/", kill)
    killed = _state(tmp_path / "run")
    assert (killed["epoch"], killed["step"]) in ((1, 0), (2, 0))
    assert not os.path.exists(tmp_path / "export")

    def terminate_process_1(processes):
        processes[1].send_signal(signal.SIGTERM)

    second = _start_two(folder, tmp_path)
    outputs = _when_process_0_prints(second, "Epoch 3/", terminate_process_1)
    assert [process.returncode for process in second] == [143, 143], outputs[0][-3000:]
    assert "Stopped by SIGTERM" in outputs[0] and "Stopped by SIGTERM" in outputs[1]
    assert "Resuming" in outputs[0] and "Resuming" in outputs[1]
    stopped = _state(tmp_path / "run")
    assert stopped["epoch"] == 2 and stopped["step"] >= 1 or stopped["epoch"] == 3
    assert not os.path.exists(tmp_path / "export")

    scratch_before = _worker_scratch(tmp_path / "tmp1")
    third = _start_two(folder, tmp_path)
    outputs = [process.communicate(timeout=600)[0] for process in third]
    for process, output in zip(third, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    assert f"exported {tmp_path / 'export' / '1'}" in outputs[0]
    assert "exported None" in outputs[1]
    assert 0 <= _checked_difference(outputs[0]) <= 1e-5
    assert os.listdir(tmp_path / "export") == ["1"]
    assert sorted(name for name in os.listdir(tmp_path / "run") if name != ".lock") == [
        "backup",
        "best.keras",
        "class_names.txt",
        "logs",
        "stats.json",
        "training_log.csv",
    ]
    assert [row["epoch"] for row in _history(tmp_path / "run")] == ["1", "2", "3"]
    # The global metrics: the same in both processes (each line less its timings).
    epochs = [
        [line[line.index("loss:") :] for line in o.splitlines() if "val_loss" in line]
        for o in outputs
    ]
    assert epochs[0] == epochs[1] and epochs[0]
    # Process 1 removed the scratch directory it wrote in (the killed one's stays).
    assert _worker_scratch(tmp_path / "tmp1") == scratch_before


def _worker_scratch(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("keras_alexnet_worker_"))


ONE_PROCESS = """
import os, sys
from keras_alexnet.training import jax_export, train
from keras_alexnet.training.config import SettingsError, TrainConfig
from keras_alexnet.training.jax_distribution import make_distribution
from keras_alexnet.training.strategies import use_logical_cpus
from tests.stand_in import small_alexnet

use_logical_cpus(2)
folder, tmp = sys.argv[1:]
refusals = [
    dict(strategy="towers"),
    dict(strategy="mirrored", tower_devices=("cpu:0", "cpu:1")),
    dict(strategy="mirrored", devices=("gpu:3",)),
    dict(strategy="multi_worker"),
]
for arguments in refusals:
    try:
        make_distribution(**arguments)
        print("ACCEPTED", arguments)
    except SettingsError as error:
        print("REFUSED", error)
os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"] = "2"
try:
    make_distribution("mirrored")
except SettingsError as error:
    print("REFUSED", error)
import socket
taken = socket.socket(socket.AF_INET6)
taken.bind(("::", 0))
taken.listen()
os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = f"127.0.0.1:{taken.getsockname()[1]}"
os.environ["KERAS_DISTRIBUTION_PROCESS_ID"] = "0"
try:
    make_distribution("multi_worker")
except SettingsError as error:
    print("REFUSED", error)
for address, index in (("127.0.0.1:1234", "2"), ("localhost", "1")):
    os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = address
    os.environ["KERAS_DISTRIBUTION_PROCESS_ID"] = index
    try:
        make_distribution("multi_worker")
    except SettingsError as error:
        print("REFUSED", error)
from keras_alexnet.training import jax_distribution
jax_distribution.COORDINATOR_WAIT_S = 2
nobody = socket.socket()
nobody.bind(("127.0.0.1", 0))  # bound, not listening: a port with no coordinator
os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = f"127.0.0.1:{nobody.getsockname()[1]}"
try:
    make_distribution("multi_worker")
except SettingsError as error:
    print("REFUSED", error)
for name in ("NUM_PROCESSES", "JOB_ADDRESSES", "PROCESS_ID"):
    del os.environ["KERAS_DISTRIBUTION_" + name]
print("devices", make_distribution("mirrored").device_names())
print("one device", make_distribution("one_device", devices=("cpu:1",)).device_names())

config = TrainConfig(dataset="image_folder", image_dir=folder, model_dir=tmp + "/run",
                     export_dir=tmp + "/export", epochs=1, steps_per_epoch=2, batch_size=2,
                     mixed_precision="none", verbose=2)
result = train(config, build_model=lambda **kw: small_alexnet(**kw))
print("exported", result.export_path)
jax_export.TOLERANCE["float32"] = -1.0  # no difference is that small: the check must refuse
try:
    jax_export.export_run(tmp + "/run", tmp + "/export", (0.0, 0.0, 0.0), "float32")
    print("EXPORTED A MISMATCH")
except ValueError as error:
    print("REFUSED", error)
print("versions", sorted(os.listdir(tmp + "/export")))
from keras_alexnet.serving import export
try:
    export.export_saved_model(None, tmp + "/export", [])
except ValueError as error:
    print("REFUSED", error)
"""


def test_data_parallel_on_two_logical_cpus_and_what_jax_refuses(folder, tmp_path):
    """One JAX process: what cannot carry over from TensorFlow is one line each; mirrored
    over two logical CPUs (keras.distribution.DataParallel) trains and exports; an export
    whose probabilities differ from the JAX model's beyond the tolerance leaves no version."""
    result = run_python(["-c", ONE_PROCESS, folder, str(tmp_path)], env=JAX)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    refused = [line for line in result.stdout.splitlines() if line.startswith("REFUSED")]
    assert "ACCEPTED" not in result.stdout
    assert len(refused) == 11, result.stdout
    assert "only the TensorFlow backend honours" in refused[0]
    assert "only the TensorFlow backend honours" in refused[1]
    assert "'gpu:3', a device JAX does not have here; it has ['cpu:0', 'cpu:1']" in refused[2]
    assert "missing: KERAS_DISTRIBUTION_JOB_ADDRESSES" in refused[3]
    assert "Use strategy=multi_worker" in refused[4]
    assert "cannot be taken on this machine (Address already in use)" in refused[5]
    assert "an index below it; received '2' and '2'" in refused[6]
    assert "must start with the coordinator's host:port" in refused[7]
    assert "process 1 found no coordinator at 127.0.0.1:" in refused[8]
    assert "in 2 s (Connection refused): start process 0" in refused[8]
    assert "Waiting for the coordinator at 127.0.0.1:" in result.stdout
    assert "devices ['CPU:0', 'CPU:1']" in result.stdout
    assert "one device ['CPU:1']" in result.stdout
    assert f"exported {tmp_path / 'export' / '1'}" in result.stdout
    assert "differ from the JAX model's by up to" in refused[9]
    assert "no version was written" in refused[9]
    assert "versions ['1']" in result.stdout
    assert "The SavedModel export runs on Keras' TensorFlow backend" in refused[10]


def test_training_on_torch_is_one_line(folder, tmp_path):
    result = run_python(
        ["scripts/train.py", *_flags(folder, tmp_path)], env={**QUIET, "KERAS_BACKEND": "torch"}
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "training runs on Keras' TensorFlow and JAX backends; KERAS_BACKEND is 'torch'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")
