"""Every command's --help works, the bare command prints help, --version names the models."""

from __future__ import annotations

import argparse

import pytest

from survey_mass import __version__
from survey_mass.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())


def test_the_command_tree_is_walked():
    assert ("run",) in COMMANDS and ("verify",) in COMMANDS and ("zoo", "calibrate") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "survey-mass")
def test_every_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: survey-mass" in capsys.readouterr().out


def test_the_bare_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: survey-mass" in out and "run" in out and "verify" in out


def test_version_names_the_package_and_the_default_models(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out
    assert f"survey-mass {__version__}" in out and "xray xray-v2" in out and "joint auto" in out
    assert "physics v1 gets the v1 zoo" in out
