"""`python scripts/predict.py [flags]` from a clone: the `alexnet-predict` command
(keras_alexnet/cli/predict.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.predict())
