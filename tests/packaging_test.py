"""The package as a user installs it: the wheel and sdist built from the repository's files,
`twine check --strict`, and the wheel installed into fresh virtualenvs outside the repository
and run from an empty directory: the main job through the package's own commands (the full
install), and the model alone on JAX without TensorFlow (the model-only install)."""

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

# What the sdist must hold: everything a clone needs to build, test and benchmark.
SOURCE_DIRS = (
    "keras_alexnet",
    "keras_alexnet_cli",
    "tests",
    "scripts",
    "benchmarks",
    "docs",
    "examples",
)
SOURCE_FILES = (
    "LICENSE",
    "README.md",
    "MANIFEST.in",
    "pyproject.toml",
    "setup.py",
    "saved_models/README.md",
)
COMMANDS = (
    "alexnet-train",
    "alexnet-predict",
    "alexnet-evaluate",
    "alexnet-export",
    "alexnet-convert-weights",
    "alexnet-compute-stats",
    "alexnet-plot-history",
    "alexnet-show-filters",
    "alexnet-similar",
    "alexnet-summary",
)


def _source_files():
    """The repository's own files (no caches, no build outputs), relative to its root."""
    found = set(SOURCE_FILES)
    for top in SOURCE_DIRS:
        for folder, dirs, files in os.walk(os.path.join(REPO_ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info")]
            for name in files:
                if not name.endswith(".pyc"):
                    found.add(os.path.relpath(os.path.join(folder, name), REPO_ROOT))
    return sorted(found)


def _run(command, **kwargs):
    kwargs.setdefault("timeout", 900)
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist and the wheel, built (sdist first, the wheel from it) from a copy of the
    repository's files: what `python -m build` gives a user."""
    root = tmp_path_factory.mktemp("package")
    source = root / "source"
    for name in _source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO_ROOT, name), source / name)
    _run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist")],
        cwd=source,
    )
    (sdist,) = glob.glob(str(root / "dist" / "*.tar.gz"))
    (wheel,) = glob.glob(str(root / "dist" / "*.whl"))
    return sdist, wheel


def _venv(path):
    """A fresh virtualenv (no system site-packages); returns its bin directory."""
    _run([sys.executable, "-m", "venv", str(path)])
    return path / "bin"


def _clean_env(**extra):
    """The environment of a user's shell: nothing of the repository or of this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON"))}
    env.update(extra)
    return env


def test_wheel_and_sdist_pass_twine_and_hold_what_they_need(dist):
    sdist, wheel = dist
    _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel])
    with tarfile.open(sdist) as archive:
        prefix = os.path.commonpath(archive.getnames())
        held = {os.path.relpath(name, prefix) for name in archive.getnames()}
    missing = sorted(set(_source_files()) - held)
    assert not missing, missing  # the sdist runs the tests and the benchmarks
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        version = os.path.basename(wheel).split("-")[1]
        info = f"keras_alexnet-{version}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert {
        "keras_alexnet_cli/__init__.py",
        "keras_alexnet_cli/__main__.py",
        "keras_alexnet_cli/quiet_start.py",
        "keras_alexnet/py.typed",
        "keras_alexnet/configs/quickstart.flags",
        "keras_alexnet/configs/paper.flags",
        "keras_alexnet/configs/finetune.flags",
        "keras_alexnet/resources/imagenet_class_index.json",
        f"{info}/licenses/LICENSE",
    } <= names
    assert not any(name.startswith(("tests/", "scripts/", "benchmarks/")) for name in names)
    for command in COMMANDS:
        assert f"{command} = keras_alexnet_cli:" in entry_points
    import keras_alexnet

    assert version == keras_alexnet.__version__
    assert "License: Apache-2.0" in metadata or "License-Expression: Apache-2.0" in metadata
    # The model-only install: Keras and its numbers, never TensorFlow.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    base = [line for line in requires if "extra ==" not in line]
    assert not [line for line in base if "tensorflow" in line], base


def _refusal(command, cwd, env):
    """The stderr lines of a command that must exit with status 1."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, (command, result.stdout[-2000:], result.stderr[-2000:])
    return result.stderr.strip().splitlines()


def _site_packages_files(bin_dir):
    (site,) = glob.glob(str(bin_dir.parent / "lib" / "python*" / "site-packages"))
    package = os.path.join(site, "keras_alexnet")
    return sorted(
        os.path.relpath(os.path.join(folder, name), package)
        for folder, dirs, files in os.walk(package)
        for name in files
        if not name.endswith(".pyc")
    )


def test_the_installed_wheel_runs_the_main_job_from_an_empty_directory(
    dist, tmp_path, shapes_data_dir
):
    _, wheel = dist
    bin_dir = _venv(tmp_path / "venv")
    _run([str(bin_dir / "pip"), "install", "-q", f"{wheel}[tensorflow]"], timeout=1800)
    installed = _site_packages_files(bin_dir)
    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env()
    pictures = [os.path.join(REPO_ROOT, "examples", name) for name in ("star.jpg", "ring.jpg")]

    # The main job, shortened: train on the embedded set, export, predict.
    trained = _run(
        [
            str(bin_dir / "alexnet-train"),
            "--config=quickstart",
            f"--data_dir={shapes_data_dir}",
            "--epochs=1",
            "--steps_per_epoch=2",
            "--batch_size=8",
            "--mixed_precision=none",  # float32: the JAX check below compares to 1e-4
        ],
        cwd=work,
        env=env,
    )
    assert "Exported to saved_models/alexnet/1" in trained.stdout, trained.stdout
    assert "Classify pictures: alexnet-predict --model=saved_models/alexnet" in trained.stdout
    assert "Traceback" not in trained.stderr
    assert (work / "runs" / "quickstart" / "best.keras").is_file()
    assert (work / "saved_models" / "alexnet" / "1" / "saved_model.pb").is_file()
    predicted = _run(
        [str(bin_dir / "alexnet-predict"), "--model=saved_models/alexnet", *pictures],
        cwd=work,
        env=env,
    )
    assert [line.split(":")[0] for line in predicted.stdout.splitlines()] == pictures
    assert predicted.stderr.strip() == "", predicted.stderr
    # Outputs in the working directory, nothing written into the installed package.
    assert _site_packages_files(bin_dir) == installed
    assert sorted(os.listdir(work)) == ["runs", "saved_models"]

    # A clone's command, from the installed wheel: the packaged recipe is found by its name;
    # the run is done, so it is not trained again.
    again = _run(
        [
            str(bin_dir / "python"),
            "-m",
            "keras_alexnet_cli",
            "train",
            "--flagfile=configs/quickstart.flags",
            f"--data_dir={shapes_data_dir}",
            "--epochs=1",
            "--steps_per_epoch=2",
            "--batch_size=8",
            "--mixed_precision=none",
        ],
        cwd=work,
        env=env,
    )
    assert "runs/quickstart holds a finished run" in again.stdout, again.stdout
    assert sorted(os.listdir(work / "saved_models" / "alexnet")) == ["1"]
    assert _refusal([str(bin_dir / "alexnet-train"), "--config=quikstart"], work, env) == [
        "ERROR: --config must name one of the packaged recipes ['finetune', 'paper', "
        "'quickstart']; received --config=quikstart. For a file of your own, give "
        "--flagfile=<its path>."
    ]

    # The model-only install, on JAX, without TensorFlow: the trained model loads and
    # computes what TensorFlow computes.
    images = np.random.default_rng(0).uniform(-100, 100, (2, 227, 227, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, keras, keras_alexnet; "
        "m = keras.saving.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], np.asarray(m.predict(np.load(sys.argv[2]), verbose=0)))"
    )
    best = str(work / "runs" / "quickstart" / "best.keras")
    _run(
        [str(bin_dir / "python"), "-c", script, best, tmp_path / "images.npy", tmp_path / "tf"],
        cwd=work,
        env=env,
    )
    model_only = _venv(tmp_path / "model_only")
    _run([str(model_only / "pip"), "install", "-q", f"{wheel}[jax]"], timeout=1800)
    jax_env = _clean_env(KERAS_BACKEND="jax")
    check = (
        "import importlib.util; assert importlib.util.find_spec('tensorflow') is None; "
        "import keras; assert keras.backend.backend() == 'jax'; " + script
    )
    _run(
        [str(model_only / "python"), "-c", check, best, tmp_path / "images.npy", tmp_path / "jax"],
        cwd=work,
        env=jax_env,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "jax.npy"), np.load(tmp_path / "tf.npy"), atol=1e-4
    )
    # A command that needs TensorFlow says so in one line.
    assert _refusal([str(model_only / "alexnet-train"), "--config=quickstart"], work, jax_env) == [
        "ERROR: alexnet-train needs tensorflow, which is not installed (a model-only install): "
        'pip install "keras_alexnet[tensorflow]"'
    ]
