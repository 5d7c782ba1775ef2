"""scripts/train.py, run for real in subprocesses on tiny data.

A full AlexNet (57M parameters at 3 classes) trains a few steps of batch 4 on a small image
folder; every run also writes its 455 MB backup and best model, so these tests take a while.
The behaviours of a run that do not need the real script or network are in run_test.py.
"""

import csv
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import keras_alexnet
from tests.conftest import REPO_ROOT, run_python

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
    from keras_alexnet.training.precision import choose_precision

    policy = choose_precision("auto").policy
    assert f"Training in precision {policy} (auto: " in result.stdout
    assert _state(tmp_path / "run")["adjustable"]["precision"] == policy
    settings = _state(tmp_path / "run")["settings"]
    assert (settings["gradient_centralization"], settings["adam_beta_2"]) == (True, 0.99)
    export = tmp_path / "export" / "1"
    assert f"Exported to {export}" in result.stdout
    assert "validation top-1 accuracy" in result.stdout
    assert f"Classify pictures: alexnet-predict --model={tmp_path / 'export'}" in (result.stdout)
    # The screen holds our lines only: no TensorFlow start-up lines, no CUDA probe, no
    # tensorflow-datasets INFO per stream, no progress bar redraws (--verbose=2).
    screen = result.stdout + result.stderr
    for noise in ("I0000", "absl::InitializeLog", "cuInit", "Constructing tf.data", "\r", "━"):
        assert noise not in screen, noise
    assert len(screen.strip().splitlines()) < 15, screen
    # The main job's last command: one line per picture, and nothing of TensorFlow's.
    pictures = sorted(glob.glob(os.path.join(REPO_ROOT, "examples", "*.jpg")))
    predicted = run_python(["scripts/predict.py", f"--model={tmp_path / 'export'}", *pictures])
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = predicted.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == pictures, predicted.stdout
    assert predicted.stderr.strip() == "", predicted.stderr
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

    # The exported SavedModel computes what the best model computes. (Running the command
    # again, and with more epochs: run_test.py, in-process.)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_alexnet.data import IMAGENET_STATS

    model = keras.saving.load_model(str(tmp_path / "run" / "best.keras"))
    served = tf.saved_model.load(str(export)).signatures["predict_images"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
    want = model(x - np.float32(IMAGENET_STATS.mean_rgb)).numpy()
    got = served(images=x)["probabilities"].numpy()
    # mixed_bfloat16: graph and eager kernels round differently, and bfloat16 keeps 8 bits of
    # mantissa (a logit of about 5 moves by 0.02 in one rounding step): seen 2.9e-3 apart on
    # an AMD EPYC Zen 4 with AVX512_BF16, within 2e-3 on other machines.
    atol = 1e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(got, want, atol=atol)

    # Fine-tuning from the quickstart's own best model (init=he) needs no --init: the file's
    # variant is used; a contradicting flag is one line naming the file's value.
    tune = [
        f"--weights={tmp_path / 'run' / 'best.keras'}",
        "--train_from=predictions",
        f"--data_dir={shapes_data_dir}",
        "--dataset=alexnet_shapes",
        "--epochs=1",
        "--steps_per_epoch=1",
        "--batch_size=4",
        "--mixed_precision=none",
        f"--export_dir={tmp_path / 'tuned_export'}",
    ]
    contradicted = _train([*tune, f"--model_dir={tmp_path / 'no'}", "--init=paper"])
    assert contradicted.returncode == 1
    assert contradicted.stderr.strip().splitlines() == [
        f"ERROR: init='paper' contradicts weights='{tmp_path / 'run' / 'best.keras'}', which "
        "was saved from an AlexNet of init='he'. Leave out init (the file's is used)."
    ]
    assert not (tmp_path / "no").exists()
    start = tmp_path / "fx" / "start.keras"
    start.parent.mkdir()
    shutil.copy(tmp_path / "run" / "best.keras", start)
    tune[0] = f"--weights={start}"
    tuned = _train([*tune, f"--model_dir={tmp_path / 'tuned'}"])
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "Training predictions onwards" in tuned.stdout
    assert _state(tmp_path / "tuned")["settings"]["init"] == "he"
    assert _state(tmp_path / "tuned")["settings"]["weights"]["path"] == str(start)
    assert (tmp_path / "tuned_export" / "1" / "saved_model.pb").exists()

    # Resuming needs only what it uses: the same file spelled (and placed) otherwise is
    # known by its digest; once the file is gone, by its path (the backup holds the rest).
    moved = tmp_path / "elsewhere" / "copy.keras"
    moved.parent.mkdir()
    shutil.copy(start, moved)
    more = [f"--weights={moved}", *tune[1:], f"--model_dir={tmp_path / 'tuned'}"]
    resumed = _train([*more, "--epochs=2"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start.unlink()
    gone = _train(
        [f"--weights={start}", *tune[1:], f"--model_dir={tmp_path / 'tuned'}"] + ["--epochs=3"]
    )
    assert gone.returncode == 0, gone.stderr[-3000:]
    assert (
        _state(tmp_path / "tuned")["epoch"] == 3 and len(_state(tmp_path / "tuned")["history"]) == 3
    )
    assert sorted(os.listdir(tmp_path / "tuned_export")) == ["1", "2", "3"]

    # Fresh layers are never frozen: a base-only file (no fc6, fc7) with
    # --train_from=predictions is one line, before anything trains.
    base = tmp_path / "fx" / "base.weights.h5"
    keras_alexnet.AlexNet(include_top=False, init="he").save_weights(base)
    frozen = _train([f"--weights={base}", *tune[1:], f"--model_dir={tmp_path / 'base'}"])
    assert frozen.returncode == 1
    assert frozen.stderr.strip().splitlines() == [
        f"ERROR: weights={base} hold no values for fc6_a, fc6_b, fc7_a, fc7_b, which start "
        "fresh; train_from=predictions would freeze them at their random start. Give "
        "--train_from=fc6 or an earlier block."
    ]


def _as_from_a_terminal():
    """In the child before it starts: the signal state of a command typed at a terminal. A
    test worker may run with signals blocked or ignored (inherited by its children), and then
    a SIGINT never reaches the script."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args):
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, **QUIET),
        preexec_fn=_as_from_a_terminal,
    )


def _signal_state(pid):
    """The process's blocked and ignored signal masks (Linux), for a failure's message."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return "".join(line for line in status if line.startswith(("SigBlk", "SigIgn")))
    except OSError:
        return ""


def _interrupt_in_epoch_2(args, sig):
    """Starts a run, sends `sig` once epoch 2 has begun, and returns (returncode, output)."""
    process = _start(args)
    output, signals = [], ""
    for line in process.stdout:
        output.append(line)
        if "Epoch 2/" in line:
            time.sleep(1.0)  # inside the epoch, or (fast CPUs) just after it
            signals = _signal_state(process.pid)
            process.send_signal(sig)
            break
    rest, _ = process.communicate(timeout=600)
    return process.returncode, "".join(output) + rest + f"\n(signal state when sent:\n{signals})"


@pytest.mark.slow
def test_killed_and_terminated_runs_resume(folder, tmp_path):
    """The real script and network: SIGKILL or SIGTERM during epoch 2 of 2, then the same
    command resumes where the backup is, completes the history and exports. That the resumed
    run computes what an uninterrupted one does, bit for bit, is run_test.py's test (a
    stand-in network, in-process): this network's CPU kernels are not bit-reproducible from
    run to run (docs/training.md, "A run is safe to stop")."""
    for name, sig in (("killed", signal.SIGKILL), ("terminated", signal.SIGTERM)):
        args = _flags(folder, tmp_path / name, epochs=2, steps_per_epoch=3)
        code, output = _interrupt_in_epoch_2(args, sig)
        state = _state(tmp_path / name / "run")
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
            assert (state["epoch"], state["step"]) == (1, 0)  # the last completed epoch
        else:
            assert code == 143, output[-3000:]
            if "Stopped by SIGTERM at step" in output:  # saved mid-epoch
                assert state["epoch"] == 1 and state["step"] >= 1
                assert state["metric_state"]  # the epoch's running metrics, to go on with
            else:  # the signal came in epoch 2's last step (fast CPUs): saved after it
                assert "Stopped by SIGTERM after epoch 2" in output, output[-3000:]
                assert (state["epoch"], state["step"]) == (2, 0)
        assert not os.path.exists(tmp_path / name / "export")

        resumed = _train(args)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        if state["epoch"] < 2:
            where = f"at epoch {state['epoch'] + 1}, step {state['step']}"
            assert f"Resuming {tmp_path / name / 'run'} {where} of 3." in resumed.stdout
        else:
            assert "finished training (epochs); exporting its best model" in resumed.stdout
        assert [row["epoch"] for row in _history(tmp_path / name / "run")] == ["1", "2"]
        final = _state(tmp_path / name / "run")
        assert (final["epoch"], final["step"], final["finished"]) == (2, 0, "epochs")
        assert final["export_path"] == str(tmp_path / name / "export" / "1")
        assert os.listdir(tmp_path / name / "export") == ["1"]


TOWERS_RUN = """
import sys
from keras_alexnet.training.config import TrainConfig
from keras_alexnet.training.strategies import use_logical_cpus
from keras_alexnet.training import train
from tests.stand_in import small_alexnet
use_logical_cpus(2)
folder, tmp = sys.argv[1:]
result = train(
    TrainConfig(dataset="image_folder", image_dir=folder, model_dir=tmp + "/run",
                export_dir=tmp + "/export", epochs=1, steps_per_epoch=2, batch_size=4,
                strategy="towers", mixed_precision="none", verbose=0),
    build_model=lambda **kw: small_alexnet(**kw),
)
print("exported", result.export_path)
"""


def test_towers_on_two_logical_cpus_trains(folder, tmp_path):
    """strategy="towers" through `training.train` (the stand-in network: the real one's tower
    placement is tests/layers/device_placement_test.py). Logical CPUs must be set before
    TensorFlow starts, hence a process of its own."""
    result = run_python(["-c", TOWERS_RUN, folder, str(tmp_path)], env=QUIET)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"exported {tmp_path / 'export' / '1'}" in result.stdout
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
    assert "WARNING: strategy=multi_worker on TensorFlow is MultiWorkerMirrored" in outputs[1]
    assert os.listdir(tmp_path / "export") == ["1"]
    assert [row["epoch"] for row in _history(tmp_path / "run")] == ["1"]
    assert not os.listdir(scratch[1])  # the worker cleaned up its scratch directory


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--batch_size=0", "batch_size"),
        ("--dataset=alexnet_shapes", "image_dir is not used by dataset='alexnet_shapes'"),
    ],
)
def test_bad_flag_exits_non_zero_naming_it(folder, tmp_path, flag, message):
    """The script's two error paths: absl's own flag checks, and the library's
    (SettingsError). Every bad flag is checked in-process in config_test.py."""
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
    """Issue 13, defect 6: this was a traceback (FileExistsError)."""
    (tmp_path / "run").write_text("a file")
    result = _train(_flags(folder, tmp_path), timeout=300)
    assert result.returncode == 1
    assert "ERROR: --model_dir" in result.stderr and "is a file, not a directory" in result.stderr
    assert "Traceback" not in result.stderr
    # (A damaged backup: tests/training/backup_test.py, in-process.)


@pytest.mark.slow
def test_ctrl_c_ends_in_one_line_without_a_traceback(folder, tmp_path):
    returncode, output = _interrupt_in_epoch_2(_flags(folder, tmp_path), signal.SIGINT)
    assert returncode == 130, output[-3000:]
    assert "Interrupted. The last backup in" in output and "run the same command" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
