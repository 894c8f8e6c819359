"""Java programs the tests run, fetched from Maven Central by ``make tools``; never shipped.

``versions.yaml``'s ``maven:`` block pins each as Maven coordinates
(``group:artifact:version:packaging[:classifier]``); Maven keeps it in the local repository
(``~/.m2/repository``), which is this cache. Today: the Zipkin server the collector's Zipkin
exporter is tested against (``tests/test_integrations.py``).

``python -m theodore_obs.maven_tools`` fetches what is missing and prints where each one is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .paths import repo_root


class MavenError(RuntimeError):
    """An artifact could not be fetched: names it and what to do."""


@dataclass(frozen=True)
class Artifact:
    name: str
    coordinates: str

    @property
    def path(self) -> Path:
        """Where Maven keeps it in the local repository."""
        group, artifact, version, packaging, *classifier = self.coordinates.split(":")
        suffix = f"-{classifier[0]}" if classifier else ""
        return (Path.home() / ".m2" / "repository" / Path(*group.split(".")) / artifact / version
                / f"{artifact}-{version}{suffix}.{packaging}")


def artifacts(path: Path | None = None) -> dict[str, Artifact]:
    raw = yaml.safe_load((path or repo_root() / "versions.yaml").read_text())
    return {name: Artifact(name, spec["artifact"]) for name, spec in (raw.get("maven") or {}).items()}


def artifact_path(name: str) -> Path:
    """The fetched artifact ``name``; raises with the command that fetches it if it is not there."""
    found = artifacts()[name]
    if not found.path.is_file():
        raise MavenError(f"{name} ({found.coordinates}) is not fetched yet: run `make tools`")
    return found.path


def fetch_missing(say=print) -> None:
    for artifact in artifacts().values():
        if artifact.path.is_file():
            say(f"{artifact.name}: cached in {artifact.path}")
            continue
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise MavenError(f"{artifact.name}: Maven and a Java runtime are needed to fetch "
                             f"{artifact.coordinates} (Debian: apt-get install maven default-jre-headless)")
        say(f"{artifact.name}: fetching {artifact.coordinates} from Maven Central")
        command = ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={artifact.coordinates}",
                   "-Dtransitive=false"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0 or not artifact.path.is_file():
            raise MavenError(f"{artifact.name}: mvn dependency:get {artifact.coordinates} failed: "
                             + (result.stdout + result.stderr).strip()[-400:])
        say(f"{artifact.name}: fetched into {artifact.path}")


if __name__ == "__main__":
    try:
        fetch_missing()
    except MavenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
