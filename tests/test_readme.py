"""The README's commands work: every `skelctl` line of its code blocks parses against the real
CLI (unknown options, bad values and missing arguments fail), and the blocks that need no GPU
or real data run, in order, on synthetic data in a temporary folder.

Blocks fenced as ```bash gpu (real datasets, the papers' schedules, torchrun) are only parsed.
Runnable blocks run as written, plus `--epochs 1` where a command trains (the README's own
commands use the shipped schedules).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import run_skelctl
from typer.exceptions import TyperException
from typer.main import get_command

from skelctl.cli.app import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TRAINING_COMMANDS = {"pretrain", "linear", "semisup", "finetune"}


@dataclass
class Block:
    info: str  # the fence's info string, e.g. "bash" or "bash gpu"
    lines: list[str]

    @property
    def runnable(self) -> bool:
        words = self.info.split()
        return bool(words) and words[0] == "bash" and "gpu" not in words[1:]


def code_blocks(text: str) -> list[Block]:
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = Block(line[3:].strip(), [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.lines.append(line)
    assert current is None, "README.md has an unclosed code block"
    return blocks


def skelctl_args(line: str) -> list[str] | None:
    """The arguments after `skelctl` of a command line (`torchrun ... -m skelctl ...` too)."""
    words = shlex.split(line, comments=True)
    if words[:1] == ["skelctl"]:
        return words[1:]
    if words[:1] == ["torchrun"] and "-m" in words:
        at = words.index("-m")
        if words[at + 1 : at + 2] == ["skelctl"]:
            return words[at + 2 :]
    return None


def commands(blocks: list[Block]) -> list[tuple[Block, list[str]]]:
    found = []
    for block in blocks:
        for line in block.lines:
            args = skelctl_args(line) if line.strip() else None
            if args is not None:
                found.append((block, args))
    return found


def parse_against_cli(args: list[str]) -> None:
    """Parse `args` with the real command's parser (types, choices, ranges), without running it."""
    group = get_command(app)
    assert args, "a bare `skelctl` line"
    command = group.commands.get(args[0])
    assert command is not None, f"skelctl has no command {args[0]!r} (README: skelctl {shlex.join(args)})"
    try:
        command.make_context(args[0], list(args[1:]))
    except TyperException as exc:  # typer's click: NoSuchOption, BadParameter, MissingParameter...
        pytest.fail(f"README: skelctl {shlex.join(args)}: {exc.format_message()}")


README_COMMANDS = commands(code_blocks(README.read_text()))


def test_readme_opens_with_the_setup_commands():
    first = code_blocks(README.read_text())[0]
    assert first.lines[0].startswith("make install && make demo")
    assert first.lines[1].startswith("make test")


def test_readme_has_runnable_and_gpu_commands():
    kinds = {block.runnable for block, _ in README_COMMANDS}
    assert kinds == {True, False}
    names = {args[0] for _, args in README_COMMANDS}
    assert {"synth", "preprocess", "info", "pretrain", "linear", "retrieve", "semisup", "show",
            "plot", "finetune"} <= names


@pytest.mark.parametrize("args", [args for _, args in README_COMMANDS], ids=lambda a: " ".join(a[:3]))
def test_every_readme_command_parses(args):
    parse_against_cli(args)


def test_a_wrong_option_is_caught():
    """The check above can fail: an option skelctl does not have is reported."""
    with pytest.raises(pytest.fail.Exception, match="--no-such-option"):
        parse_against_cli(["linear", "--encoder", "runs/demo", "--no-such-option", "1"])
    with pytest.raises(pytest.fail.Exception, match="bogus"):
        parse_against_cli(["pretrain", "--stream", "bogus"])


def _quick(args: list[str]) -> list[str]:
    """One epoch where a command trains (the README shows the real schedules)."""
    if args[0] in TRAINING_COMMANDS and "--epochs" not in args:
        return [*args, "--epochs", "1"]
    return args


def test_runnable_readme_commands_run_on_synthetic_data(tmp_path):
    env = {"SKELCTL_DATA": str(tmp_path / "data"), "SKELCTL_RUNS": str(tmp_path / "runs"),
           "COLUMNS": "120"}
    ran = []
    for block, args in README_COMMANDS:
        if not block.runnable:
            continue
        full = _quick(args)
        result = run_skelctl(*full, env=env, cwd=tmp_path)
        assert result.returncode == 0, f"skelctl {shlex.join(full)} exited {result.returncode}:\n{result.stderr[-3000:]}"
        if "--json" in args:
            json.loads(result.stdout)
        ran.append(args[0])
    assert {"synth", "preprocess", "pretrain", "linear", "retrieve", "semisup", "show", "plot"} <= set(ran)
    assert (tmp_path / "runs" / "demo" / "encoder.pt").is_file()
    assert (tmp_path / "clip.gif").is_file() and (tmp_path / "curves.png").is_file()


def test_readme_numbers_are_filled_in():
    """No template marker is left in the README (the lead's benchmark placeholder is prose)."""
    assert not re.search(r"\b(DEMO_TABLE|LEARNING_TABLE|DEMO_MINUTES)\b", README.read_text())
