"""Errors meant for the user: their message says what is wrong and how to fix it.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class SvsganError(Exception):
    """Base of every error svsgan raises on purpose."""


class InputError(SvsganError, ValueError):
    """Bad input data: an image, label map, message or file that cannot be used as given."""


class CheckpointError(SvsganError):
    """A checkpoint that is missing, corrupt, or does not match its configuration."""


class MissingWeightsError(SvsganError, FileNotFoundError):
    """A pretrained network's weight file (VGG19, Inception, I3D, ...) was not found locally."""
