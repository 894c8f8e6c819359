"""The native runtime: every component as a process on 127.0.0.1, managed by supervisord.

``up`` renders the environment for this runtime into the state directory, writes the
receivers' secret files from the environment (a receiver whose secret is not set is left out
of Alertmanager's config, with one line saying so), starts supervisord with one program per
component and waits for every readiness endpoint. ``down`` shuts supervisord down, which stops
exactly the processes it started.
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import io
import os
import signal
import stat
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from .collector_context import go_memory_limit, storage_directory
from .components import native_components
from .endpoints import Endpoint, Health, probe, service_endpoints, stack_endpoints
from .integrations import integration_secret_files, secret_problems
from .paths import state_root
from .render import (
    alertmanager_flags,
    native_runtime,
    prometheus_flags,
    render_files,
    secret_files,
    unconfigured_receivers,
    victorialogs_flags,
    vmalert_flags,
    vmauth_flags,
    write_tree,
)
from .spec import Spec
from .tenant_access import VMAUTH_CONFIG, TokenError, filled_config, native_tokens, read_token, token_env
from .timing import duration_seconds, wait_until
from .tools import binary_path


class NativeError(RuntimeError):
    """The native stack could not be started or stopped."""


@dataclass(frozen=True)
class State:
    """The files of one native stack."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def vmauth_config(self) -> Path:
        """The native vmauth's private config, tokens filled in (``write_vmauth_config``)."""
        return self.root / "secrets" / VMAUTH_CONFIG

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"

    def data(self, component: str) -> Path:
        return self.root / "data" / component

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def demo_programs(spec: dict[str, Any], state: State,
                  environment: str = "local") -> dict[str, tuple[list[str], dict[str, str]]]:
    """The demo service under ``opentelemetry-instrument``, its upstreams and its load."""
    demo = spec["demo"]
    if not demo["enabled"]:
        return {}
    python = sys.executable
    bin_dir = Path(python).parent
    port = spec["services"][demo["service"]]["port"]
    upstream = f"http://127.0.0.1:{demo['upstream_port']}"
    app_env = {
        "OTEL_SERVICE_NAME": demo["service"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{spec['ports']['otlp_http']}",
        # Metrics as often as Prometheus scrapes (not the SDK's 60 s): alerts see a fault sooner.
        "OTEL_METRIC_EXPORT_INTERVAL": f"{duration_seconds(spec['intervals']['scrape']) * 1000:.0f}",
        "THEODORE_ENVIRONMENT": environment,
        "THEODORE_AI_PRICES_FILE": str(state.config / "apps" / "ai-prices.json"),
        # service.version: the regression rules and the Versions dashboard compare versions.
        "THEODORE_SERVICE_VERSION": version("theodore-observability"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
    }
    found = {
        "demo-upstreams": ([python, "-m", "theodore_obs.demo.upstreams",
                            f"--port={demo['upstream_port']}"], {}),
        demo["service"]: ([str(bin_dir / "opentelemetry-instrument"), python, "-m", "theodore_obs.demo.app",
                           f"--port={port}", f"--upstream={upstream}", f"--model={demo['model']}",
                           f"--store={state.data(demo['service']) / 'research.db'}"], app_env),
    }
    if demo["load_rps"] > 0:
        found["demo-load"] = ([python, "-m", "theodore_obs.demo.loadgen", f"--target=http://127.0.0.1:{port}",
                               f"--rps={demo['load_rps']}"], {})
    return found


def _arguments(spec: dict[str, Any], state: State) -> dict[str, list[str]]:
    """Each native component's arguments after its binary, reading this runtime's configs."""
    cfg, runtime = state.config, native_runtime(state.root)
    return {
        "victorialogs": victorialogs_flags(spec, runtime, str(state.data("victorialogs"))),
        "victorialogs-audit": victorialogs_flags(spec, runtime, str(state.data("victorialogs-audit")),
                                                 "victorialogs-audit"),
        "vmalert": vmalert_flags(spec, runtime, str(cfg / "vmalert/rules/*.yml")),
        "vmauth": vmauth_flags(spec, runtime, str(state.vmauth_config)),
        "jaeger": [f"--config={cfg / 'jaeger/config.yaml'}"],
        "otel-collector": [f"--config={cfg / 'otel-collector/config.yaml'}"],
        "prometheus": prometheus_flags(spec, runtime, str(cfg / "prometheus/prometheus.yml"),
                                       str(state.data("prometheus"))),
        "alertmanager": alertmanager_flags(spec, runtime, str(cfg / "alertmanager/alertmanager.yml"),
                                           str(state.data("alertmanager"))),
        "blackbox": [f"--config.file={cfg / 'prometheus/blackbox.yml'}",
                     f"--web.listen-address=127.0.0.1:{spec['ports']['blackbox']}"],
    }


def programs(spec: dict[str, Any], state: State) -> dict[str, list[str]]:
    """The command line of each component the registry runs natively (program name and binary
    from ``components``), reading the configs rendered for this runtime."""
    arguments = _arguments(spec, state)
    return {c.name: [str(binary_path(c.binary)), *arguments[c.name]]
            for c in native_components() if c.binary}


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'" if any(c in arg for c in " \"'%;") else arg


def supervisor_config(spec: dict[str, Any], state: State, environment: str = "local") -> str:
    conf = configparser.RawConfigParser()
    conf["unix_http_server"] = {"file": str(state.socket), "chmod": "0700"}
    conf["supervisord"] = {
        "logfile": str(state.logs / "supervisord.log"), "pidfile": str(state.pidfile),
        "directory": str(state.root), "childlogdir": str(state.logs), "loglevel": "info",
    }
    conf["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"}
    conf["supervisorctl"] = {"serverurl": f"unix://{state.socket}"}
    environments = {"otel-collector": {"GOMEMLIMIT": go_memory_limit(spec)}}
    everything = {name: (argv, environments.get(name, {})) for name, argv in programs(spec, state).items()}
    everything.update(demo_programs(spec, state, environment))
    for name, (argv, env) in everything.items():
        conf[f"program:{name}"] = {
            "command": " ".join(_quote(a) for a in argv).replace("%", "%%"),
            "directory": str(state.data(name)),
            "autostart": "true", "autorestart": "unexpected", "startsecs": "1",
            "startretries": "2", "stopsignal": "TERM", "stopwaitsecs": "15",
            "stopasgroup": "true", "killasgroup": "true",
            "redirect_stderr": "true", "stdout_logfile": str(state.log(name)),
            "stdout_logfile_maxbytes": "20MB", "stdout_logfile_backups": "2",
        }
        if env:
            conf[f"program:{name}"]["environment"] = ",".join(
                f'{k}="{v}"' for k, v in env.items()).replace("%", "%%")
    out = io.StringIO()
    conf.write(out)
    return out.getvalue()


def _rpc(state: State) -> Any:
    transport = SupervisorTransport(None, None, f"unix://{state.socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_pid(state: State) -> int | None:
    """The pid of this stack's supervisord if it is alive, else None."""
    try:
        pid = int(state.pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def process_info(state: State) -> list[dict[str, Any]]:
    if supervisord_pid(state) is None:
        return []
    try:
        return _rpc(state).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Fault):
        return []


SECRET_OPEN = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How a secret file is opened: never through a symlink, never blocking on a FIFO."""


def secret_name(name: str) -> str:
    """``name`` if it is a plain file name inside the secrets directory, else :class:`NativeError`."""
    if not name or "/" in name or "\\" in name or "\0" in name or name.startswith(".") or ".." in name:
        raise NativeError(f"secret file name {name!r}: expected a plain file name (no '/', no '..', "
                          "not starting with '.')")
    return name


def _secrets_dir(state: State) -> int:
    """The state's secrets directory (created 0700), opened without following a symlink."""
    path = state.root / "secrets"
    path.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise NativeError(f"{path}: refusing the secrets directory ({exc.strerror}; a symlink?)") from None
    os.fchmod(fd, 0o700)
    return fd


def _write_secret(dir_fd: int, name: str, value: str, where: Path) -> None:
    """Write ``value`` to ``name`` in ``dir_fd``: a regular file, mode 0600 even if it existed."""
    try:
        fd = os.open(name, SECRET_OPEN, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise NativeError(f"{where}: refusing to write the secret ({exc.strerror}; a symlink?)") from None
    with os.fdopen(fd, "w") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NativeError(f"{where}: refusing to write the secret (not a regular file)")
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        handle.write(value)


def _remove_secret(dir_fd: int, name: str, where: Path) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NativeError(f"{where}: cannot remove the stale secret ({exc.strerror})") from None


def _write_tokens(spec: dict[str, Any], dir_fd: int, secrets_dir: Path) -> None:
    """The tenants' and the auditors' tokens (``tenant_access.native_tokens``), mode 0600."""
    try:
        tokens = native_tokens(spec, dir_fd, secrets_dir)
    except TokenError as exc:
        raise NativeError(str(exc)) from None
    for name, token in tokens.items():
        _write_secret(dir_fd, secret_name(name), token, secrets_dir / name)


def write_vmauth_config(spec: dict[str, Any], state: State) -> None:
    """The native vmauth's config: the one rendered for this runtime with the tokens of the
    state's secrets filled in, at ``state.vmauth_config`` (mode 0600)."""
    secrets_dir = state.root / "secrets"
    try:
        tokens = {env_var: read_token(secrets_dir / name) for env_var, name in token_env(spec).items()}
        text = filled_config((state.config / "vmauth" / "auth.yml").read_text(), tokens)
    except (TokenError, OSError) as exc:
        raise NativeError(f"vmauth's config: {exc}") from None
    dir_fd = _secrets_dir(state)
    try:
        _write_secret(dir_fd, VMAUTH_CONFIG, text, state.vmauth_config)
    finally:
        os.close(dir_fd)


def write_secrets(spec: dict[str, Any], state: State) -> list[str]:
    """Secret files for the receivers, from environment variables; returns the missing ones.

    Each file is created in the state's secrets directory only (a name with ``/``, ``..`` or a
    leading ``.`` is refused), never through a symlink, with mode 0600 also when it existed."""
    files = {**secret_files(spec), **integration_secret_files(spec)}
    wanted = {secret_name(name): env_var for name, env_var in files.items()}
    dir_fd = _secrets_dir(state)
    missing = []
    try:
        for name, env_var in wanted.items():
            where, value = state.root / "secrets" / name, os.environ.get(env_var)
            if value is None:
                missing.append(env_var)
                _remove_secret(dir_fd, name, where)
            else:
                _write_secret(dir_fd, name, value, where)
        _write_tokens(spec, dir_fd, state.root / "secrets")
    finally:
        os.close(dir_fd)
    return missing


DEMO_MODULES = ("theodore_telemetry", "flask", "opentelemetry.instrumentation.flask")
"""What the demo service imports beyond the tooling: the ``demo`` extra."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def check_demo_installed(spec: dict[str, Any]) -> None:
    """A spec that runs the demo needs the ``demo`` extra: say so before anything starts."""
    missing = [m for m in DEMO_MODULES if not _installed(m)] if spec["demo"]["enabled"] else []
    if missing:
        raise NativeError(f"demo.enabled is true, but the demo service is not installed (missing "
                          f"{', '.join(missing)}): pip install 'theodore-observability[demo]', "
                          "or set demo.enabled: false in the spec")


def prepare(spec: Spec, state: State) -> None:
    """Render this runtime's configs and the supervisor config into the state directory."""
    check_demo_installed(spec.data)
    unconfigured = frozenset(unconfigured_receivers(spec.data, state.root / "secrets"))
    runtime = dataclasses.replace(native_runtime(state.root), unconfigured_receivers=unconfigured)
    write_tree(render_files(spec, runtime), state.config)
    write_vmauth_config(spec.data, state)
    for component in [*programs(spec.data, state), *demo_programs(spec.data, state)]:
        state.data(component).mkdir(parents=True, exist_ok=True)
    Path(storage_directory(native_runtime(state.root))).mkdir(exist_ok=True)  # the collector's queue
    state.logs.mkdir(parents=True, exist_ok=True)
    state.supervisor_conf.write_text(supervisor_config(spec.data, state, spec.environment))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


def wait_ready(spec: Spec, state: State, timeout: float, say: Any = print) -> list[Health]:
    """Poll every readiness endpoint, printing each component as it becomes ready."""
    start = time.monotonic()
    started_apps = demo_programs(spec.data, state)
    endpoints = stack_endpoints(spec.data) + [e for e in service_endpoints(spec.data)
                                              if e.component in started_apps]
    pending: dict[str, Endpoint] = {e.component: e for e in endpoints}
    ready: list[Health] = []
    last: dict[str, Health] = {}
    next_note = start + 3.0

    def all_ready() -> bool:
        nonlocal next_note
        exited = {p["name"]: p for p in process_info(state)
                  if p["statename"] in ("EXITED", "FATAL", "BACKOFF")}
        for name in list(pending):
            if name in exited:
                raise NativeError(
                    f"{name} exited ({exited[name]['statename']}); log {state.log(name)}:\n"
                    f"{_tail(state.log(name))}")
            health = probe(pending[name], timeout=1.0)
            last[name] = health
            if health.healthy:
                ready.append(health)
                del pending[name]
                say(f"  ready  {name:<15} {time.monotonic() - start:5.1f}s")
        if pending and time.monotonic() >= next_note:
            say(f"  waiting for {', '.join(sorted(pending))} ({time.monotonic() - start:.0f}s)")
            next_note = time.monotonic() + 3.0
        return not pending

    if not wait_until(all_ready, timeout - (time.monotonic() - start), every=0.1):
        details = "\n".join(
            f"  {name}: {last[name].detail if name in last else 'not probed'}; "
            f"log {state.log(name)}:\n{_tail(state.log(name), 8)}" for name in pending)
        raise NativeError(f"not ready after {timeout:.0f}s: {', '.join(pending)}\n{details}")
    return ready


def up(spec: Spec, state: State | None = None, timeout: float = 90.0, say: Any = print) -> float:
    """Start the stack (or re-check a running one); returns seconds until all were ready."""
    state = state or State(state_root())
    start = time.monotonic()
    if supervisord_pid(state) is not None:
        say(f"native stack already running (supervisord pid {supervisord_pid(state)}); "
            "checking health")
    else:
        write_secrets(spec.data, state)
        problems = secret_problems(spec.data, state.root / "secrets")
        if problems:
            raise NativeError("; ".join(problems))
        unconfigured = unconfigured_receivers(spec.data, state.root / "secrets")
        if unconfigured:
            say("  note: alert receivers left out of the routing until their secret is set: "
                + ", ".join(f"{name} (${', $'.join(env)})" for name, env in unconfigured.items()))
        prepare(spec, state)
        conf = configparser.RawConfigParser()
        conf.read(state.supervisor_conf)  # its programs, without resolving every binary again
        count = sum(section.startswith("program:") for section in conf.sections())
        say(f"starting {count} programs "
            f"(environment {spec.environment}, state {state.root})")
        proc = subprocess.run([sys.executable, "-m", "supervisor.supervisord",
                               "-c", str(state.supervisor_conf)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NativeError(f"supervisord did not start: {proc.stdout}{proc.stderr}")
    try:
        wait_ready(spec, state, timeout, say)
    except NativeError:
        down(state, say=lambda *_: None)
        raise
    elapsed = time.monotonic() - start
    say(f"all components ready in {elapsed:.1f}s")
    return elapsed


def _pids(state: State) -> list[int]:
    return [p["pid"] for p in process_info(state) if p.get("pid")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def down(state: State | None = None, timeout: float = 30.0, say: Any = print) -> None:
    """Stop every process ``up`` started, then supervisord itself."""
    state = state or State(state_root())
    pid = supervisord_pid(state)
    if pid is None:
        say("native stack is not running")
        return
    children = _pids(state)
    say(f"stopping {len(children)} components and supervisord (pid {pid})")
    try:
        _rpc(state).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault):
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(_alive(p) for p in [pid, *children]), timeout, every=0.1)  # else killed
    leftovers = [p for p in [pid, *children] if _alive(p)]
    for leftover in leftovers:
        os.kill(leftover, signal.SIGKILL)
    state.pidfile.unlink(missing_ok=True)
    say("stopped" + (f" (killed {leftovers} after {timeout:.0f}s)" if leftovers else ""))
