"""The operator commands as one click group, ``observability``.

``theodore-obs`` adds them at its top level; Theodore's own CLI mounts the group::

    from theodore_obs.commands import observability
    theodore_cli.add_command(observability)   # theodore observability status ...
"""

from __future__ import annotations

import click

from ._errors import OneLineGroup
from .alerts import alerts
from .cost import cost
from .dashboard import dashboard
from .export import export
from .health import health
from .logs import logs
from .metrics import metrics
from .profile import profile
from .status import status
from .traces import traces

COMMANDS = [status, metrics, logs, traces, alerts, health, dashboard, export, cost, profile]


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def observability() -> None:
    """Status, metrics, logs, traces, alerts and AI cost of Theodore's observability stack."""


for _command in COMMANDS:
    observability.add_command(_command)

__all__ = ["COMMANDS", "observability"]
