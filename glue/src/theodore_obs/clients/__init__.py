"""Thin clients of the stack's real HTTP APIs, one module per backend.

Every request goes through :mod:`theodore_obs.clients._http`; a backend that does not answer
raises :class:`BackendUnavailable`, which the CLI turns into one line and exit code 3; a query
VictoriaLogs refuses raises :class:`RejectedQuery` (exit code 2).
"""

from ._http import BackendError, BackendUnavailable
from .addresses import Backends, backends_from_spec
from .victorialogs import RejectedQuery

__all__ = ["BackendError", "BackendUnavailable", "Backends", "RejectedQuery", "backends_from_spec"]
