"""`python scripts/show_filters.py [flags]` from a clone: the `alexnet-show-filters` command
(keras_alexnet/cli/show_filters.py)."""

import sys

import keras_alexnet_cli

if __name__ == "__main__":
    sys.exit(keras_alexnet_cli.show_filters())
