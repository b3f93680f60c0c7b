"""The README's "CLI vocabulary" table against the click commands: each option exists on exactly
the commands the table lists, and no command keeps a retired spelling."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from cli.main import fs

README = Path(__file__).resolve().parents[1] / "README.md"
RETIRED = ("--text", "--prompts-bank", "--captions-bank", "--out", "--seed")
NO_STORE = {"datasets", "models", "results"}  # they read no store


def leaf_commands() -> dict[str, click.Command]:
    """Every leaf command of `fs` by its name ("schur score" for a group's)."""
    leaves: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), path + [name])
        else:
            leaves[" ".join(path)] = command

    walk(fs, [])
    return leaves


def commands() -> dict[str, set[str]]:
    """Every leaf command -> the spellings of its options."""
    return {name: {spelling for param in command.params if isinstance(param, click.Option)
                   for spelling in (*param.opts, *param.secondary_opts)}
            for name, command in leaf_commands().items()}


def vocabulary_table() -> dict[str, tuple[list[str], list[str]]]:
    """The table's rows: first option spelling -> (every spelling, the commands listed)."""
    text = README.read_text()
    section = text.split("## CLI vocabulary\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`-"):
            continue
        spellings = [s.split()[0] for s in re.findall(r"`([^`]+)`", cells[0])]
        rows[spellings[0]] = (spellings, re.findall(r"`([^`]+)`", cells[2]))
    return rows


def test_the_table_has_the_agreed_rows():
    assert list(vocabulary_table()) == ["--store", "--encoder", "--bank", "--query", "--models", "--model", "--seeds",
                                        "--save", "--output", "--plot", "--json", "--quiet"]
    assert vocabulary_table()["--quiet"][0] == ["--quiet", "-q"]


@pytest.mark.parametrize("option", list(vocabulary_table()))
def test_each_option_is_on_exactly_the_commands_listed(option):
    spellings, listed = vocabulary_table()[option]
    found = commands()
    unknown = [c for c in listed if c not in found]
    assert not unknown, f"the table lists commands that do not exist: {unknown}"
    lacking = [c for c in listed for s in spellings if s not in found[c]]
    assert not lacking, f"{option}: listed but missing on {lacking}"
    unlisted = sorted(c for c, options in found.items() if spellings[0] in options and c not in listed)
    assert not unlisted, f"{option}: on {unlisted} but not listed in the README table"


def test_no_command_keeps_a_retired_spelling():
    for name, options in commands().items():
        assert not options & set(RETIRED), f"fs {name} still has {sorted(options & set(RETIRED))}"
        assert "--model" not in options or name == "extract", f"fs {name} takes --model (saved models: --models)"


def test_every_command_that_reads_a_store_names_it_with_store():
    for name, options in commands().items():
        assert ("--store" in options) == (name not in NO_STORE), name


def test_seeds_default_to_one_everywhere():
    for name, command in leaf_commands().items():
        for param in command.params:
            if "--seeds" in getattr(param, "opts", ()):
                assert param.type.convert(param.default, param, None) == [1], f"fs {name}: --seeds default"

