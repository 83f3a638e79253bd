"""One family of environment variables: VGGSVC_*, with the old names read for one release."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from service.__main__ import warn_unknown_variables
from service.settings import ENV_PREFIX, OTHER_PROGRAMS_VARIABLES, Settings
from training.features.store import default_cache_dir

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
# Where the product's variables are read or documented (tests excluded: they make up typos).
SOURCES = [
    "README.md",
    *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
    "Dockerfile",
    "docker-compose.yml",
    *(str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.sh")),
    *(
        str(p.relative_to(ROOT))
        for d in ("deploy", "training", "service", "modelstore")
        for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in {".py", ".yaml", ".yml", ".sh", ".cfg"}
    ),
]


def test_env_every_vggsvc_name_in_the_repository_is_known() -> None:
    used: dict[str, set[str]] = {}
    for name in SOURCES:
        for variable in re.findall(r"\bVGGSVC_[A-Z0-9_]*[A-Z0-9]\b", (ROOT / name).read_text()):
            used.setdefault(variable, set()).add(name)
    assert len(used) > 20
    unknown = {
        v: sorted(w) for v, w in used.items() if v not in SETTINGS | OTHER_PROGRAMS_VARIABLES
    }
    assert unknown == {}, "add them to Settings or service.settings.OTHER_PROGRAMS_VARIABLES"
    unused = sorted(OTHER_PROGRAMS_VARIABLES - set(used))
    assert unused == [], "listed as read somewhere, but nothing reads them"


def test_env_other_programs_variables_are_not_warned_about(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {name: "x" for name in OTHER_PROGRAMS_VARIABLES} | {"VGGSVC_DEMO_PROT": "1"}
    assert warn_unknown_variables(environ) == ["VGGSVC_DEMO_PROT"]
    assert "did you mean VGGSVC_DEMO_PORT?" in capsys.readouterr().err


def test_env_feature_cache_old_name_works_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VGGSVC_FEATURE_CACHE_DIR", raising=False)
    monkeypatch.setenv("TRAINING_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(
        FutureWarning, match="TRAINING_CACHE_DIR is deprecated.*VGGSVC_FEATURE_CACHE_DIR"
    ):
        assert default_cache_dir() == tmp_path / "old"
    monkeypatch.setenv("VGGSVC_FEATURE_CACHE_DIR", str(tmp_path / "new"))
    assert default_cache_dir() == tmp_path / "new"  # the new name wins, silently


def _renamed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = 'source scripts/renamed-env.sh; renamed_env VGGSVC_DEMO_PORT DEMO_PORT; echo "$VGGSVC_DEMO_PORT"'
    clean = {k: v for k, v in os.environ.items() if not k.endswith("DEMO_PORT")}
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_env_scripts_old_name_works_with_a_warning() -> None:
    old = _renamed({"DEMO_PORT": "9001"})
    assert old.stdout.strip() == "9001"
    assert "DEMO_PORT is deprecated" in old.stderr and "set VGGSVC_DEMO_PORT" in old.stderr
    both = _renamed({"DEMO_PORT": "9001", "VGGSVC_DEMO_PORT": "9002"})
    assert both.stdout.strip() == "9002" and both.stderr == ""
    neither = _renamed({})
    assert neither.stdout.strip() == "" and neither.stderr == ""


def test_env_scripts_read_the_new_names_and_fall_back_to_the_old() -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    loop = re.search(
        r"for name in ([A-Z_ ]+); do\n\s+renamed_env \"VGGSVC_DEMO_\$name\" \"DEMO_\$name\"", demo
    )
    assert loop, "demo.sh no longer maps DEMO_* to VGGSVC_DEMO_*"
    assert {f"VGGSVC_DEMO_{n}" for n in loop.group(1).split()} == {
        v for v in OTHER_PROGRAMS_VARIABLES if v.startswith("VGGSVC_DEMO_")
    }
    assert not re.search(r"\$\{DEMO_", demo)  # nothing reads the old names directly
    venv = (ROOT / "scripts" / "venv.sh").read_text()
    assert "renamed_env VGGSVC_TF_FLAVOUR TF_FLAVOUR" in venv and "${TF_FLAVOUR" not in venv


def test_env_compose_reads_old_names_only_as_fallbacks() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"\$\{([A-Z_]+)", text):
        if not match.group(1).startswith(ENV_PREFIX):
            assert text[: match.start()].endswith(":-"), f"{match.group(1)} read directly"
    for old in ("TF_FLAVOUR", "IMAGE_TAG", "API_PORT", "TRAINING_DATA", "LB_PORT", "GRAFANA_PORT"):
        assert f":-${{{old}:-" in text, old
