"""Which precision runs where: the pure decision, for every kind of machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelstore.runtime import (
    PrecisionUnavailableError,
    cpu_flags,
    resolve_precision,
)

AMX = {"avx512f", "amx_bf16", "amx_tile"}
AVX512_BF16 = {"avx512f", "avx512_bf16"}
PLAIN = {"avx2", "fma"}


@pytest.mark.parametrize(
    ("requested", "gpu", "flags", "effective"),
    [
        ("auto", None, AMX, "bf16"),
        ("auto", None, AVX512_BF16, "bf16"),
        ("auto", None, PLAIN, "fp32"),
        ("bf16", None, AMX, "bf16"),
        ("fp32", None, AMX, "fp32"),
        ("auto", (8, 0), PLAIN, "fp16"),
        ("auto", (9, 0), AMX, "fp16"),  # the GPU wins over the CPU's units
        ("auto", (7, 0), PLAIN, "fp16"),
        ("auto", (6, 1), PLAIN, "fp32"),
        ("fp16", (7, 5), PLAIN, "fp16"),
        ("fp32", (9, 0), PLAIN, "fp32"),
    ],
)
def test_precision_auto_and_explicit_choices(
    requested: str, gpu: tuple[int, int] | None, flags: set[str], effective: str
) -> None:
    chosen = resolve_precision(requested, gpu, flags)
    assert chosen.effective == effective
    assert chosen.requested == requested
    assert chosen.reason


@pytest.mark.parametrize(
    ("requested", "gpu", "flags", "words"),
    [
        ("bf16", None, PLAIN, ("amx_bf16", "fp32")),
        ("fp16", None, AMX, ("GPU", "bf16")),
        ("bf16", (9, 0), PLAIN, ("fp16",)),
        ("fp16", (6, 1), PLAIN, ("Tensor Cores", "fp32")),
    ],
)
def test_precision_explicit_choice_that_cannot_run_is_a_clear_error(
    requested: str, gpu: tuple[int, int] | None, flags: set[str], words: tuple[str, ...]
) -> None:
    with pytest.raises(PrecisionUnavailableError) as err:
        resolve_precision(requested, gpu, flags)
    for word in words:
        assert word in str(err.value)


def test_precision_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16, int8"):
        resolve_precision("int4", None, AMX)


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16\nbugs\t\t: none\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


VNNI = {"avx512f", "avx512_bf16", "avx512_vnni"}


@pytest.mark.parametrize(
    ("requested", "gpu", "flags", "runtime", "int8", "effective"),
    [
        ("auto", None, VNNI, "2026.4.1", True, "bf16"),  # int8 where a version has it
        ("auto", None, {"avx2", "avx_vnni"}, "2026.4.1", True, "fp32"),
        ("auto", None, {"amx_int8", "amx_bf16"}, "2026.4.1", True, "bf16"),
        ("auto", None, VNNI, None, False, "bf16"),  # runtime not installed
        ("auto", None, AVX512_BF16, "2026.4.1", False, "bf16"),  # no int8 units
        ("auto", (8, 0), VNNI, "2026.4.1", False, "fp16"),  # GPUs: Tensor Cores instead
        ("bf16", None, VNNI, "2026.4.1", False, "bf16"),  # asked for bf16: no int8
        ("int8", None, VNNI, "2026.4.1", True, "int8"),
    ],
)
def test_precision_int8_choices(
    requested: str,
    gpu: tuple[int, int] | None,
    flags: set[str],
    runtime: str | None,
    int8: bool,
    effective: str,
) -> None:
    chosen = resolve_precision(requested, gpu, flags, runtime)
    assert (chosen.int8, chosen.effective) == (int8, effective)


@pytest.mark.parametrize(
    ("gpu", "flags", "runtime", "words"),
    [
        (None, AVX512_BF16, "2026.4.1", ("avx512_vnni", "auto")),
        (None, VNNI, None, ("openvino",)),
        ((9, 0), VNNI, "2026.4.1", ("CPUs only",)),
    ],
)
def test_precision_int8_that_cannot_run_is_a_clear_error(
    gpu: tuple[int, int] | None, flags: set[str], runtime: str | None, words: tuple[str, ...]
) -> None:
    with pytest.raises(PrecisionUnavailableError) as err:
        resolve_precision("int8", gpu, flags, runtime)
    for word in words:
        assert word in str(err.value)
