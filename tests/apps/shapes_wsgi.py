"""An unmodified Flask app for gunicorn: no observability code of ours.

``GET /work?marker=M`` waits a little (so a busy worker leaves the next request to another),
counts the request with prometheus_client, logs one line naming the marker and its process,
and answers with that process id. Run as ``opentelemetry-instrument gunicorn shapes_wsgi:app``.
"""

import logging
import os
import time

import flask
from prometheus_client import Counter

REQUESTS = Counter("shapes_requests", "Requests served.", ["route"])

log = logging.getLogger("shapes_wsgi")
app = flask.Flask("shapes_wsgi")


@app.route("/work")
def work() -> dict:
    marker = flask.request.args["marker"]
    time.sleep(0.03)
    REQUESTS.labels(route="/work").inc()
    log.info("work %s pid=%s", marker, os.getpid())
    return {"pid": os.getpid()}
