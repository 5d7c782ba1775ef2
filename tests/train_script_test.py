"""scripts/train.py, run for real in subprocesses on tiny data.

A full AlexNet (57M parameters at 3 classes) trains a few steps of batch 4 on a small image
folder; every run also writes its 455 MB backup and best model, so these tests take a while.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT, run_python, write

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def _flags(folder, tmp_path, **overrides):
    flags = {
        "dataset": "image_folder",
        "image_dir": folder,
        "model_dir": str(tmp_path / "run"),
        "export_dir": str(tmp_path / "export"),
        "epochs": 2,
        "steps_per_epoch": 2,
        "batch_size": 4,
        "init": "he",
        "learning_rate": 0.001,
        # float32 on every machine: the resume tests compare accuracies exactly, which
        # bfloat16 rounding (auto's choice on CPUs with AMX or AVX512_BF16) does not allow.
        "mixed_precision": "none",
    }
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def _train(args, **kwargs):
    return run_python(["scripts/train.py", *args], env=QUIET, **kwargs)


def _history(model_dir):
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        return list(csv.DictReader(f))


def _state(model_dir):
    with open(os.path.join(model_dir, "backup", "state.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_quickstart_recipe_end_to_end(tmp_path, shapes_data_dir):
    """The quickstart flagfile with small overrides: trains, exports, and is not trained again."""
    args = [
        "--flagfile=configs/quickstart.flags",
        f"--data_dir={shapes_data_dir}",
        f"--model_dir={tmp_path / 'run'}",
        f"--export_dir={tmp_path / 'export'}",
        "--epochs=2",
        "--steps_per_epoch=2",
        "--batch_size=8",
    ]
    result = _train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    # --mixed_precision=auto: the choice and its reason are printed and kept in the backup.
    from keras_alexnet.precision import choose_precision

    policy = choose_precision("auto").policy
    assert f"Training in precision {policy} (auto: " in result.stdout
    assert _state(tmp_path / "run")["precision"] == policy
    export = tmp_path / "export" / "1"
    assert f"Exported to {export}" in result.stdout
    assert "validation top-1 accuracy" in result.stdout
    assert (export / "saved_model.pb").exists()
    assert os.listdir(tmp_path / "export") == ["1"]  # no temporary directory left
    rows = _history(tmp_path / "run")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert {"loss", "top1_accuracy", "top5_accuracy", "val_loss", "val_top1_accuracy"} <= set(
        rows[0]
    )
    assert os.listdir(tmp_path / "run" / "logs")  # TensorBoard
    names = (tmp_path / "run" / "class_names.txt").read_text().split()
    assert names[:3] == ["circle", "ellipse", "triangle"] and len(names) == 10
    assert (tmp_path / "run" / "stats.json").exists()

    # The exported SavedModel computes what the best model computes.
    check = f"""
import numpy as np, tensorflow as tf, keras, keras_alexnet
from keras_alexnet.data import IMAGENET_STATS
model = keras.saving.load_model({str(tmp_path / "run" / "best.keras")!r})
served = tf.saved_model.load({str(export)!r}).signatures["predict_images"]
x = np.random.default_rng(0).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
want = model(x - np.float32(IMAGENET_STATS.mean_rgb)).numpy()
# mixed_bfloat16: graph and eager kernels round differently
np.testing.assert_allclose(served(images=x)["probabilities"].numpy(), want, atol=2e-3)
"""
    result = run_python(["-c", check], env=QUIET)
    assert result.returncode == 0, result.stderr[-3000:]

    # The same command again: the run is finished, nothing is trained or exported again.
    result = _train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "not training again" in result.stdout
    assert os.listdir(tmp_path / "export") == ["1"]

    # More epochs continue the finished run and export the next version.
    result = _train([*args, "--epochs=3"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Exported to {tmp_path / 'export' / '2'}" in result.stdout
    assert [row["epoch"] for row in _history(tmp_path / "run")] == ["1", "2", "3"]


def _start(args):
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, **QUIET),
    )


def _interrupt_in_epoch_2(args, sig):
    """Starts a run, sends `sig` once epoch 2 has begun, and returns (returncode, output)."""
    process = _start(args)
    output = []
    for line in process.stdout:
        output.append(line)
        if "Epoch 2/" in line:
            time.sleep(1.0)  # inside the epoch, or (fast CPUs) just after it
            process.send_signal(sig)
            break
    rest, _ = process.communicate(timeout=600)
    return process.returncode, "".join(output) + rest


@pytest.mark.slow
def test_killed_and_terminated_runs_resume_as_if_uninterrupted(folder, tmp_path):
    """SIGKILL or SIGTERM during epoch 2 of 3, then the same command: the history is complete,
    and the learning rate (reduced on plateaus) and the metrics equal an uninterrupted run's."""
    # A plateau schedule that acts within 3 epochs: patience 1, unlimited reductions.
    common = dict(epochs=3, steps_per_epoch=4, lr_reduce_patience=1, max_lr_reductions=5)

    reference = _train(_flags(folder, tmp_path / "reference", **common))
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = _history(tmp_path / "reference" / "run")
    assert [row["epoch"] for row in expected] == ["1", "2", "3"]

    for name, sig in (("killed", signal.SIGKILL), ("terminated", signal.SIGTERM)):
        args = _flags(folder, tmp_path / name, **common)
        code, output = _interrupt_in_epoch_2(args, sig)
        state = _state(tmp_path / name / "run")
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
            assert (state["epoch"], state["step"]) == (1, 0)  # the last completed epoch
        else:
            assert code == 143, output[-3000:]
            if "Stopped by SIGTERM at step" in output:  # saved mid-epoch
                assert state["epoch"] == 1 and state["step"] >= 1
            else:  # the signal came in epoch 2's last step (fast CPUs): saved after it
                assert "Stopped by SIGTERM after epoch 2" in output, output[-3000:]
                assert (state["epoch"], state["step"]) == (2, 0)
        assert not os.path.exists(tmp_path / name / "export")

        resumed = _train(args)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        where = f"at epoch {state['epoch'] + 1}, step {state['step']}"
        assert f"Resuming {tmp_path / name / 'run'} {where}" in resumed.stdout
        history = _history(tmp_path / name / "run")
        assert [row["epoch"] for row in history] == ["1", "2", "3"]
        for got, want in zip(history, expected, strict=True):
            # The learning rate, decided by the plateau schedule from the restored counters,
            # is exact. The metrics get tolerances: these runs are not bit-identical to the
            # reference (a known defect, see README "A run is safe to stop"). The training loss
            # differed by up to 3% here, 2026-11-23, and in one run also in an epoch finished
            # before a SIGTERM, so not only after a resume; in one CI run of 4 the top-1
            # accuracy on the 3 validation images differed by one image (2/3 for 3/3).
            assert got["learning_rate"] == want["learning_rate"], (name, got["epoch"])
            accuracy_change = abs(
                float(got["val_top1_accuracy"]) - float(want["val_top1_accuracy"])
            )
            assert accuracy_change <= 1 / 3 + 1e-6, (name, got["epoch"])
            assert float(got["loss"]) == pytest.approx(float(want["loss"]), rel=6e-2), name
            # val_loss over 3 images: one CI run saw 3.4% apart after a SIGTERM resume (two
            # others within 2%), with the same learning rates and accuracies.
            assert float(got["val_loss"]) == pytest.approx(float(want["val_loss"]), rel=1e-1)
        assert _state(tmp_path / name / "run")["finished"] == "epochs"


@pytest.mark.slow
def test_towers_on_two_logical_cpus_trains(folder, tmp_path):
    args = _flags(folder, tmp_path, epochs=1, strategy="towers", logical_cpus=2)
    result = _train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "export" / "1" / "saved_model.pb").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_on_localhost_only_the_chief_writes(folder, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    # 3 validation images: one full batch of 2 (1 per worker).
    args = _flags(folder, tmp_path, epochs=1, strategy="multi_worker", batch_size=2)
    processes, scratch = [], []
    for index in range(2):
        tmpdir = tmp_path / f"tmp{index}"
        tmpdir.mkdir()
        scratch.append(tmpdir)
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = dict(os.environ, **QUIET, TF_CONFIG=tf_config, TMPDIR=str(tmpdir))
        processes.append(
            subprocess.Popen(
                [sys.executable, "scripts/train.py", *args],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    for p, output in zip(processes, outputs, strict=True):
        assert p.returncode == 0, output[-3000:]
    assert f"Exported to {tmp_path / 'export' / '1'}" in outputs[0]
    assert "Exported to" not in outputs[1]
    assert os.listdir(tmp_path / "export") == ["1"]
    assert [row["epoch"] for row in _history(tmp_path / "run")] == ["1"]
    assert not os.listdir(scratch[1])  # the worker cleaned up its scratch directory


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--batch_size=0", "batch_size"),
        ("--strategy=pipeline", "strategy"),
        ("--mixed_precision=fp8", "mixed_precision"),
        ("--lr_reduce_factor=10", "lr_reduce_factor"),
        ("--momentum=1.5", "momentum"),
        ("--tower_devices=/cpu:0,/cpu:0", "tower_devices"),
        ("--epochs=zero", "epochs"),
        ("--dataset=alexnet_shapes", "image_dir is not used by dataset='alexnet_shapes'"),
    ],
)
def test_bad_flag_exits_non_zero_naming_it(folder, tmp_path, flag, message):
    result = _train([*_flags(folder, tmp_path), flag], timeout=300)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "export")


def test_batch_not_divisible_over_replicas_is_an_error(folder, tmp_path):
    args = _flags(folder, tmp_path, batch_size=5, logical_cpus=2)
    result = _train(args, timeout=300)
    assert result.returncode != 0
    assert "batch_size (the global batch) must divide evenly over the 2 replicas" in result.stderr


def test_an_unusable_run_directory_is_one_line(folder, tmp_path):
    """Issue 13, defect 6: these were tracebacks (FileExistsError, JSONDecodeError)."""
    (tmp_path / "run").write_text("a file")
    result = _train(_flags(folder, tmp_path), timeout=300)
    assert result.returncode == 1
    assert "ERROR: --model_dir" in result.stderr and "is a file, not a directory" in result.stderr
    assert "Traceback" not in result.stderr

    os.remove(tmp_path / "run")
    write(f"{tmp_path}/run/backup/state.json", b'{"epoch": 1, "st')
    result = _train(_flags(folder, tmp_path), timeout=300)
    assert result.returncode == 1
    assert "state.json is damaged and cannot be resumed" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path / "run")) == [".lock", "backup"]
