"""`python scripts/similar.py [flags]` from a clone: the `alexnet-similar` command
(keras_alexnet/cli/similar.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.similar())
