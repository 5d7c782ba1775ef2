"""The training recipes that ship with the package (`keras_alexnet/configs/*.flags`), found by
name from any directory.

    alexnet-train --config=quickstart                 # the packaged quickstart.flags
    alexnet-train --flagfile=configs/quickstart.flags # the same, unless that file exists here

`--config=NAME` stands for `--flagfile=<the packaged NAME.flags>` at its place on the command
line, so flags after it override the file's, as with `--flagfile`. A `--flagfile=PATH` that
names no file, where PATH's file name is a packaged recipe's (`quickstart.flags`,
`configs/paper.flags`), reads the packaged file: the commands of a clone's README work from an
installed wheel. A file that exists is always read as given. Relative paths inside a recipe
(`--model_dir=runs/quickstart`) are relative to the working directory, never to the package.
"""

from __future__ import annotations

import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
_SUFFIX = ".flags"


def names() -> list[str]:
    """The packaged recipes' names: ["finetune", "paper", "quickstart"]."""
    return sorted(n[: -len(_SUFFIX)] for n in os.listdir(CONFIG_DIR) if n.endswith(_SUFFIX))


def path_of(name: str) -> str:
    """The packaged file of the recipe `name` ("quickstart" or "quickstart.flags").

    Raises:
        ValueError: no packaged recipe has that name (the message lists them).
    """
    stem = name.removesuffix(_SUFFIX)
    if stem not in names():
        raise ValueError(
            f"--config must name one of the packaged recipes {names()}; received "
            f"--config={name}. For a file of your own, give --flagfile=<its path>."
        )
    return os.path.join(CONFIG_DIR, stem + _SUFFIX)


def _packaged_instead(path: str) -> str | None:
    """The packaged recipe a `--flagfile` path that names no file stands for, or None."""
    if os.path.exists(os.path.expanduser(path)):
        return None
    stem = os.path.basename(path).removesuffix(_SUFFIX)
    if os.path.basename(path).endswith(_SUFFIX) and stem in names():
        return os.path.join(CONFIG_DIR, stem + _SUFFIX)
    return None


def expand(argv: list[str]) -> list[str]:
    """`argv` with each `--config=NAME` (or `--config NAME`) replaced by the packaged file's
    `--flagfile=...`, and each `--flagfile` that names no file but a packaged recipe's file
    name pointed at the packaged file. Everything else is kept as it is, in order.

    Raises:
        ValueError: a `--config` without a value or naming no packaged recipe.
    """
    expanded, pending = [], list(argv)
    while pending:
        arg = pending.pop(0)
        if arg in ("--config", "-config"):
            if not pending:
                raise ValueError(f"--config needs a recipe's name, one of {names()}.")
            arg = f"--config={pending.pop(0)}"
        if arg.startswith(("--config=", "-config=")):
            expanded.append(f"--flagfile={path_of(arg.split('=', 1)[1])}")
        elif arg.startswith(("--flagfile=", "-flagfile=")):
            packaged = _packaged_instead(arg.split("=", 1)[1])
            expanded.append(f"--flagfile={packaged}" if packaged else arg)
        else:
            expanded.append(arg)
    return expanded
