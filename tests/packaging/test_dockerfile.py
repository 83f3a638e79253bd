"""The Dockerfile and .dockerignore, checked without a Docker engine: paths, modules, stages."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from tests.support.deploy_files import (
    REPO,
    Instruction,
    copy_sources,
    dockerfile_instructions,
    module_commands,
    split_args,
)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile_instructions()


def _args(instructions: list[Instruction], keyword: str) -> list[str]:
    return [ins.args for ins in instructions if ins.keyword == keyword]


def _final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_copy_sources_exist_in_repo(instructions: list[Instruction]) -> None:
    sources = copy_sources(instructions)
    assert sources, "the Dockerfile copies nothing from the build context"
    missing = [src for src in sources if not (REPO / src).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"


def test_dockerfile_copy_sources_not_excluded_by_dockerignore(
    instructions: list[Instruction],
) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for src in copy_sources(instructions):
        parts = Path(src.rstrip("/")).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hits = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p)]
        assert not hits, f"{src} is copied but .dockerignore excludes it ({hits})"


def test_dockerignore_excludes_local_artifacts() -> None:
    patterns = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models", "data", "**/__pycache__"} <= patterns


def test_dockerfile_python_modules_exist_in_repo(instructions: list[Instruction]) -> None:
    texts = _args(instructions, "RUN") + [
        " ".join(split_args(args)) for args in _args(instructions, "CMD")
    ]
    commands = [cmd for text in texts for cmd in module_commands(text)]
    modules = {cmd[0] for cmd in commands}
    assert modules == {"training", "service"}, f"modules run by the Dockerfile: {modules}"
    for module in sorted(modules):
        spec = importlib.util.find_spec(f"{module}.__main__")
        assert spec is not None and spec.origin is not None, f"`python -m {module}` cannot run"
        assert Path(spec.origin).resolve().is_relative_to(REPO), spec.origin


def test_dockerfile_bakes_imagenet_export_at_build_time(instructions: list[Instruction]) -> None:
    commands = [cmd for args in _args(instructions, "RUN") for cmd in module_commands(args)]
    export = [cmd for cmd in commands if cmd[:2] == ["training", "export-imagenet"]]
    assert export, "no `python -m training export-imagenet` at build time"
    assert "--weights" in export[0] and export[0][export[0].index("--weights") + 1] == "imagenet"
    builtin = export[0][export[0].index("--models-dir") + 1]
    # The runtime stage carries the export and the entrypoint seeds the volume from it.
    final = _final_stage(instructions)
    assert any(builtin in ins.args for ins in final if ins.keyword == "COPY")
    entrypoint = (REPO / "scripts" / "container-entrypoint.sh").read_text()
    assert builtin in entrypoint


def test_dockerfile_stages_are_multi_stage_and_referenced(instructions: list[Instruction]) -> None:
    stages = [split_args(args) for args in _args(instructions, "FROM")]
    names = {words[2] for words in stages if len(words) == 3 and words[1].upper() == "AS"}
    assert len(stages) >= 2, "the Dockerfile should be multi-stage"
    used = set(re.findall(r"--from=(\S+)", " ".join(_args(instructions, "COPY"))))
    assert used and used <= names, f"COPY --from names unknown stages: {used - names}"


def test_dockerfile_runtime_runs_as_non_root(instructions: list[Instruction]) -> None:
    users = [ins.args for ins in _final_stage(instructions) if ins.keyword == "USER"]
    assert users, "the runtime stage never switches away from root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_tensorflow_flavour_defaults_to_gpu_with_cpu_option(
    instructions: list[Instruction],
) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"cpu", "gpu"} <= set(extras)
    assert any("tensorflow[and-cuda]" in dep for dep in extras["gpu"])
    # VGGSVC_TF_FLAVOUR; the old name TF_FLAVOUR still picks it for one release.
    assert "VGGSVC_TF_FLAVOUR=${TF_FLAVOUR:-gpu}" in _args(instructions, "ARG")
    assert any('".[${VGGSVC_TF_FLAVOUR}]"' in args for args in _args(instructions, "RUN"))


def test_dockerfile_healthcheck_probes_healthz(instructions: list[Instruction]) -> None:
    checks = [ins.args for ins in _final_stage(instructions) if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0]
    # The slim base image has no curl: the probe must use Python's standard library.
    assert "urllib.request" in checks[0] and "curl" not in checks[0]


def test_dockerfile_entrypoint_serves_with_env_settings(instructions: list[Instruction]) -> None:
    final = _final_stage(instructions)
    entrypoint = split_args([ins.args for ins in final if ins.keyword == "ENTRYPOINT"][-1])
    copied = [split_args(ins.args)[-1] for ins in final if ins.keyword == "COPY"]
    assert any(dest.endswith("/" + entrypoint[0]) for dest in copied)
    assert split_args([ins.args for ins in final if ins.keyword == "CMD"][-1]) == [
        "python",
        "-m",
        "service",
    ]
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    for setting in ("VGGSVC_HOST=0.0.0.0", "VGGSVC_PORT=8000", "VGGSVC_MODELS_DIR=/models"):
        assert setting in env
    assert "8000" in _args(final, "EXPOSE")


def test_dockerfile_copies_every_package_the_wheel_installs(
    instructions: list[Instruction],
) -> None:
    """`pip install .` in the builder sees only what was copied: a package left out would
    be missing from the image (it happened to modelstore/ once)."""
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include} - {"bench"}
    copied = {src.rstrip("/") for src in copy_sources(instructions)}
    assert sorted(packages - copied) == []
