# The demo Theodore service image for compose: the glue package with its demo extra.
# Built by `docker compose` from the repository root (see rendered/<env>/compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY glue /app/glue
RUN pip install --no-cache-dir '/app/glue[demo]'
USER 10001
