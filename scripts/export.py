"""`python scripts/export.py [flags]` from a clone: the `alexnet-export` command
(keras_alexnet/cli/export.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.export())
