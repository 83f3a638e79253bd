"""Readers for the deployment files (Dockerfile, compose, shell scripts, Kubernetes
manifests) that the tests check.

No Docker engine runs on the development and CI machines, so the tests read these files
the way Docker and Compose would and check what can be checked without building.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
OUR_MODULES = ("training", "service")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # everything after the keyword, continuation lines joined


def dockerfile_instructions(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    """The Dockerfile's instructions: comments dropped, `\\` continuations joined."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return instructions


def split_args(args: str) -> list[str]:
    """Exec form (`["a", "b"]`) or shell form, as a list of words."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copy_sources(instructions: list[Instruction]) -> list[str]:
    """Source paths of every COPY/ADD that reads the build context (not `--from=<stage>`)."""
    sources = []
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        words = split_args(ins.args)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def module_commands(text: str) -> list[list[str]]:
    """Every `python -m training|service ...` in a shell text, as argument lists.

    Each starts with the module name; the command ends at `&&`, `;`, `|` or the line's end.
    Shell variables stay as they are (`"$IMAGE_SIZE"`): only flag names matter here.
    """
    text = re.sub(r"\\\n", " ", text)
    commands = []
    for line in text.splitlines():
        for match in re.finditer(r"(?:python3?|\"\$PY\"|\$PY)\s+-m\s+(\w+)([^;&|\n]*)", line):
            if match.group(1) in OUR_MODULES:
                commands.append([match.group(1), *shlex.split(match.group(2), comments=True)])
    return commands


def compose_file(name: str = "docker-compose.yml") -> dict[str, Any]:
    data = yaml.safe_load((REPO / name).read_text())
    assert isinstance(data, dict)
    return data


def argv_module_command(argv: list[str]) -> list[str] | None:
    """An exec-form argv `["python", "-m", module, ...]` -> `[module, ...]` if ours, else None."""
    if len(argv) >= 3 and argv[0] in ("python", "python3") and argv[1] == "-m":
        return argv[2:] if argv[2] in OUR_MODULES else None
    return None


def compose_module_commands(compose: dict[str, Any]) -> list[list[str]]:
    """Our commands in the services' `command`s: exec form, or each one of an `sh -c` script."""
    commands = []
    for service in compose["services"].values():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        command = command or []
        if command[:2] == ["sh", "-c"]:
            commands += module_commands(command[2])
            continue
        found = argv_module_command(command)
        if found:
            commands.append(found)
    return commands


def flags_of(command: list[str]) -> tuple[str, str | None, set[str]]:
    """`[module, subcommand?, args...]` -> (module, subcommand or None, the `--flags` used)."""
    module, rest = command[0], command[1:]
    sub = rest[0] if rest and not rest[0].startswith("-") else None
    flags = {word.split("=", 1)[0] for word in rest if word.startswith("--")}
    return module, sub, flags


@functools.cache
def module_help(module: str, sub: str | None) -> subprocess.CompletedProcess[str]:
    """`python -m module [sub] --help`, run once per session: the flags the command accepts."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    argv = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def invocation(command: list[str]) -> str:
    """`[module, subcommand?, args...]` -> "python -m module subcommand", for messages."""
    module, sub, _ = flags_of(command)
    return f"python -m {module}" + (f" {sub}" if sub else "")


def unknown_flags(command: list[str]) -> tuple[str, list[str]]:
    """`[module, subcommand?, args...]` -> (a message if `--help` failed, else "", flags it lacks)."""
    module, sub, flags = flags_of(command)
    result = module_help(module, sub)
    if result.returncode != 0:
        return f"`{invocation(command)} --help` failed:\n{result.stderr[-2000:]}", []
    # Whole flags only: `--poll-interval` must not pass for `--poll-interval-s` (argparse would
    # take it as an abbreviation today and reject it once another flag shares the prefix).
    listed = set(re.findall(r"(?<![\w-])--[\w-]+", result.stdout))
    return "", sorted(flags - listed)
