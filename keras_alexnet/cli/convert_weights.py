"""Converts Caffe's trained bvlc_alexnet (.caffemodel, or its ONNX form .onnx) to a .keras file.

    alexnet-convert-weights bvlc_alexnet.caffemodel --output=bvlc_alexnet.keras
    alexnet-export --model=bvlc_alexnet.keras      # TF Serving, ImageNet class names
    alexnet-convert-weights bvlc_alexnet.caffemodel --install  # for weights="imagenet"

The .keras model is `AlexNet(lrn="caffe")` with the file's weights, computing what Caffe
computes, for RGB 0..255 input through `keras_alexnet.preprocess_input` (the export does that
itself). The file's size and hash are printed, and which known release it is
(`keras_alexnet.IMAGENET_WEIGHTS`). `--install` puts a known release, converted, into the Keras
cache, where `AlexNet(weights="imagenet")` finds it without a download.
"""

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "The .keras file to write.")
flags.DEFINE_bool(
    "install", False, "Put a known release into the Keras cache for AlexNet(weights='imagenet')."
)
flags.DEFINE_bool("include_top", True, "Convert fc6-fc8 too (False: the convolutional base).")
flags.DEFINE_bool("overwrite", False, "Replace --output if it exists.")
flags.register_validator(
    "output",
    lambda output: bool(output) != FLAGS.install,
    "give one of --output=X.keras (convert to a file) and --install (into the Keras cache)",
)


def _error(message):
    print(f"ERROR: {message}", file=sys.stderr)
    return 1


# The converted model is written to `<output>.partial-<pid>.keras` and renamed.
_PARTIAL = ".partial-"


def _remove_abandoned_partials(output):
    """Removes what a conversion killed midway left beside `output` (its process is gone)."""
    from keras_alexnet import machine

    folder = os.path.dirname(os.path.abspath(output))
    prefix = os.path.basename(output) + _PARTIAL
    for name in os.listdir(folder):
        pid = name[len(prefix) : -len(".keras")] if name.startswith(prefix) else ""
        if name.endswith(".keras") and pid.isascii() and pid.isdigit():
            if not machine.process_alive(int(pid)):
                os.remove(os.path.join(folder, name))
                print(f"Removed {name}, left by a conversion that was killed.")


def main(argv):
    if len(argv) != 2:
        return _error("give exactly one weights file: convert_weights.py SRC --output=X.keras")
    source = os.path.expanduser(argv[1])
    if FLAGS.install:
        return _install(source)
    output = os.path.expanduser(FLAGS.output)
    if not output.endswith(".keras"):
        return _error(f"--output must end in .keras; received --output={FLAGS.output}")
    if os.path.isdir(output):
        return _error(f"--output={output} is a folder; give the path of a .keras file.")
    if os.path.exists(output) and not FLAGS.overwrite:
        return _error(f"{output} exists; pass --overwrite to replace it.")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        return _error(f"the folder of --output, {folder}, does not exist: create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        return _error(f"cannot write in {folder} (--output's folder): choose another folder.")
    if not os.path.isfile(source):
        return _error(f"{source} does not exist or is not a file.")
    import keras_alexnet  # isort: skip  (before TensorFlow loads: see keras_alexnet.machine)
    from keras_alexnet import model_card
    from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES
    from keras_alexnet.weights import FOREIGN_FILE, resolve_weights

    identified = _describe_file(source)
    try:
        weights = resolve_weights(source)
        if weights.kind != FOREIGN_FILE:
            return _error(f"{source} is not a .caffemodel or .onnx file of bvlc_alexnet.")
        classes = weights.classes() or NUM_IMAGENET_CLASSES  # (the file is parsed once, here)
        model = keras_alexnet.AlexNet(include_top=FLAGS.include_top, classes=classes, lrn="caffe")
        weights.load_into(model, FLAGS.include_top)
    except ValueError as error:
        return _error(error)
    _remove_abandoned_partials(output)
    partial = f"{output}{_PARTIAL}{os.getpid()}.keras"
    try:
        model.save(partial)
        model_card.write_card(partial, model_card.foreign_file_origin(source, *identified))
        os.replace(partial, output)
    except OSError as error:
        return _error(
            f"could not write {output} ({error.strerror or error}): free space or choose "
            "another folder; nothing was written there."
        )
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    top = f"{classes} classes" if FLAGS.include_top else "convolutional base"
    print(f"Wrote {output}: AlexNet(lrn='caffe'), {top}, {model.count_params():,} parameters.")
    if FLAGS.include_top:
        print(f"Export it for TF Serving with: alexnet-export --model={output}")
    return 0


def _install(source):
    import keras_alexnet  # noqa: F401  isort: skip  (before TensorFlow loads)
    from keras_alexnet.pretrained import weights_cache

    try:
        path = weights_cache.install(source)
    except ValueError as error:
        return _error(error)
    print(f"Installed {source} as {path}: AlexNet(weights='imagenet') loads it from there.")
    return 0


def _describe_file(path):
    """Prints the file's size, hash and which known release it is; returns those two."""
    from keras_alexnet.pretrained import weights_cache

    described, release = weights_cache.known_release(path)
    print(f"{path}: {described}")
    if release:
        print(f"This is {release.filename}, published by {release.published_by}.")
    else:
        print(
            "This is none of the known releases of bvlc_alexnet (keras_alexnet.IMAGENET_WEIGHTS"
            ".sources); it is loaded if its network is bvlc_alexnet's."
        )
    return described, release


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
