"""Thin clients of the stack's real HTTP APIs, one module per backend.

Every request goes through :mod:`theodore_obs.clients._http`; a backend that does not answer
raises :class:`BackendUnavailable`, which the CLI turns into one line and exit code 3.
"""

from ._http import BackendError, BackendUnavailable
from .addresses import Backends, backends_from_spec

__all__ = ["BackendError", "BackendUnavailable", "Backends", "backends_from_spec"]
