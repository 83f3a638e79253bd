"""Settings: VGGSVC_* environment variables, CLI flags over them, validation at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import service.__main__ as service_main
from service.__main__ import parse_settings, server_implementations
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_read_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGGSVC_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("VGGSVC_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("VGGSVC_ADMIN_KEY", "k")
    settings = Settings()
    assert settings.models_dir == Path("/srv/models")
    assert settings.max_batch_size == 8 and settings.admin_key == "k"
    assert settings.buckets == [1, 2, 3, 4, 5, 6, 7, 8]  # no padding by default


def test_settings_buckets_always_end_at_max_batch_size() -> None:
    # Sizes above the maximum are dropped and the maximum itself is always a bucket.
    assert Settings(max_batch_size=16, batch_sizes="4,1,32").buckets == [1, 4, 16]
    assert Settings(max_batch_size=8, batch_sizes="16,32").buckets == [8]
    assert Settings(max_batch_size=8, batch_sizes="8,2").buckets == [2, 8]


def test_settings_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGGSVC_PORT", "9000")
    monkeypatch.setenv("VGGSVC_HOST", "0.0.0.0")
    settings = parse_settings(["--port", "8123", "--models-dir", "elsewhere"])
    assert settings.port == 8123 and settings.host == "0.0.0.0"
    assert settings.models_dir == Path("elsewhere")


def test_settings_lists_parsed_once_from_environment_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VGGSVC_BATCH_SIZES", " 8, 1,,4,8")
    monkeypatch.setenv("VGGSVC_PINNED_VERSIONS", "car_truck:3, car_truck:1,x:2,car_truck:3")
    settings = Settings()
    # Typed, sorted and de-duplicated in the fields themselves, not re-parsed on each use.
    assert settings.batch_sizes == [1, 4, 8]
    assert all(type(size) is int for size in settings.batch_sizes)
    assert settings.pinned_versions == {"car_truck": [1, 3], "x": [2]}
    assert settings.pins == {"car_truck": {1, 3}, "x": {2}}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VGGSVC_BATCH_SIZES", "a,b"),
        ("VGGSVC_BATCH_SIZES", "0,2"),
        ("VGGSVC_PINNED_VERSIONS", "car_truck"),
        ("VGGSVC_PINNED_VERSIONS", "car_truck:0"),
        ("VGGSVC_PINNED_VERSIONS", "car_truck:x"),
        ("VGGSVC_PINNED_VERSIONS", ":2"),
        ("VGGSVC_LOG_LEVEL", "loud"),
        ("VGGSVC_MAX_BATCH_SIZE", "0"),
        # A limit set where it would refuse every request, or no longer bound anything.
        ("VGGSVC_MAX_REQUEST_BYTES", "0"),
        ("VGGSVC_MAX_IMAGE_PIXELS", "0"),
        ("VGGSVC_MAX_IMAGES_PER_REQUEST", "0"),
        ("VGGSVC_MAX_QUEUE", "0"),
        ("VGGSVC_MAX_DECODE_QUEUE", "0"),
        ("VGGSVC_REQUEST_TIMEOUT_S", "0"),
        ("VGGSVC_MAX_BATCH_DELAY_MS", "-1"),
        ("VGGSVC_DECODE_THREADS", "0"),
        ("VGGSVC_GRACEFUL_TIMEOUT_S", "-1"),
        ("VGGSVC_DRAIN_DELAY_S", "-1"),
        ("VGGSVC_GPU_MEMORY_LIMIT_MB", "0"),
    ],
)
def test_settings_bad_environment_value_stops_start_up_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        parse_settings([])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    flag = "--" + variable.removeprefix("VGGSVC_").lower().replace("_", "-")
    assert "invalid settings" in message and repr(value) in message
    assert f"{variable} / {flag}:" in message  # what the user typed, not pydantic's name
    assert "usage:" not in message


def test_settings_unknown_variable_is_warned_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VGGSVC_MAX_BATCH", "32")  # a typo of VGGSVC_MAX_BATCH_SIZE
    monkeypatch.setenv("VGGSVC_PORT", "8001")
    settings = parse_settings([])
    assert settings.max_batch_size == 16 and settings.port == 8001
    err = capsys.readouterr().err
    assert "VGGSVC_MAX_BATCH is not a setting" in err
    assert "did you mean VGGSVC_MAX_BATCH_SIZE?" in err
    assert "VGGSVC_PORT" not in err


def test_settings_help_lists_every_field_with_description_and_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--help"],
        cwd=ROOT,
        # Wide enough that argparse wraps no line (it would break words at hyphens).
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for name, info in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = "VGGSVC_" + name.upper()
        if name == "admin_key":
            continue
        default = info.get_default(call_default_factory=True)
        shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        assert info.description and flag in text, name
        assert f"{info.description} (default: {shown}; env {env})" in text, name
    # A secret never goes in argv, where every user of the machine can read it.
    assert "--admin-key" not in text and "VGGSVC_ADMIN_KEY" not in text


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The modules `find_spec` finds, as far as service.__main__ asks: none until added."""
    modules: set[str] = set()
    monkeypatch.setattr(
        service_main.importlib.util,
        "find_spec",
        lambda name: object() if name in modules else None,
    )
    return modules


def test_settings_http_and_loop_auto_pick_the_c_implementations_only_when_installed(
    installed: set[str],
) -> None:
    assert server_implementations("auto", "auto") == ("h11", "asyncio")
    installed.update({"httptools", "uvloop"})
    assert server_implementations("auto", "auto") == ("httptools", "uvloop")
    assert server_implementations("h11", "asyncio") == ("h11", "asyncio")  # asked: kept
    settings = parse_settings(["--http", "h11", "--loop", "asyncio"])
    assert (settings.http, settings.loop) == ("h11", "asyncio")
    with pytest.raises(SystemExit) as stopped:
        parse_settings(["--loop", "trio"])
    assert stopped.value.code == 2


def test_settings_http_or_loop_named_but_not_installed_exits_2_before_start(
    installed: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # uvicorn imports them only after the models are loaded, and then dies with a traceback.
    with pytest.raises(SystemExit) as stopped:
        parse_settings(["--http", "httptools", "--loop", "uvloop"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "VGGSVC_HTTP / --http: httptools is not installed: pip install httptools" in err
    assert "VGGSVC_LOOP / --loop: uvloop is not installed: pip install uvloop" in err
    assert (parse_settings(["--http", "auto"]).http, parse_settings([]).loop) == ("auto", "auto")
    installed.update({"httptools", "uvloop"})
    settings = parse_settings(["--http", "httptools", "--loop", "uvloop"])
    assert (settings.http, settings.loop) == ("httptools", "uvloop")


def test_settings_http_and_loop_say_truly_whether_their_c_modules_are_dependencies() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).replace(" ", "")
    for field, module in (("http", "httptools"), ("loop", "uvloop")):
        declared = module in deps or "uvicorn[standard]" in deps
        description = Settings.model_fields[field].description or ""
        assert ("not a dependency" in description) == (not declared), description
        assert ("installed with the product" in description) == declared, description
