"""What the repository holds and how CI runs it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.deploy_files import REPO


def test_models_folder_tracks_only_readme_and_gitignore() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to check about what git tracks")
    tracked = subprocess.run(
        ["git", "ls-files", "models"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(tracked) == ["models/.gitignore", "models/README.md"]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Two commands for a fresh machine", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's two commands are not in a ```bash block"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert len(commands) == 2, commands
    test_command = commands[1]
    ci_lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert any(line in (test_command, f"exec {test_command}") for line in ci_lines), (
        f"`.ci/run` does not run the README's test command `{test_command}`"
    )


def test_shell_scripts_parse() -> None:
    for script in [*sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run"]:
        shell = "sh" if script.name == "container-entrypoint.sh" else "bash"
        result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_bench_imports_nothing_from_tests() -> None:
    """Tests may use bench.support; benchmarks never reach into tests/ (one direction)."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "bench").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from|import)\s+tests\b", line)
    ]
    assert not offenders, f"bench/ imports from tests/: {offenders}"


def test_ci_runs_the_readme_container_test_after_the_test_command() -> None:
    """The image is built and run by CI: `.ci/run` runs the README's container test line,
    after the test command (a failing test run stops CI before the heavy build)."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    container_test = "bash scripts/container-test.sh"
    assert container_test in lines, "the README has no command line for the container test"
    ci_lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert container_test in ci_lines
    assert ci_lines.index(container_test) > ci_lines.index("bash scripts/test.sh")
    assert (REPO / "scripts" / "container-test.sh").is_file()
