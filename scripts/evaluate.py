"""`python scripts/evaluate.py [flags]` from a clone: the `alexnet-evaluate` command
(keras_alexnet/cli/evaluate.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.evaluate())
