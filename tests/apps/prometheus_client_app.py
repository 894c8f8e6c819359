"""An unmodified Flask app that counts with prometheus_client: no observability code of ours.

Its metrics live in prometheus_client's default registry, as the seeds' code defines them
(Counter, Histogram with its own buckets, Gauge, Summary, Info); it opens no /metrics port.
``prometheus_client_app.py COUNT`` serves COUNT ``/checkout`` requests through Flask's test
client, logs one line inside each, prints the exposition prometheus_client would serve, and exits
(so the SDK's last export runs). Run under ``opentelemetry-instrument``.
"""

import logging
import sys

import flask
from prometheus_client import Counter, Gauge, Histogram, Info, Summary, generate_latest

ORDERS = Counter("shop_orders", "Orders placed.", ["kind", "region"])
REFUNDS = Counter("shop_refunds_total", "Refunds issued.")
CHECKOUT = Histogram("shop_checkout_seconds", "Checkout time.", ["kind"], buckets=(0.05, 0.25, 1.0))
QUEUE = Gauge("shop_queue_depth", "Orders waiting.")
PAYLOAD = Summary("shop_payload_bytes", "Request payload size.")
BUILD = Info("shop_build", "Build of the shop.")

log = logging.getLogger("prometheus_client_app")
app = flask.Flask("prometheus_client_app")


@app.route("/checkout")
def checkout() -> dict:
    kind = flask.request.args["kind"]
    ORDERS.labels(kind=kind, region="eu-1").inc()
    CHECKOUT.labels(kind=kind).observe(0.1 if kind == "book" else 0.5)
    PAYLOAD.observe(512)
    log.info("checkout %s", kind)
    return {"ok": True}


BUILD.info({"version": "1.2.3"})
REFUNDS.inc(2)
QUEUE.set(7)
client = app.test_client()
for number in range(int(sys.argv[1])):
    assert client.get(f"/checkout?kind={'book' if number % 2 else 'lamp'}").status_code == 200
print(generate_latest().decode())
