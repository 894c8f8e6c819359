"""The demo Theodore service, its local upstreams (pages and a fake LLM) and a load generator."""

IMAGE_FAILURE_NOTE = "image-failure"
"""A research request whose ``note`` names this has every generated image refused (an ERROR log
line and a failed GenAI span each); the background load sends it only with ``--failures``."""
