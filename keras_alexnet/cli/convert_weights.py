"""Converts Caffe's trained bvlc_alexnet (.caffemodel, or its ONNX form .onnx) to a .keras file.

    alexnet-convert-weights bvlc_alexnet.caffemodel --output=bvlc_alexnet.keras
    alexnet-export --model=bvlc_alexnet.keras      # TF Serving, ImageNet class names
    alexnet-convert-weights bvlc_alexnet.caffemodel --install  # for weights="imagenet"

The .keras model computes what Caffe computes, for RGB 0..255 input through
`keras_alexnet.preprocess_input` (`keras_alexnet.caffe_conversion`).
"""

import os

from absl import app, flags

from keras_alexnet import caffe_conversion, cli

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


def main(argv):
    source = os.path.expanduser(argv[1]) if len(argv) == 2 else None

    def convert():
        if source is None:
            raise ValueError(
                "give exactly one weights file: convert_weights.py SRC --output=X.keras"
            )
        if FLAGS.install:
            path = caffe_conversion.install_in_cache(source)
            print(f"Installed {source} as {path}: AlexNet(weights='imagenet') loads it from there.")
            return
        output = os.path.expanduser(FLAGS.output)
        caffe_conversion.check_output(output, FLAGS.overwrite)
        identified = caffe_conversion.identify(source)
        print(identified.report())
        converted = caffe_conversion.convert_to_keras(
            identified, output, FLAGS.include_top, FLAGS.overwrite
        )
        print(converted.report())

    return cli.report_errors(convert)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
