"""Every `python -m training|service` command in the deployment files names a real
subcommand and only flags that command accepts (checked against its `--help`)."""

from __future__ import annotations

import pytest

from tests.support.deploy_files import (
    REPO,
    compose_file,
    compose_module_commands,
    dockerfile_instructions,
    flags_of,
    invocation,
    module_commands,
    split_args,
    unknown_flags,
)


def _commands() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for ins in dockerfile_instructions():
        text = " ".join(split_args(ins.args)) if ins.keyword == "CMD" else ins.args
        if ins.keyword in ("RUN", "CMD"):
            found += [("Dockerfile", cmd) for cmd in module_commands(text)]
    found += [("docker-compose.yml", cmd) for cmd in compose_module_commands(compose_file())]
    demo = (REPO / "scripts" / "demo.sh").read_text()
    found += [("scripts/demo.sh", cmd) for cmd in module_commands(demo)]
    return found


COMMANDS = _commands()


def test_deploy_files_run_training_and_service() -> None:
    where = {(source, cmd[0], flags_of(cmd)[1]) for source, cmd in COMMANDS}
    assert ("Dockerfile", "training", "export-imagenet") in where
    assert ("Dockerfile", "service", None) in where
    assert ("docker-compose.yml", "training", "fit") in where
    for sub in ("demo-data", "fit", "export-imagenet"):
        assert ("scripts/demo.sh", "training", sub) in where
    assert ("scripts/demo.sh", "service", None) in where


def _id(source: str, command: list[str]) -> str:
    module, sub, _ = flags_of(command)
    return f"{source}:{module}" + (f" {sub}" if sub else "")


@pytest.mark.parametrize(("source", "command"), COMMANDS, ids=[_id(*c) for c in COMMANDS])
def test_deploy_command_flags_are_accepted(source: str, command: list[str]) -> None:
    failure, unknown = unknown_flags(command)
    assert not failure, f"{source}: {failure}"
    assert not unknown, f"{source}: `{invocation(command)}` has no {unknown}"
