"""The demo Theodore service, its local upstreams (pages and a fake LLM) and a load generator."""
