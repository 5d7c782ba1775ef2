"""Packaging for keras_alexnet. Tool settings (pytest, ruff) live in pyproject.toml.

The version has one source, `__version__` in keras_alexnet/version.py, read here as text (so
that building the package imports none of it)."""

import re

from setuptools import find_packages, setup

with open("keras_alexnet/version.py", encoding="utf-8") as version_file:
    VERSION = re.search(r'^__version__ = "([^"]+)"$', version_file.read(), re.M).group(1)

# The TensorFlow side: the commands (tf.data input, tf.distribute training, the SavedModel
# export for TF Serving). The model alone needs none of it (the "jax" and "torch" extras).
TENSORFLOW = [
    "tensorflow>=2.21,<2.22",
    "tensorflow-datasets>=4.9.10,<4.10",
    # tensorflow-datasets imports it when preparing ImageNet but does not declare it.
    "importlib_resources>=6",
    "absl-py>=2.1,<3",
    # TensorFlow 2.21 no longer installs it; training writes TensorBoard logs.
    "tensorboard>=2.21,<2.22",
    # The TF Serving warmup records of an export and gRPC prediction (protos only).
    "tensorflow-serving-api>=2.21,<2.22",
]
# Tested: jax 0.10.2 on Python 3.11 and 0.12.1 on Python 3.12 (jax 0.11 onwards needs 3.12),
# CPU builds; torch 2.13.0, its CPU build (docs/design.md, "The package").
JAX = ["jax[cpu]>=0.10,<0.13"]
TORCH = ["torch>=2.13,<2.14"]

setup(
    name="keras_alexnet",
    version=VERSION,
    description="The AlexNet of Krizhevsky, Sutskever & Hinton (2012) for TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10,<3.14",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: OS Independent",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
    # keras_alexnet_cli: the commands' launcher, outside keras_alexnet so that it runs before
    # TensorFlow loads.
    packages=find_packages(include=["keras_alexnet", "keras_alexnet.*", "keras_alexnet_cli"]),
    package_data={
        "keras_alexnet": [
            "py.typed",
            "resources/*.json",
            "resources/*.md",
            "configs/*.flags",
            "configs/*.md",
        ]
    },
    entry_points={
        "console_scripts": [
            "alexnet-train = keras_alexnet_cli:train",
            "alexnet-predict = keras_alexnet_cli:predict",
            "alexnet-evaluate = keras_alexnet_cli:evaluate",
            "alexnet-export = keras_alexnet_cli:export",
            "alexnet-convert-weights = keras_alexnet_cli:convert_weights",
            "alexnet-compute-stats = keras_alexnet_cli:compute_stats",
            "alexnet-plot-history = keras_alexnet_cli:plot_history",
            "alexnet-show-filters = keras_alexnet_cli:show_filters",
            "alexnet-similar = keras_alexnet_cli:similar",
            "alexnet-summary = keras_alexnet_cli:summary",
        ]
    },
    # The model alone (keras.applications' contract, the trained weights): Keras and what its
    # weights files need. Keras' backend comes from an extra, as with Keras itself.
    install_requires=[
        # keras_alexnet/compat.py uses private Keras APIs, checked with 3.15 (tests/compat_test.py):
        # widen this range after that test passes on a newer Keras.
        "keras>=3.15,<3.16",
        "numpy>=1.26,<3",
        "h5py>=3.10,<4",
        "pillow>=10,<14",
    ],
    extras_require={
        "tensorflow": TENSORFLOW,
        # Loading the ONNX form of Caffe's bvlc_alexnet (keras_alexnet.pretrained), and the ONNX
        # export (alexnet-export --also=onnx).
        "onnx": ["onnx>=1.16,<2"],
        # The model on Keras' other backends (KERAS_BACKEND=jax or torch; docs/model.md).
        "jax": JAX,
        "torch": TORCH,
        # onnxruntime is the tests' reference for ONNX graphs; it is never imported by the package.
        "test": [
            *TENSORFLOW,
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
            *JAX,
            "torch==2.13.0",
            # tests/packaging_test.py builds the wheel and the sdist and checks them.
            "build>=1.2,<2",
            "twine>=6,<8",
            "setuptools>=68",
            "wheel",
        ],
    },
)
