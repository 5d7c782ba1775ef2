"""Private TensorFlow APIs keras_alexnet relies on, each behind one function.

`tests/compat_test.py` calls every function here, so a TensorFlow upgrade that moves one
fails there, loudly, instead of somewhere deep in a training run.
"""

from __future__ import annotations


def onednn_enabled() -> bool:
    """Whether this TensorFlow process runs its oneDNN CPU kernels (fixed at import time)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
