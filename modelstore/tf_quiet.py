"""Import TensorFlow without its start-up chatter, unless asked for it (`--verbose`).

Both programs (`python -m training`, `python -m service`) call
`import_tensorflow(verbose)` once, after their arguments are checked and before
anything else imports TensorFlow:

    from modelstore.tf_quiet import import_tensorflow
    import_tensorflow(verbose=False)

Why more than `TF_CPP_MIN_LOG_LEVEL`: in TensorFlow 2.21 the oneDNN notice
("oneDNN custom operations are on ...", twice) and, on GPU builds, the
"Unable to register cuDNN/cuFFT/cuBLAS factory" lines are written through absl
before absl's logging is initialised, so no environment variable hides them
(measured here: TF_CPP_MIN_LOG_LEVEL=3, TF_CPP_MAX_VLOG_LEVEL=-1,
ABSL_MIN_LOG_LEVEL, GLOG_minloglevel all leave the oneDNN lines;
TF_ENABLE_ONEDNN_OPTS=0 hides them only by turning oneDNN, and with it bf16
on AMX, off). So the import runs with file descriptor 2 captured, TensorFlow's
C++ log records are dropped from what was captured, and everything else
(Python warnings, tracebacks) is written back to stderr. After the import,
`TF_CPP_MIN_LOG_LEVEL=2` keeps info and warning records out; errors still show.

No TensorFlow import at module level: this runs before it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping

VERBOSE_ENV = "VGGSVC_VERBOSE"
_TRUE = frozenset({"1", "true", "yes", "on"})

# absl's record prefix, e.g. `I0000 00:00:1795459486.808369   23194 port.cc:153] `
# (severity I/W/E; F is fatal and kept). Its preamble comes once per shared library.
_RECORD = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] ")
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# What a continuation line of a dropped record is not: the start of Python output.
_PYTHON_OUTPUT = re.compile(r"^(Traceback |\S+\.py:\d+: |\S*(Error|Warning)\b)")


def verbose_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """`VGGSVC_VERBOSE=1` (or true/yes/on): the default of the `--verbose` flags."""
    return environ.get(VERBOSE_ENV, "").strip().lower() in _TRUE


def drop_tf_log_lines(text: str) -> str:
    """`text` without TensorFlow's C++ log records (and their continuation lines)."""
    kept: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == _PREAMBLE or _RECORD.match(line):
            dropping = True
        elif dropping and line.strip() and not _PYTHON_OUTPUT.match(line):
            pass  # e.g. cpu_feature_guard's "To enable the following instructions: ..."
        else:
            dropping = False
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _stderr_without_tf_lines() -> Iterator[None]:
    """Capture file descriptor 2 (C++ writes there directly), then replay it filtered."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = drop_tf_log_lines(capture.read().decode("utf-8", errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def import_tensorflow(verbose: bool) -> None:
    """Import TensorFlow: quietly by default, with every start-up line when `verbose`.

    Only the first import can be quietened: if TensorFlow is already imported,
    this does nothing.
    """
    if "tensorflow" in sys.modules:
        return
    if verbose:
        # An explicit request wins over a quieter level set by the image or the shell.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        importlib.import_module("tensorflow")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_without_tf_lines():
        importlib.import_module("tensorflow")
    # absl's Python logger: "WARNING:absl:..." notes from SavedModel export and loading.
    logging.getLogger("absl").setLevel(logging.ERROR)
