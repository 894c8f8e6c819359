"""Hostile input: every subcommand over bad arguments, broken specs and misbehaving backends.

Each row runs one command with one thing wrong and asserts what the README promises: no
traceback, one line ``error: …`` on stderr, and the documented exit code (2 bad input, 3 a
backend that does not answer, 1 anything else). Backends are a closed loopback port or a tiny
local HTTP server that answers the wrong shape or an HTML error page, as a broken proxy would.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from theodore_obs.cli import main
from theodore_obs.clients._http import (
    BadURL,
    check_url,
    mask_url,
    path_segment,
    summarise,
)
from theodore_obs.clients.alertmanager import Alertmanager
from theodore_obs.clients.jaeger import Jaeger, trace_id
from theodore_obs.clients.prometheus import label_value
from theodore_obs.clients.victorialogs import logsql_string

from .conftest import load_stack, run_cli

CLOSED = "http://127.0.0.1:9"
"""Nothing listens on the discard port of loopback: connection refused."""
BACKENDS = ("prometheus", "alertmanager", "victorialogs", "jaeger", "grafana")
SILENCE = "1b4d3c2a-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
NOT_UTF8 = "caf\udcff"
"""What Python makes of a non-UTF-8 byte in argv (surrogate escape)."""
PASSWORD = "s3cret-pw"

OPERATOR = {
    "status": [], "metrics": ["--metric-name", "up"], "logs": [], "traces": ["--service", "x"],
    "alerts": [], "alerts list": [], "alerts routes": ["severity=critical"],
    "alerts silence create": ["-m", "alertname=X", "--comment", "c"], "alerts silence list": [],
    "alerts silence expire": [SILENCE], "alerts ack": ["X"], "alerts resolve": ["X"],
    "alerts timeline": ["X"], "health": [], "dashboard": ["Overview"], "export": ["logs"], "cost": [],
}
"""Each command that asks a backend, with the arguments it needs when its input is fine."""
NO_BACKEND = ["render", "validate", "tools", "up", "bench", "down", "alerts silence", "profile"]
"""The rest (none is run with valid input here: `up`, `tools` and `bench` would start or build)."""
REPORTS_HEALTH = {"status", "health"}
"""These report a backend that does not answer as not healthy (exit 1) instead of exit 3."""
LOGSQL = {"logs", "export"}
"""These ask VictoriaLogs a LogsQL query (`export logs`): a query it refuses is bad input (exit 2)."""


# --- the misbehaving backend --------------------------------------------------------------

HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{}</style></head>"
        b"<body><h1>Bad Gateway</h1>" + b"<p>nginx</p>" * 200 + b"</body></html>")
ANSWERS = {
    "wrong-list": (200, "application/json", b'[1, "x", null]'),
    "missing-keys": (200, "application/json", b'{"status": "success"}'),
    "wrong-inner": (200, "application/json", json.dumps({
        "status": "success", "data": {"result": [{"metric": 5, "value": "x"}], "activeTargets": 7,
                                      "alerts": [{"labels": []}]}}).encode()),
    "html-502": (502, "text/html", HTML),
    "html-200": (200, "text/html", HTML),
    "bad-query": (400, "text/plain; charset=utf-8",
                  b"cannot parse `query` arg [foo:(]: unexpected end of query after \"(\"; expecting a filter\n"),
}
"""What the fake backend answers, by the first segment of the request path."""
EMPTY = (200, "application/json", json.dumps({
    "status": "success", "data": {"result": [], "activeTargets": [], "alerts": []}}).encode())
"""``/ok``: an empty answer the JSON clients accept (VictoriaLogs' gets no lines: :data:`NO_LOGS`)."""
NO_LOGS = (200, "application/stream+json", b"")
"""``/ok/select/logsql/…``: VictoriaLogs' answer when no log matches."""
SEEN: list[tuple[str, str, dict[str, str]]] = []
"""Every request the fake backend saw: method, path with query, headers (names in lower case)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every method with the canned answer its path's first segment names."""

    def _answer(self) -> None:
        SEEN.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        first = self.path.split("/")[1]
        status, kind, body = ANSWERS.get(first, NO_LOGS if self.path.startswith(f"/{first}/select/logsql/")
                                         else EMPTY)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def fake_backend() -> Iterator[str]:
    """Base URL of the misbehaving backend on 127.0.0.1 (append ``/<answer name>``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


# --- specs --------------------------------------------------------------------------------

ALIAS_BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9)}]\n"
                     for p, a in zip("abcdefgh", "bcdefghi", strict=True))


def _bad_specs(root: Path) -> dict[str, Path]:
    """One broken spec file per way a spec can be broken."""
    good = yaml.safe_dump(load_stack(), sort_keys=False).encode()
    texts: dict[str, bytes] = {
        # the bad bytes make the spec invalid however they are decoded: `up` never starts anything
        "spec-not-utf8": good.replace(b"prometheus: 9090", b"prometheus: 90\xe9\xff90", 1),
        "spec-top-level-list": b"- ports\n- environments\n",
        "spec-environments-5": yaml.safe_dump({**load_stack(), "environments": 5}).encode(),
        "spec-empty": b"",
        "spec-alias-bomb": (f'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
                            f"{ALIAS_BOMB}ports: *i\n").encode(),
    }
    found = {"spec-missing": root / "missing.yaml", "spec-a-directory": root}
    for name, text in texts.items():
        found[name] = root / f"{name}.yaml"
        found[name].write_bytes(text)
    return found


@pytest.fixture(scope="module")
def closed_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stack.yaml with every port moved where nothing listens, so `status` and `health` see the
    same closed world whatever else runs on this machine."""
    spec = load_stack()
    spec["ports"] = {name: port + 23456 for name, port in spec["ports"].items()}
    spec["services"]["theodore-demo"]["port"] += 23456
    path = tmp_path_factory.mktemp("closed") / "stack.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# --- the matrix ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One command run with one thing wrong and the exit code the README documents for it."""

    command: str
    case: str
    args: tuple[str, ...] = ()
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    """Text that must appear nowhere in the output (a password)."""

    @property
    def id(self) -> str:
        return f"{self.command.replace(' ', '-')}:{self.case}"


def _urls(url: str) -> dict[str, str]:
    return {f"THEODORE_OBS_{name.upper()}_URL": url for name in BACKENDS}


def _closed_code(command: str) -> int:
    return 1 if command in REPORTS_HEALTH else 3


def _operator_rows(command: str, specs: dict[str, Path]) -> list[Row]:
    """Addresses, specs and environments that are wrong, for a command that asks a backend."""
    rows = [Row(command, f"url-{name}", code=2, env=_urls(url)) for name, url in [
        ("bad-ipv6", "http://[::1"), ("no-scheme", "127.0.0.1:9"), ("bad-port", "http://127.0.0.1:99999"),
        ("ftp", "ftp://127.0.0.1/"), ("space", "http://127.0.0.1:9/a b")]]
    rows.append(Row(command, "url-closed", code=_closed_code(command)))
    rows.append(Row(command, "url-closed-with-password", code=_closed_code(command),
                    env=_urls(f"http://admin:{PASSWORD}@127.0.0.1:9"), hidden=(PASSWORD,)))
    rows += [Row(command, name, env={"THEODORE_OBS_SPEC": str(path)}) for name, path in specs.items()]
    rows.append(Row(command, "env-unknown", env={"THEODORE_OBS_ENV": "nope"}))
    return rows


def _backend_code(command: str, answer: str) -> int:
    """Expiring a silence reads no answer, so any JSON 200 is success for it; a query
    VictoriaLogs refuses (HTTP 400) is bad input; every other wrong answer is exit 1."""
    if command == "alerts silence expire" and ANSWERS[answer][1] == "application/json":
        return 0
    return 2 if command in LOGSQL and answer == "bad-query" else 1


def _backend_rows(command: str) -> list[Row]:
    """Answers of the wrong shape, HTML error pages and a refused query, for a command that asks
    a backend."""
    return [Row(command, f"backend-{name}", code=_backend_code(command, name), env={"fake": name})
            for name in ANSWERS]


PROFILE_ROWS = [
    Row("profile", "no-target"),
    Row("profile", "service-and-pid", ("theodore-demo", "--pid", "1")),
    *(Row("profile", f"pid-{v}", ("--pid", v)) for v in ("0", "-1", "abc", "99999999", "1e3")),
    *(Row("profile", f"seconds-{v}", ("--pid", "1", "--seconds", v)) for v in ("0", "-1", "nan", "99999999999")),
    *(Row("profile", f"rate-{v}", ("--pid", "1", "--rate", v)) for v in ("0", "100000")),
    Row("profile", "service-not-utf8", (NOT_UTF8,)),
    Row("profile", "pid-gone", ("--pid", str(2**22)), code=1),
    Row("profile", "service-stack-down", ("theodore-demo",), code=3),
    Row("profile", "compare-missing", ("--pid", "1", "--compare", "/nonexistent/old.speedscope.json")),
    Row("profile", "compare-a-directory", ("--pid", "1", "--compare", "/")),
    Row("profile", "out-missing-folder", ("--pid", "1", "--out", "/nonexistent/folder/x")),
    Row("profile", "out-a-directory", ("--pid", "1", "--out", "/tmp")),
]
"""`profile` asks no backend: a target, sampling options, the files it reads and writes (a pid
that does not exist fails, exit 1; a service with no native stack running is exit 3)."""

OPTION_ROWS = [
    *(Row(c, f"at-{v}", ("--at", v)) for c in ("metrics", "cost")
      for v in ("nan", "inf", "-inf", "1e400", "-5", "yesterday", "99999-01-01")),
    *(Row(c, f"limit-{v}", ("--limit", v)) for c in ("logs", "traces", "export")
      for v in ("-5", "0", "1" + "0" * 30, "many")),
    *(Row(c, f"since-{v}", ("--since", v)) for c in ("logs", "traces") for v in ("99999999999w", "0s", "1x")),
    *(Row("alerts silence create", f"duration-{v}", ("--duration", v)) for v in ("99999999999w", "0s", "2")),
    Row("alerts silence create", "matcher-no-name", ("-m", "=x")),
    Row("alerts silence create", "comment-not-utf8", ("--comment", NOT_UTF8)),
    *(Row("traces", f"trace-id-{n}", ("--trace-id", v)) for n, v in
      [("climbs", "../../status"), ("short", "abc"), ("not-hex", "z" * 32), ("not-utf8", NOT_UTF8)]),
    Row("traces", "min-duration-words", ("--min-duration", "slow")),
    *(Row("alerts silence expire", f"id-{n}", (v,)) for n, v in
      [("climbs", "../../status"), ("query", "x?y=1"), ("not-uuid", "1234")]),
    *(Row("alerts ack", f"duration-{v}", ("--duration", v)) for v in ("99999999999w", "0s", "2")),
    *(Row(c, f"matcher-{n}", ("-m", v)) for c in ("alerts ack", "alerts resolve", "alerts timeline")
      for n, v in [("no-name", "=x"), ("bad-regex", "service=~(")]),
    *(Row(c, "matcher-not-utf8", ("-m", f"service={NOT_UTF8}")) for c in ("alerts ack", "alerts resolve",
                                                                             "alerts timeline")),
    *(Row("alerts timeline", f"since-{v}", ("--since", v)) for v in ("99999999999w", "0s", "1x")),
    Row("alerts routes", "label-is-a-flag", ("--", "--config.file=/etc/passwd")),
    Row("alerts routes", "label-without-value", ("severity",)),
    *(Row(c, "metric-name-injection", ("--metric-name", 'up) or vector(1) or (x')) for c in ("metrics", "export")),
    *(Row("metrics", f"interval-{v}", ("--live", "--interval", v)) for v in ("nan", "-1", "0")),
    *(Row(c, "search-not-utf8", (o, NOT_UTF8)) for c, o in [("logs", "--search"), ("logs", "--component"),
                                                            ("metrics", "--component"), ("dashboard", "--uid")]),
    *(Row(c, f"tenant-{n}", ("--tenant", v)) for c in ("logs", "export")
      for n, v in [("unknown", "nope"), ("not-utf8", NOT_UTF8), ("empty", "")]),
    Row("status", "component-unknown", ("--component", "nope")),
    Row("bench", "runs-negative", ("--runs", "-1")),
    Row("bench", "runs-zero", ("--runs", "0")),
    Row("tools", "unknown-tool", ("no-such-tool",)),
    Row("tools", "tool-path", ("../prometheus",)),
    Row("alerts silence", "no-subcommand"),
    Row("up", "env-unknown", ("--env", "nope")),
    *PROFILE_ROWS,
]
"""Bad values of single options (each command also gets its other arguments, see OPERATOR)."""


def _output_rows(tmp: Path) -> list[Row]:
    """Output files that cannot be written: a directory, a missing folder, a file as folder."""
    (tmp / "a-file").write_text("x")
    targets = {"out-a-directory": tmp, "out-missing-folder": tmp / "missing" / "out.json",
               "out-under-a-file": tmp / "a-file" / "out.json"}
    options = [("metrics", "--export"), ("logs", "--export"), ("export", "-o"), ("bench", "--out")]
    rows = [Row(c, case, (o, str(p))) for c, o in options for case, p in targets.items()]
    rows += [Row("render", case.replace("out-", "render-out-"), ("--out", str(p)))
             for case, p in [("out-a-file", tmp / "a-file"), ("out-under-a-file", tmp / "a-file" / "x")]]
    rows += [Row("validate", f"dir-{case}", ("--dir", str(p)))
             for case, p in [("a-file", tmp / "a-file"), ("missing", tmp / "missing")]]
    return rows


def _spec_rows(specs: dict[str, Path]) -> list[Row]:
    """Broken specs given to the commands that take ``--spec`` themselves."""
    return [Row(c, name, ("--spec", str(p))) for c in ("render", "up") for name, p in specs.items()]


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    """Every command and group below ``group``, as ``alerts silence create``."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append(path)
        if isinstance(command, click.Group):
            found += command_paths(command, path + " ")
    return found


def matrix(tmp: Path) -> list[Row]:
    """Every row: an unknown option for every command, the rest where it applies."""
    specs = _bad_specs(tmp)
    rows = [Row(path, "unknown-option", ("--no-such-option",)) for path in command_paths(main)]
    for command in OPERATOR:
        rows += _operator_rows(command, specs) + _backend_rows(command)
    return rows + OPTION_ROWS + _output_rows(tmp) + _spec_rows(specs)


SPEC_OWNED = {"render", "validate", "up"}
"""The commands that load and render a spec: their rows are checked by a test of their own."""


# --- running a row ------------------------------------------------------------------------


def _invoke(row: Row, closed_spec: Path, fake: str, tmp: Path) -> click.testing.Result:
    env = {"THEODORE_OBS_STATE": str(tmp / "state"), "THEODORE_OBS_SPEC": str(closed_spec),
           "THEODORE_OBS_ENV": "local", "THEODORE_OBS_HTTP_TIMEOUT": "5", **_urls(CLOSED)}
    extra = dict(row.env)
    if "fake" in extra:
        extra = _urls(f"{fake}/{extra.pop('fake')}")
    args = [*row.command.split(), *OPERATOR.get(row.command, []), *row.args]
    return CliRunner().invoke(main, args, env={**env, **extra}, catch_exceptions=True)


def _problems(row: Row, result: click.testing.Result) -> list[str]:
    """What is wrong with how ``row`` ended (nothing when it kept every promise)."""
    problems = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"raised {type(result.exception).__name__}: {result.exception}")
    text = result.stdout + result.stderr
    if "Traceback" in text:
        problems.append("a traceback in the output")
    if result.exit_code != row.code:
        problems.append(f"exit {result.exit_code}, documented {row.code}")
    lines = result.stderr.splitlines()
    if row.code and (len(lines) != 1 or not lines[0].startswith("error: ")):
        problems.append(f"stderr is not one `error: …` line: {result.stderr[:300]!r}")
    if row.code and lines and lines[0].startswith("error: unexpected"):
        problems.append("an unexpected exception, caught only by the last resort")
    problems += [f"{secret!r} shown" for secret in row.hidden if secret in text]
    if "<title" in text or "<p>nginx" in text:
        problems.append("an HTML body dumped")
    return problems + [f"stderr: {result.stderr.strip()[:300]!r}"] if problems else []


@pytest.fixture(scope="module")
def matrix_results(tmp_path_factory: pytest.TempPathFactory, closed_spec: Path,
                   fake_backend: str) -> dict[str, tuple[Row, list[str]]]:
    """Every row run once: its id → (row, problems)."""
    tmp = tmp_path_factory.mktemp("hostile")
    found = {}
    for row in matrix(tmp):
        result = _invoke(row, closed_spec, fake_backend, tmp)
        found[row.id] = (row, _problems(row, result))
    return found


def test_the_matrix_covers_every_command_the_help_lists() -> None:
    """The commands walked are those `--help` prints, at the top and in each group."""
    def listed(*path: str) -> set[str]:
        text = CliRunner().invoke(main, [*path, "--help"]).stdout
        return set(re.findall(r"^  (\S+)  ", text.split("Commands:")[1], re.MULTILINE))

    walked = command_paths(main)
    assert {p for p in walked if " " not in p} == listed()
    assert {p.split()[1] for p in walked if p.startswith("alerts ") and p.count(" ") == 1} == listed("alerts")
    assert {p.split()[2] for p in walked if p.startswith("alerts silence ")} == listed("alerts", "silence")
    assert set(OPERATOR) | set(NO_BACKEND) == set(walked)


def test_the_matrix_is_large(matrix_results: dict[str, tuple[Row, list[str]]]) -> None:
    """Every command, and over three hundred rows in all."""
    assert {row.command for row, _ in matrix_results.values()} == set(OPERATOR) | set(NO_BACKEND)
    assert len(matrix_results) > 300


def test_no_command_of_the_operator_cli_breaks_a_promise(
        matrix_results: dict[str, tuple[Row, list[str]]]) -> None:
    """Every row of every command outside spec loading/rendering keeps every promise."""
    broken = {key: problems for key, (row, problems) in matrix_results.items()
              if problems and row.command not in SPEC_OWNED}
    assert broken == {}


def test_spec_loading_render_validate_and_up_keep_the_promises(
        matrix_results: dict[str, tuple[Row, list[str]]]) -> None:
    """The rows of `render`, `validate` and `up`: spec loading and rendering keep them too."""
    broken = {key: problems for key, (row, problems) in matrix_results.items()
              if problems and row.command in SPEC_OWNED}
    assert broken == {}


# --- the real entry point, the queries sent, the helpers ----------------------------------


def test_the_entry_point_prints_one_line_for_a_broken_url() -> None:
    result = run_cli("logs", "--victorialogs-url", "http://[::1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: Invalid value for '--victorialogs-url': 'http://[::1': not a URL "
                                    "(Invalid IPv6 URL) (see `")
    assert result.stderr.endswith(" logs --help`)\n") and result.stderr.count("\n") == 1


def test_the_entry_point_masks_a_password_and_refuses_bytes_that_are_not_utf8() -> None:
    result = run_cli("logs", "--victorialogs-url", f"http://admin:{PASSWORD}@127.0.0.1:9")
    assert result.returncode == 3
    assert result.stderr.startswith("error: VictoriaLogs at http://admin:***@127.0.0.1:9 is not answering")
    result = run_cli("logs", "--search", NOT_UTF8, "--victorialogs-url", CLOSED)
    assert result.returncode == 2 and "is not valid UTF-8" in result.stderr


def test_an_html_error_page_is_its_title(fake_backend: str) -> None:
    result = run_cli("logs", "--victorialogs-url", f"{fake_backend}/html-502")
    assert result.returncode == 1
    assert result.stderr == f"error: VictoriaLogs at {fake_backend}/html-502 answered HTTP 502: 502 Bad Gateway\n"


def test_a_query_victorialogs_refuses_is_one_line_and_exit_2(fake_backend: str, tmp_path: Path) -> None:
    for command in (["logs"], ["export", "logs", "-o", str(tmp_path / "logs.json")]):
        result = run_cli(*command, "--victorialogs-url", f"{fake_backend}/bad-query")
        assert result.returncode == 2, result.stderr
        assert result.stderr == (f"error: VictoriaLogs at {fake_backend}/bad-query answered HTTP 400: cannot parse "
                                 '`query` arg [foo:(]: unexpected end of query after "("; expecting a filter\n')
    assert list(tmp_path.iterdir()) == []


def _sent(command: list[str], fake: str, env: dict[str, str] | None = None) -> list[dict[str, list[str]]]:
    """The query parameters of every request ``command`` sent to the fake backend's ``/ok``."""
    SEEN.clear()
    result = CliRunner().invoke(main, [*command, "--prometheus-url", f"{fake}/ok", "--victorialogs-url", f"{fake}/ok"],
                                env=env)
    assert result.exit_code == 0, result.stderr
    return [urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) for _, path, _ in SEEN]


def test_a_job_that_tries_to_end_the_selector_stays_inside_its_string(fake_backend: str) -> None:
    job = 'x"} or vector(1) # \\ \n'
    queries = [q["query"][0] for q in _sent(["metrics", "--metric-name", "up", "--component", job], fake_backend)
               if "query" in q]
    assert queries and all('{job="x\\"} or vector(1) # \\\\ \\n"}' in q for q in queries), queries


def test_search_text_that_tries_to_end_the_filter_stays_inside_its_string(fake_backend: str) -> None:
    (sent,) = _sent(["logs", "--search", 'a"* or "b\n', "--correlation-id", '"} | delete _msg',
                     "--component", 'x") or (*'], fake_backend)
    assert sent["query"] == [(
        '{service.name=~".+"} *"a\\"* or \\"b\\n"*'
        ' (service.name:="x\\") or (*" or scope.name:="x\\") or (*" or component:="x\\") or (*")'
        ' correlation_id:="\\"} | delete _msg"')]


def _tenants() -> list[tuple[str | None, str | None]]:
    return [(h.get("accountid"), h.get("projectid")) for _, _, h in SEEN]


def test_every_log_request_names_its_tenant(fake_backend: str, tmp_path: Path) -> None:
    for command in (["logs"], ["export", "logs", "-o", str(tmp_path / "logs.json")]):
        _sent(command, fake_backend)
        assert _tenants() == [("0", "0")]
    spec = load_stack()
    spec["tenants"]["ops"] = {"description": "Operations", "account_id": 7, "project_id": 3,
                              "token_file": "ops_token", "ports": {"otlp_grpc": 4327, "otlp_http": 4328}}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {"THEODORE_OBS_SPEC": str(tmp_path / "stack.yaml")}
    _sent(["export", "logs", "--tenant", "ops", "-o", str(tmp_path / "x")], fake_backend, env)
    assert _tenants() == [("7", "3")]
    assert json.loads((tmp_path / "x").read_text())["tenant"] == "ops"
    # `logs --tenant` of a tenant with a token asks vmauth with it, which sets the tenant itself.
    token = tmp_path / "ops_token"
    token.write_text("ops-" + "t" * 28 + "\n")
    _sent(["logs", "--tenant", "ops", "--token-file", str(token), "--vmauth-url", f"{fake_backend}/ok"],
          fake_backend, env)
    assert _tenants() == [(None, None)]
    assert [h.get("authorization") for _, _, h in SEEN] == ["Bearer ops-" + "t" * 28]
    unknown = CliRunner().invoke(main, ["logs", "--tenant", "nope", "--victorialogs-url", f"{fake_backend}/ok"],
                                 env=env)
    assert unknown.exit_code == 2
    assert unknown.stderr == "error: --tenant: no tenant 'nope' in the spec (known: ops, theodore)\n"


def test_credentials_in_a_url_are_sent_as_basic_auth_not_in_the_path(fake_backend: str) -> None:
    SEEN.clear()
    url = fake_backend.replace("http://", f"http://admin:{PASSWORD}@") + "/ok"
    result = CliRunner().invoke(main, ["logs", "--victorialogs-url", url])
    assert result.exit_code == 0, result.stderr
    (method, path, headers) = SEEN[0]
    assert method == "GET" and PASSWORD not in path
    assert headers["authorization"] == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def test_ids_reach_no_path_unchecked() -> None:
    with pytest.raises(ValueError, match="16 or 32 hex digits"):
        Jaeger(CLOSED).trace("../../api/services")
    with pytest.raises(ValueError, match="expected a UUID"):
        Alertmanager(CLOSED).expire_silence("../../status")
    assert trace_id("0af7651916cd43dd8448eb211c80319c") and trace_id("8448eb211c80319c")
    assert path_segment("../a b/?#") == "..%2Fa%20b%2F%3F%23"


def test_urls_are_masked_and_checked() -> None:
    assert mask_url("https://u:p@h:1/x?y=1") == "https://u:***@h:1/x?y=1"
    assert mask_url("http://u@h/") == "http://u@h/" and mask_url("http://h/a@b") == "http://h/a@b"
    for bad in ["http://[::1", "ftp://h", "http://", "http://h:99999", "http://h/a b", "h:80"]:
        with pytest.raises(BadURL):
            check_url(bad)


def test_error_bodies_are_summarised_in_one_line() -> None:
    assert summarise(HTML, "text/html") == "502 Bad Gateway"
    assert summarise(b"<html><body><h1>Oops</h1>\n<p>went wrong</p></body></html>") == "Oops went wrong"
    assert summarise(b'{"status": "error", "error": "parse error"}') == "parse error"
    assert summarise(b"x" * 5000) == "x" * 199 + "…"
    assert label_value('a\\b"c\nd') == '"a\\\\b\\"c\\nd"' == logsql_string('a\\b"c\nd')
