"""The scripts, run for real in a subprocess."""

from tests.conftest import run_python


def test_summary_prints_the_papers_parameter_count():
    result = run_python(["scripts/summary.py"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Total parameters: 60,965,224" in result.stdout
    assert "conv1_a" in result.stdout and "predictions" in result.stdout


def test_summary_bad_flag_exits_non_zero_naming_it():
    result = run_python(["scripts/summary.py", "--tower_devices=/GPU:0"])
    assert result.returncode != 0
    assert "tower_devices" in result.stderr
    result = run_python(["scripts/summary.py", "--classes=0"])
    assert result.returncode != 0
    assert "classes" in result.stderr


def test_the_precision_example_of_docs_training_runs():
    """docs/training.md's Python example (choosing the precision) is run as written."""
    import re

    from tests.conftest import REPO_ROOT

    with open(f"{REPO_ROOT}/docs/training.md", encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    (choosing,) = [block for block in blocks if "choose_precision" in block]
    result = run_python(["-c", choosing])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("precision ")


def test_compute_stats_on_an_image_folder(image_folder, tmp_path):
    from keras_alexnet.data import eval_dataset, image_folder_source, load_stats

    output = tmp_path / "out" / "stats.json"
    result = run_python(
        [
            "scripts/compute_stats.py",
            "--dataset=image_folder",
            f"--image_dir={image_folder}",
            f"--output={output}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = load_stats(output)
    # Every decodable training image is measured; fox/garbled.jpg, if in train, is skipped.
    source = image_folder_source(image_folder)
    decodable = sum(int(x.shape[0]) for x, _ in eval_dataset(source, 4, split="train"))
    assert stats.num_images == decodable
    assert all(0 < v < 255 for v in stats.mean_rgb)
    assert f"Wrote {output}" in result.stdout


def test_compute_stats_bad_flags():
    result = run_python(["scripts/compute_stats.py"])
    assert result.returncode != 0 and "--output" in result.stderr
    result = run_python(
        ["scripts/compute_stats.py", "--dataset=no_such_set", "--output=/tmp/x.json"]
    )
    assert result.returncode != 0 and "no_such_set" in result.stderr


def test_compute_stats_checks_its_output_before_reading_any_image(tmp_path):
    """A folder, or a path through a file: one line, before the dataset is read (so
    --dataset=no_such_set is never reached). (A folder without write permission is refused
    the same way, by os.access; the tests run as root, for whom every folder is writable.)"""
    (tmp_path / "a_file").write_text("not a folder")
    for output, words in (
        (tmp_path, "is a folder; give the path of a .json file"),
        (tmp_path / "a_file" / "stats.json", "a_file is a file"),
    ):
        result = run_python(
            ["scripts/compute_stats.py", "--dataset=no_such_set", f"--output={output}"]
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert words in result.stderr and "no_such_set" not in result.stderr, result.stderr


def test_outputs_that_are_devices_and_requests_past_memory_are_one_line(tmp_path):
    """compute_stats --output=/dev/null replaced the device with a JSON file (as root);
    evaluate --output=/dev/full wrote into it; summary --classes=10000000 was a traceback."""
    import os

    before = os.stat("/dev/null")
    for args, words in (
        (["scripts/compute_stats.py", "--output=/dev/null"], "/dev/null is not a regular file"),
        (["scripts/summary.py", "--classes=10000000"], "ERROR: not enough memory for what"),
    ):
        result = run_python(args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        assert len(errors) == 1 and words in errors[0], result.stderr[-2000:]
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
