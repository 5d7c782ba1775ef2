"""`python scripts/convert_weights.py [flags]` from a clone: the `alexnet-convert-weights` command
(keras_alexnet/cli/convert_weights.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.convert_weights())
