"""`python scripts/train.py [flags]` from a clone: the `alexnet-train` command
(keras_alexnet/cli/train.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.train())
