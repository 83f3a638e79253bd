"""The long decoder fuzz: seeded random mutations of valid images through `imaging.load_image`.

Run: PYTHONPATH=. python scripts/fuzz_decoder.py [--iterations 200000] [--seed 0] [--out DIR]

The same seeds, mutations and property as the bounded test
(tests/imaging/test_decode_fuzz.py; see tests/support/decoder_fuzz.py): each
iteration picks a seed image and 1-6 mutations, decodes, and checks that the
result is a uint8 array or an ImageError. Failures are written to --out as
`<n>.bin` with the line that replays them, and the run exits 1. The outcome
counts (decoded / CorruptImageError / NotAnImageError / ImageTooLargeError) and
the rate are printed at the end; iterations are deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.decoder_fuzz import KINDS, check_decode, describe, mutate, seed_images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Pillow warns about the garbage it skips
    seeds = seed_images()
    names = sorted(seeds)
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    failures = 0
    began = time.perf_counter()
    for iteration in range(args.iterations):
        name = rng.choice(names)
        changes = [
            (rng.randrange(len(KINDS)), rng.randrange(1 << 16), rng.randrange(1 << 32))
            for _ in range(rng.randint(1, 6))
        ]
        data = mutate(seeds[name], changes)
        try:
            outcomes[check_decode(data)] += 1
        except Exception as exc:  # the property failed: record it and go on
            failures += 1
            outcomes[f"FAILED {type(exc).__name__}"] += 1
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{iteration}.bin").write_bytes(data)
            (args.out / f"{iteration}.txt").write_text(
                describe(name, changes) + "\n" + traceback.format_exc()
            )
        if (iteration + 1) % 10_000 == 0:
            print(f"{iteration + 1} iterations, {failures} failures", flush=True)
    seconds = time.perf_counter() - began
    print(
        f"{args.iterations} iterations (seed {args.seed}) in {seconds:.0f} s, "
        f"{args.iterations / seconds:.0f}/s"
    )
    for outcome, count in outcomes.most_common():
        print(f"  {count:8d}  {outcome}")
    if failures:
        print(f"{failures} failures written to {args.out}/", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
