"""`python -m training prune`: old versions go; the newest, the served and the pinned stay."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelstore.layout import list_versions, reserve_version
from modelstore.metadata import METADATA_FILE, read_metadata, write_metadata
from tests.training.conftest import export_rule_model
from training.cli import EXIT_BAD_INPUT, main


@pytest.fixture(scope="module")
def one_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("prune") / "models"
    return export_rule_model(models, "m", ["a", "b"], [[0, 0]] * 3, [0, 0])


@pytest.fixture
def five(one_version: Path, tmp_path: Path) -> Path:
    """models/m/1..5, each a copy of a real published version."""
    models = tmp_path / "models"
    for version in range(1, 6):
        shutil.copytree(one_version, models / "m" / str(version))
    (models / "m" / ".last-published").write_text("5\n")
    return models


def _prune(models: Path, *flags: str) -> int:
    return main(["prune", "--name", "m", "--models-dir", str(models), *flags])


def test_prune_keeps_the_newest_k_and_the_pinned(
    five: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _prune(five, "--keep", "2", "--pinned", "m:1,other:3") == 0
    assert list_versions(five / "m") == [1, 4, 5]
    out = capsys.readouterr().out
    assert "1 (pinned)" in out and "5 (newest, served)" in out and "deleted 2, 3" in out
    assert not [p for p in (five / "m").iterdir() if p.name.startswith(".tmp-")]
    # A number is never handed out twice: the next version is 6, not 2 or 3.
    with reserve_version(five, "m") as draft:
        write_metadata(draft.path, read_metadata(five / "m" / "5"))
    assert draft.version == 6


def test_prune_keeps_the_version_the_service_serves_when_the_newest_is_broken(
    five: Path,
) -> None:
    (five / "m" / "5" / METADATA_FILE).unlink()  # the service serves 4 now
    assert _prune(five, "--keep", "1") == 0
    assert list_versions(five / "m") == [4, 5]


def test_prune_reads_the_services_pins_from_the_environment(
    five: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VGGSVC_PINNED_VERSIONS", "m:2")
    assert _prune(five, "--keep", "1") == 0
    assert list_versions(five / "m") == [2, 5]


def test_prune_dry_run_deletes_nothing(five: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _prune(five, "--keep", "1", "--dry-run") == 0
    assert list_versions(five / "m") == [1, 2, 3, 4, 5]
    assert "would delete 1, 2, 3, 4" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--keep", "0"], "must be >= 1"),
        (["--keep", "1", "--pinned", "m-2"], "--pinned entries look like car_truck:2"),
        (["--keep", "1", "--name", "nothing"], "holds no published version"),
    ],
)
def test_prune_bad_arguments_exit_2_and_delete_nothing(
    five: Path, flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = _prune(five, *flags)
    except SystemExit as exc:  # argparse's own checks
        code = int(exc.code or 0)
    assert code == EXIT_BAD_INPUT
    assert says in capsys.readouterr().err
    assert list_versions(five / "m") == [1, 2, 3, 4, 5]
