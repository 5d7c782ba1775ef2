"""Makes TensorFlow unimportable in this process, as on a machine without it: the backend
tests prove that the model needs only Keras and its backend. `block()` before any import of
keras_alexnet."""

import importlib.abc
import importlib.machinery
import sys

# tests/conftest.py blocks TensorFlow when this is set (the backend tests' pytest runs).
ENV = "KERAS_ALEXNET_TEST_WITHOUT_TENSORFLOW"


class _NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A spec is still found, so libraries that only probe for TensorFlow (torch does) go
    on; importing it fails."""

    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ImportError(f"TensorFlow is blocked in this test ({spec.name})")

    def exec_module(self, module):
        pass


def block() -> None:
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was imported before no_tensorflow.block()")
    sys.meta_path.insert(0, _NoTensorFlow())
