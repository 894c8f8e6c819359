# The demo Theodore service image for compose: the tooling package with its demo extra, which
# brings the app side (theodore-telemetry) and the shared metric catalogue.
# Built by `docker compose` from the repository root (see rendered/<env>/compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY catalogue /app/catalogue
COPY telemetry /app/telemetry
COPY glue /app/glue
RUN pip install --no-cache-dir /app/catalogue /app/telemetry '/app/glue[demo]'
USER 10001
