"""The commands' quiet start (`keras_alexnet_cli.quiet_start`): known start-up lines dropped,
everything else shown at once, a fatal native message shown even when the process aborts;
and the library itself touching no file descriptor."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from keras_alexnet_cli import quiet_start


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_a_native_abort_inside_the_quiet_start_still_shows_its_reason():
    result = _run(
        """
        import os
        from keras_alexnet_cli import quiet_start
        with quiet_start.native_lines_filtered():
            os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\\n")
            os.write(2, b"F0000 00:00:1.0 1 check.cc:1] Check failed: the reason it died\\n")
            os.write(2, b"a last line without its newline")
            os.abort()
        """
    )
    assert result.returncode == -6  # SIGABRT, as a native abort ends
    assert "Check failed: the reason it died" in result.stderr
    assert "a last line without its newline" in result.stderr
    assert "oneDNN custom operations" not in result.stderr


def test_lines_pass_in_order_and_the_screen_is_whole_again_after():
    result = _run(
        """
        import os, sys
        from keras_alexnet_cli import quiet_start
        with quiet_start.native_lines_filtered():
            print("our warning", file=sys.stderr)
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                        b"written to STDERR\\n")
            os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: "
                        b"UNKNOWN ERROR (303)\\n")
            os.write(2, b"native trouble\\n")
        print("after", file=sys.stderr)
        """
    )
    assert result.returncode == 0, result.stderr
    expected = ["our warning", "native trouble", "after"]
    if quiet_start.has_nvidia_gpu():  # where a GPU is, CUDA's errors are problems and show
        expected.insert(1, next(line for line in result.stderr.splitlines() if "cuInit" in line))
    assert result.stderr.splitlines() == expected


def test_cuda_errors_are_noise_only_without_a_gpu():
    line = b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: CUDA error"
    assert quiet_start.noise_pattern(gpu=False).fullmatch(line)
    assert not quiet_start.noise_pattern(gpu=True).fullmatch(line)
    assert quiet_start.noise_pattern(gpu=True).fullmatch(b"I0000 00:00:1.0 1 port.cc:153] x")


def test_importing_the_library_touches_no_file_descriptor():
    result = _run(
        """
        import os
        calls = []
        before = os.fstat(2)
        for name in ("dup", "dup2", "fork"):  # how a library would swap stderr away
            real = getattr(os, name)
            def spy(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return _real(*args, **kwargs)
            setattr(os, name, spy)
        os.environ["KERAS_ALEXNET_QUIET_START"] = "1"
        import keras_alexnet
        after = os.fstat(2)
        print((before.st_dev, before.st_ino) == (after.st_dev, after.st_ino), sorted(set(calls)))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True []"
