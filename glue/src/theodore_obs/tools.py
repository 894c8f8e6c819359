"""Build the pinned native binaries from the Go module proxy into a per-version cache.

Each component of ``versions.yaml`` that names a ``module`` is built once into
``<cache>/tools/<name>-<version>[-<manifest hash>]/`` and reused afterwards. A build goes to a
temporary directory that is renamed into place only when every binary exists, so an
interrupted build never leaves a cache entry that looks complete.

Two ways to build:
- ``go build`` with ``-mod=mod`` inside a writable copy of the module that ``go mod download``
  fetched. ``go install module@version`` is not used: it refuses modules with ``replace`` or
  ``exclude`` directives (Jaeger) and asks the proxy for version lists it may refuse
  (blackbox_exporter). Nested modules missing from the module zip lose their local
  ``replace``, and embedded web-UI assets the zip lacks get a placeholder page;
- the OpenTelemetry Collector Builder for the collector, from our manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import jinja2
import yaml

from . import kube_tools
from .paths import cache_root, repo_root
from .versions import Component, load_versions

MARKER = ".complete"


class ToolError(RuntimeError):
    """A tool could not be built or found."""


def _manifest_text(component: Component, output_path: Path) -> str:
    template = (repo_root() / component.builder_manifest).read_text()
    return jinja2.Template(template, undefined=jinja2.StrictUndefined).render(
        version=component.version, output_path=str(output_path))


def tool_dir(component: Component) -> Path:
    """The cache directory of one component: its version plus a hash of how it is built.

    Changing a build tag, a linker flag or the collector's manifest gives a new directory,
    so a cached binary always matches the recipe in versions.yaml.
    """
    recipe = {k: v for k, v in asdict(component).items() if k not in ("name", "image")}
    if component.builder_manifest:
        recipe["manifest"] = _manifest_text(component, Path("/"))
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return cache_root() / "tools" / f"{component.name}-{component.version}-{digest[:10]}"


def buildable(components: dict[str, Component]) -> list[Component]:
    return [c for c in components.values() if c.module] + kube_tools.components()


def binary_path(binary: str, components: dict[str, Component] | None = None) -> Path:
    """Path of a cached binary, e.g. ``binary_path("promtool")``; raises if not built yet."""
    components = components or load_versions()
    for component in buildable(components):
        if binary in component.binaries:
            path = tool_dir(component) / binary
            if path.is_file():
                return path
            raise ToolError(f"{binary} {component.version} is not built yet: run `make tools`")
    raise ToolError(f"no component in versions.yaml provides a binary named {binary!r}")


def is_built(component: Component) -> bool:
    return (tool_dir(component) / MARKER).is_file()


class _Heartbeat:
    """Prints a progress line every ``every`` seconds while a long step runs."""

    def __init__(self, label: str, every: float = 20.0) -> None:
        self.label, self.every = label, every
        self.packages = 0
        self.downloads = 0
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(f"      {self.label}: {self.elapsed():.0f}s, {self.downloads} modules downloaded, "
                  f"{self.packages} packages compiled",
                  flush=True)


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, CGO_ENABLED="0", GOWORK="off")
    if gobin:
        env["GOBIN"] = str(gobin)
    return env


SUMDB_MISS = re.compile(r"sum\.golang\.org/lookup/\S+: 404 Not Found")
"""The checksum database's answer the module proxy here sometimes gives for a module it serves:
asked again a few seconds later, it answers (and the go command caches what it learned)."""

SUMDB_TRIES = 6


def _run_go(cmd: list[str], cwd: Path, env: dict[str, str], beat: _Heartbeat, log: Path) -> None:
    """Run one go (or builder) command; again, up to SUMDB_TRIES times, while the only trouble
    is a checksum lookup the module proxy answered 404."""
    for attempt in range(1, SUMDB_TRIES + 1):
        start = log.stat().st_size if log.exists() else 0
        try:
            _run_go_once(cmd, cwd, env, beat, log)
            return
        except ToolError:
            with log.open() as text:
                text.seek(start)
                missed = SUMDB_MISS.search(text.read())
            if missed is None or attempt == SUMDB_TRIES:
                raise
            module = missed.group(0).split(":")[0].rsplit("/lookup/", 1)[-1]
            print(f"      {beat.label}: the checksum database answered 404 for {module}; "
                  f"trying again ({attempt + 1}/{SUMDB_TRIES})", flush=True)
            time.sleep(5 * attempt)


def _run_go_once(cmd: list[str], cwd: Path, env: dict[str, str], beat: _Heartbeat, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith("go: downloading"):
                beat.downloads += 1
            elif not line.startswith(("#", " ")):
                beat.packages += 1
        if proc.wait() != 0:
            out.flush()
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            raise ToolError(f"`{' '.join(cmd)}` failed (full log: {log}):\n{tail}")


def _build_flags(component: Component) -> list[str]:
    ldflags = "-s -w"
    if component.version_var:
        ldflags += " -X " + component.version_var.format(version=component.version)
    tags = ["-tags", component.build_tags] if component.build_tags else []
    return ["-trimpath", *tags, "-ldflags", ldflags]


def _module_source(component: Component, workdir: Path, env: dict[str, str]) -> Path:
    """A writable copy of the module's source, its go.mod fixed up for a standalone build."""
    out = subprocess.run(["go", "mod", "download", "-json",
                          f"{component.module}@{component.module_version}"],
                         cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ToolError(f"go mod download {component.module}@{component.module_version}: "
                        f"{out.stdout}{out.stderr}")
    source = Path(json.loads(out.stdout)["Dir"])
    copy = workdir / "src"
    shutil.copytree(source, copy)
    for path in copy.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    _drop_missing_local_replaces(copy, env)
    for folder in component.embed_placeholders:
        (copy / folder).mkdir(parents=True, exist_ok=True)
        (copy / folder / "index.html").write_text(
            f"<!doctype html><title>{component.name}</title>"
            f"<p>{component.name} {component.version} was built without its web UI assets; "
            "use its HTTP API or Grafana.</p>\n")
    return copy


def _drop_missing_local_replaces(src: Path, env: dict[str, str]) -> None:
    """Module zips leave out nested modules; a ``replace x => ./dir`` to one cannot resolve."""
    mod = json.loads(subprocess.run(["go", "mod", "edit", "-json"], cwd=src, env=env,
                                    capture_output=True, text=True, check=True).stdout)
    for rep in mod.get("Replace") or []:
        target = rep["New"]["Path"]
        if target.startswith(".") and not (src / target).is_dir():
            subprocess.run(["go", "mod", "edit", f"-dropreplace={rep['Old']['Path']}"],
                           cwd=src, env=env, check=True)


def _build_with_go(component: Component, dest: Path, beat: _Heartbeat, log: Path) -> None:
    env = _go_env()
    with tempfile.TemporaryDirectory(prefix=f"build-{component.name}-") as tmp:
        work = Path(tmp)
        src = _module_source(component, work, env)
        for binary, package in component.binaries.items():
            _run_go(["go", "build", "-v", "-mod=mod", *_build_flags(component),
                     "-o", str(dest / binary), package], src, env, beat, log)


def _build_with_builder(component: Component, dest: Path, beat: _Heartbeat, log: Path) -> None:
    env = _go_env(gobin=dest / ".builder")
    (dest / ".builder").mkdir()
    _run_go(["go", "install", "-trimpath", f"{component.module}@{component.module_version}"],
            dest, env, beat, log)
    with tempfile.TemporaryDirectory(prefix="build-otelcol-") as tmp:
        manifest = Path(tmp) / "builder-config.yaml"
        manifest.write_text(_manifest_text(component, Path(tmp) / "dist"))
        _run_go([str(dest / ".builder" / "builder"), "--config", str(manifest), "--verbose",
                 "--ldflags=-s -w"], Path(tmp), _go_env(), beat, log)
        (binary,) = component.binaries
        shutil.move(str(Path(tmp) / "dist" / "otelcol-theodore"), dest / binary)
    shutil.rmtree(dest / ".builder")


def build(component: Component, index: int, total: int) -> Path:
    """Build one component into its cache directory unless it is there already."""
    dest = tool_dir(component)
    prefix = f"[{index}/{total}] {component.name} {component.version}"
    if is_built(component):
        print(f"{prefix}: cached in {dest}", flush=True)
        return dest
    if shutil.which("go") is None:
        raise ToolError("the Go toolchain is needed to build the native tools: install Go >= 1.26")
    print(f"{prefix}: building {', '.join(component.binaries)} (log: {dest}.log)", flush=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log = dest.with_name(dest.name + ".log")
    log.write_text("")
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        with _Heartbeat(component.name) as beat:
            if component.builder_manifest:
                _build_with_builder(component, staging, beat, log)
            elif kube_tools.builds(component):
                kube_tools.build(component, staging, beat, log)
            else:
                _build_with_go(component, staging, beat, log)
        missing = [b for b in component.binaries if not (staging / b).is_file()]
        if missing:
            raise ToolError(f"{component.name}: build finished without {', '.join(missing)}")
        (staging / MARKER).write_text(f"{component.module}@{component.module_version}\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{prefix}: built in {beat.elapsed():.0f}s", flush=True)
    return dest


def ensure_tools(names: list[str] | None = None) -> dict[str, Path]:
    """Build every pinned tool (or only ``names``) that is not cached yet."""
    components = buildable(load_versions())
    if names:
        unknown = set(names) - {c.name for c in components}
        if unknown:
            raise ToolError(f"unknown tool(s): {', '.join(sorted(unknown))}")
        components = [c for c in components if c.name in names]
    start = time.monotonic()
    dirs = {c.name: build(c, i, len(components)) for i, c in enumerate(components, 1)}
    if not names:
        for schema in schema_names():
            print(f"{schema} schema: {module_file(schema)}", flush=True)
    print(f"tools ready in {cache_root() / 'tools'} ({time.monotonic() - start:.0f}s)", flush=True)
    return dirs


def main(argv: list[str] | None = None) -> int:
    try:
        ensure_tools(argv if argv is not None else sys.argv[1:])
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def schema_names() -> list[str]:
    """Every schema pinned under ``schemas:`` in versions.yaml."""
    return list(yaml.safe_load((repo_root() / "versions.yaml").read_text())["schemas"])


def module_file(schema: str) -> Path:
    """A file read from a pinned Go module (``schemas:`` in versions.yaml), e.g. compose's schema."""
    pins = yaml.safe_load((repo_root() / "versions.yaml").read_text())["schemas"][schema]
    out = subprocess.run(["go", "mod", "download", "-json",
                          f"{pins['module']}@{pins['module_version']}"],
                         capture_output=True, text=True, check=False, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise ToolError(f"cannot download {pins['module']}@{pins['module_version']}: "
                        f"{out.stdout}{out.stderr}")
    return Path(json.loads(out.stdout)["Dir"]) / pins["file"]
