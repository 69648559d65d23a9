"""Every ``skysort`` command line shown in the documentation and the model cards parses: its
subcommand exists, each option is one the subcommand has, and each value has the option's
type (an enumerated option's value is one of its choices)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from skysort.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "src" / "skysort" / "models" / "pretrained").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(document, command line) for each ``skysort ...`` line of a fenced code block and each
    inline code span that starts with ``skysort``."""
    found = []
    for document in DOCUMENTS:
        in_code = False
        # A trailing backslash continues a shell line.
        for text in re.sub(r"\\\n\s*", " ", document.read_text()).splitlines():
            if text.lstrip().startswith("```"):
                in_code = not in_code
                continue
            lines = [text.strip()] if in_code else re.findall(r"`(skysort [^`]*)`", text)
            for line in lines:
                if not re.match(r"skysort [a-z]", line):  # not e.g. the creator string `skysort <version>`
                    continue
                # '[--memory-gb 4]' marks optional parts, '...' elided ones; comments and shell
                # redirections are not part of the command.
                line = re.sub(r"\[[^\]]*\]", "", line.split(" #")[0]).replace("...", "")
                found.append((document.name, re.split(r"\s(?:>|\||&&|;)\s", line)[0].strip()))
    return found


COMMANDS = documented_commands()


def test_the_documents_show_commands():
    assert len(COMMANDS) > 50  # the README alone shows dozens; an empty list would test nothing
    assert {line.split()[1] for _, line in COMMANDS} >= {"simulate", "train", "evaluate", "predict", "cutout", "reproduce"}


@pytest.mark.parametrize("document, line", COMMANDS, ids=[f"{d}:{line[:60]}" for d, line in COMMANDS])
def test_a_documented_command_parses(document, line):
    args = shlex.split(line)[1:]
    command, names = typer.main.get_command(app), ["skysort"]
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        sub = command.get_command(command.make_context(" ".join(names), [], resilient_parsing=True), args[0])
        assert sub is not None, f"{document}: no command {args[0]!r} in {line!r}"
        names.append(args.pop(0))
        command = sub
    try:
        command.make_context(" ".join(names), list(args))  # the parser consumes the list it is given
    except Exception as error:  # the command line library's own exception classes
        # The documents leave out required file options where the text is about something else.
        # Prose names an option alone (`skysort predict --tiles`): a last option without a value.
        mentioned = args and args[-1].startswith("--") and "requires an argument" in str(error)
        if type(error).__name__ != "MissingParameter" and not mentioned:
            message = error.format_message() if hasattr(error, "format_message") else str(error)
            pytest.fail(f"{document}: {line!r}: {message}")


RUNNABLE = [(d, line) for d, line in COMMANDS if line.split()[1] in ("train", "evaluate", "predict")]


@pytest.mark.parametrize("document, line", RUNNABLE, ids=[f"{d}:{line[:60]}" for d, line in RUNNABLE])
def test_a_documented_command_gets_as_far_as_its_missing_inputs(document, line, tmp_path, monkeypatch, capsys):
    """Run where none of its input files exist: the only complaint may be a missing file, so
    the options it shows are ones the command accepts together (none refused as inapplicable)."""
    from skysort.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(shlex.split(line)[1:] + ["--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("skysort: error: ") == 1, (document, line, err)
    # A model or tile pattern that is not there, or a required option or value the document elides ('...').
    missing = ("no such file", "no such model file", "catalogue file not found", "file matches this path or pattern",
               "Missing option", "empty value")
    assert any(reason in err for reason in missing), (document, line, err)
