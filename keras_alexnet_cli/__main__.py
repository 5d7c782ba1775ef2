"""`python -m keras_alexnet_cli <command> [flags]`."""

import sys

from keras_alexnet_cli import main

sys.exit(main())
