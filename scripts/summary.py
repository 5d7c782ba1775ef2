"""`python scripts/summary.py [flags]` from a clone: the `alexnet-summary` command
(keras_alexnet/cli/summary.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.summary())
