"""The version of keras_alexnet: its one source (setup.py reads this file as text)."""

__version__ = "0.1.0"
