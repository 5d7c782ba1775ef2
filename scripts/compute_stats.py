"""`python scripts/compute_stats.py [flags]` from a clone: the `alexnet-compute-stats` command
(keras_alexnet/cli/compute_stats.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.compute_stats())
