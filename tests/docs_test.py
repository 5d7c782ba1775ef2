"""The documentation rule (CONTRIBUTING.md), held: README.md at most 250 lines, no dated
text in README.md or the package (its recipes included), every relative link in README.md and
docs/ pointing at something, and every command and Python block of README.md run as written,
or marked with the reason it cannot run here.

Each fenced `bash` or `python` block of README.md follows a marker line:
`<!-- docs-test: run ... -->` (run here, in order, in one empty working directory, against a
Keras cache prepared from generated weights, with training cut to two steps), or
`<!-- docs-test: not run (<the reason>) -->`."""

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.weights.prepared_cache import prepare_imagenet_cache

README = os.path.join(REPO_ROOT, "README.md")
MAX_README_LINES = 250
ISO_DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
BLOCK = re.compile(r"<!-- docs-test: (.*?) -->\n```(\w+)\n(.*?)```", re.S)
FENCE = re.compile(r"^```(bash|python)$", re.M)
# The README's main job sets up a virtualenv first; here the suite's own is used.
SETUP = 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[tensorflow]" && '
# Training cut short: what is run is the command's path, not its minutes.
TRAINING_BUDGET = ["--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--mixed_precision=none"]


def _readme():
    with open(README, encoding="utf-8") as file:
        return file.read()


def test_readme_is_a_front_door_of_at_most_250_lines():
    lines = _readme().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference to docs/"


def test_no_dates_in_readme_or_the_package():
    """Dated text belongs in docs/results.md (one row per measurement) or git's history."""
    files = [README] + [
        path
        for path in glob.glob(os.path.join(REPO_ROOT, "keras_alexnet", "**", "*"), recursive=True)
        if path.endswith((".py", ".md", ".flags", ".txt"))
    ]
    dated = []
    for path in files:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if ISO_DATE.search(line):
                    dated.append(f"{os.path.relpath(path, REPO_ROOT)}:{number}: {line.strip()}")
    assert not dated, "\n".join(dated)


def _markdown_files():
    return (
        [README]
        + sorted(glob.glob(os.path.join(REPO_ROOT, "docs", "**", "*.md"), recursive=True))
        + [os.path.join(REPO_ROOT, "CONTRIBUTING.md")]
    )


def test_every_relative_link_points_at_something():
    broken = []
    for path in _markdown_files():
        with open(path, encoding="utf-8") as file:
            text = file.read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            where = os.path.join(os.path.dirname(path), target.split("#")[0])
            if not os.path.exists(where):
                broken.append(f"{os.path.relpath(path, REPO_ROOT)}: {target}")
    assert not broken, broken


def test_every_readme_block_is_run_or_says_why_not():
    text = _readme()
    blocks = BLOCK.findall(text)
    assert len(blocks) == len(FENCE.findall(text)), "a bash or python block without a marker"
    for marker, language, _ in blocks:
        if marker.startswith("not run"):
            assert re.fullmatch(r"not run \(.{10,}\)", marker), marker
        else:
            assert marker.startswith("run"), marker
            assert language in ("bash", "python"), language


def _bash_commands(code):
    """The commands of a bash block: continuation lines joined, comments dropped."""
    code = code.replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in code.splitlines() if line.strip()]


def _with_budget(command):
    """A training command cut to two steps, with the suite's embedded-set folder."""
    words = shlex.split(command)
    if any(word.endswith(("alexnet-train", "scripts/train.py")) for word in words):
        command = " ".join([command, *TRAINING_BUDGET])
    return ["bash", "-c", command]  # as a shell runs it: globs expanded


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, shapes_data_dir):
    """An empty working directory with what README's commands name: examples/, scripts/
    (a clone's shims), photo.jpg, a folder `photos/` of two classes, and a Keras home whose
    cache holds generated ImageNet weights. Returns (directory, environment)."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    shutil.copytree(os.path.join(REPO_ROOT, "examples"), work / "examples")
    shutil.copytree(os.path.join(REPO_ROOT, "scripts"), work / "scripts")
    shutil.copy(work / "examples" / "star.jpg", work / "photo.jpg")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (work / "photos" / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(colour, 30, (64, 80, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(work / "photos" / name / f"{i}.jpg")
    prepare_imagenet_cache(str(root / "keras_home"))
    bin_dir = os.path.dirname(sys.executable)
    env = dict(
        os.environ,
        KERAS_HOME=str(root / "keras_home"),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        TFDS_DATA_DIR=shapes_data_dir,
        # The cache is read, never the network: a proxy that answers nothing stops any download.
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
    )
    return work, env


def _run(words, work, env):
    result = subprocess.run(words, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (words, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_readme_blocks_run_as_written(workdir):
    work, env = workdir
    ran = []
    for marker, language, code in BLOCK.findall(_readme()):
        if not marker.startswith("run"):
            continue
        if language == "python":
            result = _run([sys.executable, "-c", code], work, env)
            ran.append(("python", result.stdout))
            continue
        code = code.replace(SETUP, "").replace(".venv/bin/python", shlex.quote(sys.executable))
        for line in _bash_commands(code):
            for command in line.split(" && "):
                result = _run(_with_budget(command), work, env)
                ran.append((command, result.stdout))
    outputs = dict(ran)
    # The main job: trained on the embedded set, exported, the four pictures classified.
    assert os.path.isdir(work / "saved_models" / "alexnet" / "1")
    predicted = [out for command, out in ran if "scripts/predict.py" in command][0]
    assert len(predicted.strip().splitlines()) == 4, predicted
    # The five lines print three ImageNet classes; the command, the top 5 of photo.jpg.
    assert any(re.match(r"\[\('n\d{8}', '[^']+', 0\.\d+", out) for lang, out in ran), ran
    assert outputs["alexnet-predict --model=imagenet photo.jpg"].startswith("photo.jpg: ")
    # Fine-tuning landed its export, with the folder's class names.
    assert os.path.isfile(work / "saved_models" / "alexnet_finetuned" / "1" / "saved_model.pb")
