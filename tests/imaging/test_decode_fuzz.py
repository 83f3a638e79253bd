"""Bounded, seeded mutation fuzz of `load_image`: only ImageError may escape, for any bytes.

Derandomized (the same examples on every run) and capped at FUZZ_EXAMPLES, a few
seconds; `python scripts/fuzz_decoder.py` is the long run (docs/benchmarks.md, "Decoder fuzz").
A failure prints the seed name and mutation list, replayable with
`tests.support.decoder_fuzz.replay(seed, mutations)`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.decoder_fuzz import KINDS, check_decode, mutate, seed_images

# Pillow warns about the garbage it skips (corrupt EXIF, oversized tags): expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEEDS = seed_images()
FUZZ_EXAMPLES = 600

mutations = st.lists(
    st.tuples(
        st.integers(0, len(KINDS) - 1), st.integers(0, 1 << 16), st.integers(0, (1 << 32) - 1)
    ),
    min_size=1,
    max_size=6,
)


def test_fuzz_seeds_decode() -> None:
    """The unmutated seeds are valid images of every format (else the fuzz tests nothing)."""
    assert {check_decode(data) for data in SEEDS.values()} == {"decoded"}


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.sampled_from(sorted(SEEDS)), changes=mutations)
def test_fuzz_load_image_raises_only_image_errors(seed: str, changes: list) -> None:
    check_decode(mutate(SEEDS[seed], changes))


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    entry=st.integers(0, 8),
    kind=st.integers(0, 13),
    value=st.integers(0, (1 << 32) - 1),
    retype=st.booleans(),
)
def test_fuzz_tiff_tag_types_and_values_raise_only_image_errors(
    entry: int, kind: int, value: int, retype: bool
) -> None:
    """Every tag of the issue's 8x8 TIFF, given any TIFF type or value (the file family
    whose FLOAT or RATIONAL StripOffsets escaped as TypeError)."""
    tiff = SEEDS["tiff_strips"]
    change = (
        KINDS.index("tiff_retype" if retype else "tiff_revalue"),
        entry,
        kind if retype else value,
    )
    check_decode(mutate(tiff, [change]))
