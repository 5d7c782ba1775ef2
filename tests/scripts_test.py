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


def test_readme_python_example_runs():
    """The README's usage example is run as written."""
    import re

    from tests.conftest import REPO_ROOT

    with open(f"{REPO_ROOT}/README.md", encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert blocks
    result = run_python(["-c", blocks[0] + "\nassert features.shape == (2, 4096)\n"])
    assert result.returncode == 0, result.stderr[-2000:]
