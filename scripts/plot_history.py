"""`python scripts/plot_history.py [flags]` from a clone: the `alexnet-plot-history` command
(keras_alexnet/cli/plot_history.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.plot_history())
