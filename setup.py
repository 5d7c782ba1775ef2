"""Packaging for keras_alexnet. Tool settings (pytest, ruff) live in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    name="keras_alexnet",
    version="0.1.0",
    description="The AlexNet of Krizhevsky, Sutskever & Hinton (2012) for TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["keras_alexnet", "keras_alexnet.*"]),
    package_data={"keras_alexnet": ["resources/*.json", "resources/*.md"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        # keras_alexnet/compat.py uses private Keras APIs, checked with 3.15 (tests/compat_test.py):
        # widen this range after that test passes on a newer Keras.
        "keras>=3.15,<3.16",
        "tensorflow-datasets>=4.9.10,<4.10",
        # tensorflow-datasets imports it when preparing ImageNet but does not declare it.
        "importlib_resources>=6",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "h5py>=3.10,<4",
        "pillow>=10,<14",
        # TensorFlow 2.21 no longer installs it; training writes TensorBoard logs.
        "tensorboard>=2.21,<2.22",
        # The TF Serving warmup records of an export and gRPC prediction (protos only).
        "tensorflow-serving-api>=2.21,<2.22",
    ],
    extras_require={
        # Loading the ONNX form of Caffe's bvlc_alexnet (keras_alexnet.pretrained), and the ONNX
        # export (scripts/export.py --also=onnx).
        "onnx": ["onnx>=1.16,<2"],
        # The model on Keras' other backends (KERAS_BACKEND=jax or torch; README, Backends).
        # Tested with jax 0.10.2 and torch 2.13.0 (CPU builds).
        "jax": ["jax[cpu]>=0.10,<0.11"],
        "torch": ["torch>=2.13,<2.14"],
        # onnxruntime is the tests' reference for ONNX graphs; it is never imported by the package.
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            # Two test processes (pyproject.toml's addopts): the suite is mostly single-threaded
            # Python, TensorFlow imports and file writes, which two cores overlap.
            "pytest-xdist>=3.6,<4",
            "onnx>=1.16,<2",
            "onnxruntime>=1.18,<2",
            # tests/backends_test.py runs the model under JAX and PyTorch. torch is pinned to
            # the release whose CPU build (190 MB) CI's machines hold on disk; PyPI's own Linux
            # wheels are CUDA builds of several GB.
            "jax[cpu]>=0.10,<0.11",
            "torch==2.13.0",
        ],
    },
)
