"""An unmodified Celery app: one task, queued through kombu's filesystem transport.

No broker server: the producer (the FastAPI app) and the worker share the folder named by
``SHAPES_QUEUE_DIR``. Run the worker as
``opentelemetry-instrument celery -A shapes_tasks worker``.
"""

import logging
import os
from pathlib import Path

from celery import Celery

_QUEUE = Path(os.environ["SHAPES_QUEUE_DIR"])
for folder in ("in", "processed", "control"):
    (_QUEUE / folder).mkdir(parents=True, exist_ok=True)

celery_app = Celery("shapes_tasks", broker="filesystem://")
celery_app.conf.update(
    broker_transport_options={"data_folder_in": str(_QUEUE / "in"), "data_folder_out": str(_QUEUE / "in"),
                              "processed_folder": str(_QUEUE / "processed"),
                              "control_folder": str(_QUEUE / "control"), "polling_interval": 0.1},
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
log = logging.getLogger("shapes_tasks")


@celery_app.task(name="shapes.record")
def record(marker: str) -> None:
    log.info("task %s pid=%s", marker, os.getpid())
