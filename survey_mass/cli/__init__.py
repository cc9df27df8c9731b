"""The ``survey-mass`` command: one module per verb a user says, each with ``register(subparsers)``.

The verbs are thin wiring over plain functions of the stages (tests call those directly); their
modules import nothing heavy at the top, so ``--help`` is quick and TensorFlow loads only when used.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from survey_mass import __version__
from survey_mass.cli import (
    calibrate,
    evaluate,
    fetch,
    query,
    report,
    run,
    simulate,
    train,
    verify,
    versions,
    zoo,
)
from survey_mass.errors import UserError
from survey_mass.tensorflow_runtime import VERBOSE_ENV

VERBS = (run, verify, versions, train, calibrate, evaluate, simulate, fetch, query, report, zoo)


def _version() -> str:
    """The package version and the zoo entries a job uses by default."""
    from survey_mass.spec.job import ModelsSpec

    defaults = ModelsSpec()
    entries = ", ".join(f"{k} {getattr(defaults, k)}" for k in ("xray", "sz", "optical", "joint"))
    return (
        f"survey-mass {__version__} (default models: {entries}; "
        "a mock universe of physics v1 gets the v1 zoo)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="survey-mass", description="Galaxy-cluster mass catalogs from survey cutouts."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb in VERBS:
        verb.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `survey-mass` alone: what it can do
        parser.print_help()
        return 0
    if args.verbose:  # TensorFlow's start-up lines too, in this process and in its workers
        os.environ[VERBOSE_ENV] = "1"
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # distributed logs every worker start and stop at INFO
        import distributed  # noqa: F401  (configures its loggers, which we then quieten)

        for name in list(logging.root.manager.loggerDict):
            if name.startswith("distributed"):
                logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"survey-mass {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # permissions, a read-only or full disk: name the path and the fix
        print(
            f"survey-mass {args.command}: error: {err.strerror or err} on {err.filename}: "
            "make it writable (with free space) or choose another path",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"survey-mass {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
