"""Metric names and types from the catalogue, read without importing OpenTelemetry."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def catalogue() -> dict[str, dict[str, Any]]:
    """``{name: {"type", "help", "labels", ...}}`` from ``telemetry/catalogue.yaml``."""
    text = resources.files("theodore_obs").joinpath("telemetry", "catalogue.yaml").read_text()
    return yaml.safe_load(text)["metrics"]


def names_with(word: str) -> list[str]:
    """Catalogue names containing ``word`` (or its singular: ``ai_operations`` finds ``ai_operation``)."""
    word = word.replace("-", "_").lower()
    stems = {word, word.removesuffix("s")}
    return [name for name in catalogue() if any(stem and stem in name for stem in stems)]

