"""Trains AlexNet with the paper's recipe and exports the best model for TF Serving.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/paper.flags --manual_dir=~/imagenet
    python scripts/train.py --dataset=image_folder --image_dir=~/photos --init=he

Flags after --flagfile override the file's. Running the same command again resumes a killed
run from its backup in --model_dir. SIGTERM saves and exits with status 143; a NaN loss
stops with status 1 and keeps the last backup.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags  # noqa: E402

from keras_alexnet import precision, run_directory, training  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "dataset", "alexnet_shapes", "alexnet_shapes, imagenet2012, image_folder or a tfds name."
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir.")
flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC2012 tars (imagenet2012).")
flags.DEFINE_string("image_dir", None, "The image folder (dataset=image_folder).")
flags.DEFINE_string("stats", None, "Pixel mean/PCA JSON from scripts/compute_stats.py.")
flags.DEFINE_string("model_dir", "runs/alexnet", "Checkpoints, backup and logs of the run.")
flags.DEFINE_string("export_dir", "saved_models/alexnet", "Where the versioned export goes.")
flags.DEFINE_integer("epochs", 90, "The most epochs to train.", lower_bound=1)
flags.DEFINE_integer(
    "steps_per_epoch",
    None,
    "Cap on the steps of an epoch (default: the train split).",
    lower_bound=1,
)
flags.DEFINE_integer("batch_size", training.PAPER_BATCH_SIZE, "Global batch size.", lower_bound=1)
flags.DEFINE_float(
    "learning_rate", training.PAPER_LEARNING_RATE, "Initial learning rate.", lower_bound=0
)
flags.DEFINE_float(
    "momentum", training.PAPER_MOMENTUM, "SGD momentum.", lower_bound=0, upper_bound=1
)
flags.DEFINE_float(
    "weight_decay",
    training.PAPER_WEIGHT_DECAY,
    "Weight decay (inside the momentum).",
    lower_bound=0,
)
flags.DEFINE_float(
    "lr_reduce_factor", training.PAPER_LR_REDUCE_FACTOR, "Factor on a plateau (paper: 0.1)."
)
flags.DEFINE_integer(
    "lr_reduce_patience",
    training.DEFAULT_LR_REDUCE_PATIENCE,
    "Epochs without a lower validation error before the rate is reduced.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "max_lr_reductions",
    training.PAPER_LR_REDUCTIONS,
    "Reductions before the next plateau ends training.",
    lower_bound=0,
)
flags.DEFINE_enum("strategy", "mirrored", list(training.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_list("devices", None, "Devices for mirrored/one_device (default: all local GPUs).")
flags.DEFINE_list("tower_devices", None, "Two devices for strategy=towers, e.g. /gpu:0,/gpu:1.")
flags.DEFINE_integer(
    "logical_cpus",
    None,
    "Split the CPU into N logical devices (mirrored/towers without GPUs).",
    lower_bound=1,
)
flags.DEFINE_enum(
    "mixed_precision",
    "auto",
    list(precision.PRECISIONS),
    "auto: mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with AMX-BF16 or "
    "AVX512_BF16, float32 elsewhere; none: float32.",
)
flags.DEFINE_bool(
    "jit_compile",
    False,
    "Compile the train step with XLA (for GPUs: 3x slower on the CPUs measured).",
)
flags.DEFINE_integer("seed", 0, "Seed of weights, data order and augmentation.", lower_bound=0)
flags.DEFINE_enum("init", "paper", ["paper", "he"], "Initialisation (see AlexNet).")
flags.DEFINE_float("dropout_rate", training.DROPOUT_RATE, "Dropout on fc6 and fc7 (paper: 0.5).")


def _path(value):
    return os.path.expanduser(value) if value else value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.logical_cpus:
        training.use_logical_cpus(FLAGS.logical_cpus)
    try:
        training.train(
            FLAGS.dataset,
            data_dir=_path(FLAGS.data_dir),
            manual_dir=_path(FLAGS.manual_dir),
            image_dir=_path(FLAGS.image_dir),
            stats=_path(FLAGS.stats),
            model_dir=_path(FLAGS.model_dir),
            export_dir=_path(FLAGS.export_dir),
            epochs=FLAGS.epochs,
            steps_per_epoch=FLAGS.steps_per_epoch,
            batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate,
            momentum=FLAGS.momentum,
            weight_decay=FLAGS.weight_decay,
            lr_reduce_factor=FLAGS.lr_reduce_factor,
            lr_reduce_patience=FLAGS.lr_reduce_patience,
            max_lr_reductions=FLAGS.max_lr_reductions,
            strategy=FLAGS.strategy,
            devices=FLAGS.devices,
            tower_devices=FLAGS.tower_devices,
            mixed_precision=FLAGS.mixed_precision,
            jit_compile=FLAGS.jit_compile,
            seed=FLAGS.seed,
            init=FLAGS.init,
            dropout_rate=FLAGS.dropout_rate,
        )
    except (training.SettingsError, run_directory.RunDirectoryError) as error:
        # Library errors name the argument, which is the flag of the same name.
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except training.NonFiniteLoss as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except training.TrainingInterrupted as error:
        print(error, file=sys.stderr)
        sys.exit(143)


if __name__ == "__main__":
    app.run(main)
