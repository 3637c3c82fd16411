"""Errors meant for the user: their message says what is wrong and how to fix it.

Every entry point (the `svsgan` commands, `generator_node`, `convert_bag`) prints these as one line,
without a traceback. `user_message` is the last net those entry points share: it also turns the
other failures a user can cause or fix (a file system error, a binary file where text belongs, a
number too large, memory running out) into one line. Anything else is a bug: it keeps its
traceback and says where to report it. `--debug` or SVSGAN_DEBUG=1 shows the traceback of
every error.
"""
from __future__ import annotations

import os
import sqlite3

#: where a bug (an exception `user_message` does not know) is reported
REPORT_BUGS = ("this is a bug in svsgan: please report it to the svsgan maintainers (svsgan@example.org) "
               "with the command line and the traceback above")
DEBUG_ENV = "SVSGAN_DEBUG"


class SvsganError(Exception):
    """Base of every error svsgan raises on purpose."""


class InputError(SvsganError, ValueError):
    """Bad input data: an image, label map, message or file that cannot be used as given."""


class CheckpointError(SvsganError):
    """A checkpoint that is missing, corrupt, or does not match its configuration."""


class MissingWeightsError(SvsganError, FileNotFoundError):
    """A pretrained network's weight file (VGG19, Inception, I3D, ...) was not found locally."""


def debug_requested() -> bool:
    """SVSGAN_DEBUG set to anything but empty, 0, false or no: tracebacks for every error."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def user_message(exc: BaseException) -> str | None:
    """The one line an entry point prints for an error the user can act on; None for a bug."""
    if isinstance(exc, (SvsganError, FileNotFoundError)):
        return str(exc)
    if isinstance(exc, OSError):  # read-only folder, disk full, a path through a file or a symlink loop
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file that should be text is binary or not UTF-8 ({exc.reason} at byte {exc.start}); "
                "check the file named in the command")
    if isinstance(exc, OverflowError):
        return f"a number is too large to use ({exc}); check the values given"
    if isinstance(exc, MemoryError):
        return ("out of memory: the input or the model needs more memory than this process can have "
                "(see --max-megapixels and SVSGAN_MAX_MODEL_GIB)")
    if isinstance(exc, sqlite3.Error):  # a .db3 output on a full disk: "database or disk is full"
        return f"writing the .db3 bag failed: {exc}"
    return None
