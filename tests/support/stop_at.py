"""Run `python -m training ARGS`, freezing the process (SIGSTOP) at one instant of publishing.

    python tests/support/stop_at.py rename fit --data DIR --name NAME ...

Instants too short to catch from outside the process: `metadata` (metadata.json
about to be opened for writing: SavedModel and plots are in the draft) and
`rename` (the complete draft about to be renamed to its version number). A
test waits for the stop, looks at the draft, and kills the process with
SIGKILL. Nothing in the product changes: an audit hook (PEP 578) watches the
process's own `open` and `os.rename` events.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

from modelstore.layout import DRAFT_PREFIX
from modelstore.metadata import METADATA_FILE

INSTANTS = ("metadata", "rename")


def _name(path: Any) -> str:
    name = os.path.basename(os.fspath(path))
    return name if isinstance(name, str) else name.decode(errors="replace")


def _stop_at(instant: str) -> Any:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if instant == "metadata" and event == "open":
            path, mode = args[0], args[1]
            writing = isinstance(mode, str) and "w" in mode
            if writing and isinstance(path, str | os.PathLike) and _name(path) == METADATA_FILE:
                os.kill(os.getpid(), signal.SIGSTOP)
        elif (
            instant == "rename" and event == "os.rename" and _name(args[0]).startswith(DRAFT_PREFIX)
        ):
            os.kill(os.getpid(), signal.SIGSTOP)

    return hook


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in INSTANTS:
        sys.exit(f"usage: stop_at.py {{{'|'.join(INSTANTS)}}} TRAINING-ARGS...")
    sys.addaudithook(_stop_at(sys.argv[1]))
    sys.argv = ["python -m training", *sys.argv[2:]]
    runpy.run_module("training", run_name="__main__", alter_sys=True)
