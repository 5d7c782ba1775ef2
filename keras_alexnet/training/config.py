"""The settings of a training run: one frozen `TrainConfig`.

Its defaults are the paper's recipe (section 5). Every field carries its help text and its
bounds, from which `define_flags` defines `alexnet-train`'s flags (and `config_from_flags`
reads them back) and `validate` checks a config built in Python: the defaults, the help and
the limits live here only. A config is saved with the
run (`to_json`), and a resumed run is compared with it (`backup.check_resume`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from keras_alexnet import untrusted
from keras_alexnet.alexnet import DROPOUT_RATE, INITIALIZATIONS, LRNS
from keras_alexnet.training import backup
from keras_alexnet.training.fine_tuning import BLOCKS
from keras_alexnet.training.precision import PRECISIONS
from keras_alexnet.weights import (
    CAFFE_KINDS,
    IMAGENET,
    NO_WEIGHTS,
    resolve_weights,
    weights_kind,
    weights_variant,
)

# Paper 5: "stochastic gradient descent with a batch size of 128 examples, momentum of 0.9,
# and weight decay of 0.0005", learning rate initialised at 0.01.
PAPER_BATCH_SIZE = 128
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 0.0005
PAPER_LEARNING_RATE = 0.01
# Paper 5: "divide the learning rate by 10 when the validation error rate stopped improving
# with the current learning rate ... reduced three times prior to termination".
PAPER_LR_REDUCE_FACTOR = 0.1
PAPER_LR_REDUCTIONS = 3
# Paper 5: "roughly 90 cycles through the training set".
PAPER_EPOCHS = 90
# Not in the paper (it does not say how long it waited): epochs without a lower validation
# error before the rate is divided.
DEFAULT_LR_REDUCE_PATIENCE = 5

STRATEGIES = ("mirrored", "multi_worker", "one_device", "towers")
# "sgd" is the paper's; "adam" learns more in a short run from scratch (configs/quickstart.flags).
OPTIMIZERS = ("sgd", "adam")
# Adam's decay of its squared-gradient average: Keras' default (Adam is not the paper's).
KERAS_ADAM_BETA_2 = 0.999
# "plateau" is the paper's (the rate divided when the validation error stops improving);
# "cosine" a linear warm-up over the first epoch, then a half cosine down to 0 at the last step.
LR_SCHEDULES = ("plateau", "cosine")


class SettingsError(ValueError):
    """A training argument (an `alexnet-train` flag), or the data or backup it points to,
    is not usable; the message names it and says what to do."""


def _setting(default, help, kind=None, **limits):
    """A field with its help text, its flag kind ("string", "integer", "float", "bool",
    "list", "enum"; inferred from the default when not given) and its limits: `minimum`,
    `maximum` (inclusive), `above`, `below` (exclusive), `choices`, `nonempty`."""
    if kind is None:
        kind = "enum" if "choices" in limits else _KINDS[type(default)]
    return dataclasses.field(default=default, metadata={"help": help, "kind": kind, **limits})


_KINDS = {str: "string", int: "integer", float: "float", bool: "bool"}


def _recorded_settings(model_dir: str) -> dict:
    """The settings the backup in `model_dir` records, or {} (a backup that cannot be read
    is reported where the run resumes: `backup.read_state`)."""
    path = os.path.join(model_dir, backup.BACKUP_DIR, backup.STATE_FILE)
    try:
        state = untrusted.read_json(path, backup.MAX_STATE_BYTES, "The backup's state")
        settings = state["settings"]
    except (ValueError, KeyError, TypeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _resumes_without(config: TrainConfig) -> bool:
    """Whether a run resumes from its backup while its starting weights file is gone: then
    the file is not needed (the backup holds what the run made of it)."""
    weights = config.weights
    gone = isinstance(weights, str) and weights != IMAGENET and not os.path.exists(weights)
    return gone and bool(config.model_dir) and bool(_recorded_settings(config.model_dir))


def _check_starting_weights(config: TrainConfig) -> None:
    """The settings that only make sense together: weights, train_from, lrn and init."""
    kind = weights_kind(config.weights)
    if kind == NO_WEIGHTS:
        if config.train_from != BLOCKS[0]:
            raise SettingsError(
                f"train_from={config.train_from!r} keeps the earlier blocks as they start, which "
                "only makes sense with trained weights: give weights (imagenet or a file), or "
                f"train_from={BLOCKS[0]!r}."
            )
        return
    if kind != IMAGENET and _resumes_without(config):
        return  # the backup is the start; `backup.check_resume` compares what it recorded
    if kind != IMAGENET:
        try:  # (suffix, case and existence: the one check `AlexNet` makes too)
            resolve_weights(config.weights)
        except ValueError as error:
            raise SettingsError(str(error)) from None
    if kind in CAFFE_KINDS:
        if config.network_lrn != "caffe" or config.network_init != "paper":
            raise SettingsError(
                f"weights={config.weights!r} are Caffe's bvlc_alexnet, which needs lrn=caffe "
                f"and init=paper; received lrn={config.lrn!r}, init={config.init!r}."
            )
        return
    try:
        saved = weights_variant(config.weights)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    for name, given in (("init", config.init), ("lrn", config.lrn)):
        if given is not None and given != saved[name]:
            raise SettingsError(
                f"{name}={given!r} contradicts weights={config.weights!r}, which was saved from "
                f"an AlexNet of {name}={saved[name]!r}. Leave out {name} (the file's is used)."
            )


def _check_optimizer(config: TrainConfig) -> None:
    """Momentum is SGD's and adam_beta_2 Adam's: each optimizer refuses the other's."""
    if config.optimizer != "sgd" and config.momentum != PAPER_MOMENTUM:
        raise SettingsError(
            f"momentum is SGD's, and optimizer={config.optimizer!r} has no such setting; "
            f"received momentum={config.momentum!r}. Leave momentum at {PAPER_MOMENTUM}, or "
            "use optimizer='sgd'."
        )
    if config.optimizer != "adam" and config.adam_beta_2 != KERAS_ADAM_BETA_2:
        raise SettingsError(
            f"adam_beta_2 is Adam's, and optimizer={config.optimizer!r} has no such setting; "
            f"received adam_beta_2={config.adam_beta_2!r}. Leave adam_beta_2 at "
            f"{KERAS_ADAM_BETA_2}, or use optimizer='adam'."
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is told. See `training.train` for what each does."""

    dataset: str = _setting(
        "alexnet_shapes", "alexnet_shapes, imagenet2012, image_folder or a tfds name."
    )
    data_dir: str | None = _setting(None, "tensorflow-datasets data dir.", "string")
    manual_dir: str | None = _setting(
        None, "Folder with the ILSVRC2012 tars (imagenet2012).", "string"
    )
    image_dir: str | None = _setting(None, "The image folder (dataset=image_folder).", "string")
    stats: str | None = _setting(None, "Pixel mean/PCA JSON from alexnet-compute-stats.", "string")
    model_dir: str = _setting(
        "runs/alexnet", "Checkpoints, backup and logs of the run.", nonempty=True
    )
    export_dir: str = _setting(
        "saved_models/alexnet", "Where the versioned export goes.", nonempty=True
    )
    epochs: int = _setting(PAPER_EPOCHS, "The most epochs to train.", minimum=1)
    steps_per_epoch: int | None = _setting(
        None, "Cap on the steps of an epoch (default: the train split).", "integer", minimum=1
    )
    batch_size: int = _setting(PAPER_BATCH_SIZE, "Global batch size.", minimum=1)
    learning_rate: float = _setting(
        PAPER_LEARNING_RATE, "Initial learning rate (cosine: the rate after the warm-up).", above=0
    )
    optimizer: str = _setting(
        "sgd",
        "sgd: the paper's SGD with momentum; adam: Adam (see adam_beta_2). Either with the "
        "weight decay as a term of the loss.",
        choices=OPTIMIZERS,
    )
    lr_schedule: str = _setting(
        "plateau",
        "plateau: the paper's (divided by lr_reduce_factor when the validation error stops "
        "improving); cosine: linear warm-up over the first epoch, then cosine decay to 0 at the "
        "last step of --epochs (no plateaus).",
        choices=LR_SCHEDULES,
    )
    momentum: float = _setting(PAPER_MOMENTUM, "SGD momentum.", minimum=0, maximum=1)
    adam_beta_2: float = _setting(
        KERAS_ADAM_BETA_2,
        "Adam's decay of its average of squared gradients (Keras' default 0.999; lower "
        "forgets the large gradients of the first steps sooner).",
        minimum=0,
        below=1,
    )
    gradient_centralization: bool = _setting(
        False,
        "Not the paper's: before each update, every kernel's gradient loses its mean over the "
        "kernel's inputs, per output unit (biases unchanged); with either optimizer.",
    )
    weight_decay: float = _setting(
        PAPER_WEIGHT_DECAY,
        "Weight decay, a term of the loss (with sgd: inside the momentum).",
        minimum=0,
    )
    lr_reduce_factor: float = _setting(
        PAPER_LR_REDUCE_FACTOR, "Factor on a plateau (paper: 0.1).", above=0, below=1
    )
    lr_reduce_patience: int = _setting(
        DEFAULT_LR_REDUCE_PATIENCE,
        "Epochs without a lower validation error before the rate is reduced.",
        minimum=1,
    )
    max_lr_reductions: int = _setting(
        PAPER_LR_REDUCTIONS, "Reductions before the next plateau ends training.", minimum=0
    )
    strategy: str = _setting("mirrored", "tf.distribute strategy.", choices=STRATEGIES)
    devices: tuple[str, ...] | None = _setting(
        None, "Devices for mirrored/one_device (default: all local GPUs).", "list"
    )
    tower_devices: tuple[str, ...] | None = _setting(
        None, "Two devices for strategy=towers, e.g. /gpu:0,/gpu:1.", "list"
    )
    mixed_precision: str = _setting(
        "auto",
        "auto: mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with AMX-BF16 "
        "or AVX512_BF16, float32 elsewhere; none: float32.",
        choices=PRECISIONS,
    )
    jit_compile: bool = _setting(
        False,
        "Compile the train step with XLA on TensorFlow (for GPUs: 3x slower on the CPUs "
        "measured); on JAX it is always compiled.",
    )
    seed: int = _setting(0, "Seed of weights, data order and augmentation.", minimum=0)
    init: str | None = _setting(
        None,
        "Initialisation (see AlexNet): paper (section 5) or he; default: the --weights file's, "
        "else paper.",
        "enum",
        choices=INITIALIZATIONS,
    )
    dropout_rate: float = _setting(
        DROPOUT_RATE, "Dropout on fc6 and fc7 (paper: 0.5).", minimum=0, below=1
    )
    lrn: str | None = _setting(
        None,
        "paper (3.3, within towers) or caffe (bvlc_alexnet's); default: the --weights' (caffe "
        "for imagenet/.caffemodel/.onnx, a .keras file's own), else paper.",
        "enum",
        choices=LRNS,
    )
    weights: str | None = _setting(
        None,
        "Start from trained weights: imagenet, or a .keras/.weights.h5/.caffemodel/.onnx file. "
        "A classifier of other classes starts fresh.",
        "string",
    )
    train_from: str = _setting(
        BLOCKS[0],
        "The first block that trains; earlier ones stay as loaded (needs --weights).",
        choices=BLOCKS,
    )
    verbose: int = _setting(
        1, "0 silent, 1 progress bar, 2 one line per epoch.", minimum=0, maximum=2
    )

    def validate(self) -> TrainConfig:
        """Returns the config after checking every field against its limits.

        Raises:
            SettingsError: naming the first field that is out of bounds, and its value.
        """
        for field in dataclasses.fields(self):
            _check(field, getattr(self, field.name))
        _check_starting_weights(self)
        _check_optimizer(self)
        return self

    @property
    def network_lrn(self) -> str:
        """The LRN the network is built with: `lrn`, or the one `weights` were made with (or,
        their file gone, the one the backup of the run resumed records)."""
        return self.lrn or self._weights_variant().get("lrn", "paper")

    @property
    def network_init(self) -> str:
        """The initialisation the network is built with: `init`, or the one `weights` were
        made with (he adds a fixed input scaling layer, so a file of one fits only one)."""
        return self.init or self._weights_variant().get("init", "paper")

    def _weights_variant(self) -> dict[str, str]:
        if _resumes_without(self):
            return _recorded_settings(self.model_dir)
        return weights_variant(self.weights)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = json.loads(text)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"Unknown training settings {unknown}; known: {sorted(known)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _check(field: dataclasses.Field, value) -> None:
    name, limits, kind = field.name, field.metadata, field.metadata["kind"]
    if value is None and field.default is None:
        return
    if kind == "enum":
        if value not in limits["choices"]:
            raise SettingsError(
                f"{name} must be one of {tuple(limits['choices'])}; received {name}={value!r}."
            )
        return
    if kind == "list":
        if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
            raise SettingsError(f"{name} must be a list of device names; received {value!r}.")
        return
    if kind in ("string", "bool"):
        expected = str if kind == "string" else bool
        if not isinstance(value, expected) or (limits.get("nonempty") and not value):
            what = "a non-empty string" if kind == "string" else "True or False"
            raise SettingsError(f"{name} must be {what}; received {name}={value!r}.")
        return
    integer = kind == "integer"
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        what = "an integer" if integer else "a finite number"
        raise SettingsError(f"{name} must be {what}; received {name}={value!r}.")
    for key, holds, sign in (
        ("minimum", lambda v, b: v >= b, ">="),
        ("maximum", lambda v, b: v <= b, "<="),
        ("above", lambda v, b: v > b, ">"),
        ("below", lambda v, b: v < b, "<"),
    ):
        if key in limits and not holds(value, limits[key]):
            raise SettingsError(
                f"{name} must be {sign} {limits[key]}; received {name}={value!r}. "
                f"({field.metadata['help']})"
            )


_DEFINE = {
    "string": "DEFINE_string",
    "integer": "DEFINE_integer",
    "float": "DEFINE_float",
    "bool": "DEFINE_bool",
    "list": "DEFINE_list",
}


# The fields that say where the data is: `alexnet-evaluate`, `alexnet-compute-stats` and
# `similar.py` define these flags too (`define_flags(..., names=DATA_LOCATION)`).
DATA_LOCATION = ("dataset", "data_dir", "manual_dir", "image_dir", "stats")


def define_flags(flag_values, names: tuple[str, ...] | None = None) -> None:
    """Defines one absl flag per `TrainConfig` field (or per field of `names`) in
    `flag_values` (an `absl.flags.FlagValues`), with the field's default, help and bounds."""
    from absl import flags

    for field in dataclasses.fields(TrainConfig):
        if names is not None and field.name not in names:
            continue
        meta = field.metadata
        if meta["kind"] == "enum":
            flags.DEFINE_enum(
                field.name,
                field.default,
                list(meta["choices"]),
                meta["help"],
                flag_values=flag_values,
            )
            continue
        bounds = {}
        if meta["kind"] in ("integer", "float"):
            bounds = {"lower_bound": meta.get("minimum"), "upper_bound": meta.get("maximum")}
        define = getattr(flags, _DEFINE[meta["kind"]])
        define(field.name, field.default, meta["help"], flag_values=flag_values, **bounds)


def config_from_flags(flag_values) -> TrainConfig:
    """The config of parsed flags (`define_flags`'): every field from its flag, paths with
    ~ expanded. Not yet validated."""
    return TrainConfig(**flag_settings(flag_values))


def flag_settings(flag_values, names: tuple[str, ...] | None = None) -> dict:
    """The values of the parsed flags of `define_flags(flag_values, names)`, by field name:
    lists as tuples, paths (the `*_dir` fields, `stats` and `weights`) with ~ expanded."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        if names is not None and field.name not in names:
            continue
        value = flag_values[field.name].value
        if field.metadata["kind"] == "list" and value is not None:
            value = tuple(value)
        elif value and (field.name.endswith("_dir") or field.name in ("stats", "weights")):
            value = os.path.expanduser(value)
        values[field.name] = value
    return values
