"""Training AlexNet: `train(TrainConfig(...))`, which `alexnet-train` calls.

config       TrainConfig: every setting, its help and bounds (the script's flags)
setup        set_up(config) -> TrainingSetup: strategy, precision, data, steps
run          train: the run's steps in order, the fit and the export of the best model
directory    the run directory: checked, locked, the files other scripts read
backup       what a backup holds, when a run may resume, what it does next (no Keras)
callbacks    NaN stop, plateaus or per-step rates, best model, history, the backup's Keras side
inputs       each epoch's seeded stream, distributed over the strategy
recipe       the paper's SGD (or Adam), the cosine schedule, weight decay; the compiled model
fine_tuning  starting from trained weights, freezing the first blocks
strategies   tf.distribute strategies and devices (TensorFlow)
jax_distribution  keras.distribution on JAX: DataParallel over devices and processes
jax_export   a JAX run's export, written by a TensorFlow process and checked against JAX
precision    float32 or mixed precision, chosen for the machine
"""

from keras_alexnet.training.config import SettingsError, TrainConfig
from keras_alexnet.training.run import TrainResult, train

__all__ = ["SettingsError", "TrainConfig", "TrainResult", "train"]
