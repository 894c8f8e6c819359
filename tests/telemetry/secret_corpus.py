"""A corpus of real-world secret shapes and of harmless look-alikes, for the redaction tests.

Secrets are generated (deterministically) from each format, several per format, so a rule
that only matches the one example it was written for fails here.

- ``SECRET_TEXTS``: ``(text, secret)``; ``text`` is how the secret shows up in a log line or
  an exception, ``secret`` the part that must never reach the output.
- ``SECRET_KEYS``: ``(key, secret)``: a value of no particular shape, secret by its key name.
- ``HARMLESS_TEXTS`` / ``HARMLESS_KEYS``: look-alikes that must come out verbatim.
"""

from __future__ import annotations

import base64
import random
import string

_rng = random.Random(20240601)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def _pick(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def alnum(n: int) -> str:
    """``n`` random letters and digits, with at least one of each kind."""
    return _rng.choice(string.ascii_uppercase) + _rng.choice(string.digits) + _pick(
        string.ascii_lowercase, 1) + _pick(ALNUM, n - 3)


def hexits(n: int) -> str:
    return _pick("0123456789abcdef", n)


def luhn_complete(prefix: str, length: int) -> str:
    """A card number of ``length`` digits starting with ``prefix`` whose check digit is right."""
    body = prefix + _pick(string.digits, length - len(prefix) - 1)
    total = 0
    for i, char in enumerate(reversed(body)):
        d = int(char) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _grouped(number: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, start = [], 0
    for size in sizes:
        parts.append(number[start:start + size])
        start += size
    return sep.join(parts)


def _vendor_tokens() -> list[tuple[str, str]]:
    formats = [
        lambda: "ghp_" + alnum(36), lambda: "gho_" + alnum(36), lambda: "ghs_" + alnum(36),
        lambda: "github_pat_" + alnum(22) + "_" + alnum(59), lambda: "glpat-" + alnum(20),
        lambda: f"xoxb-{_pick(string.digits, 12)}-{_pick(string.digits, 13)}-{alnum(24)}",
        lambda: f"xoxp-{_pick(string.digits, 11)}-{_pick(string.digits, 12)}-{alnum(32)}",
        lambda: "sk_live_" + alnum(24), lambda: "rk_live_" + alnum(24), lambda: "whsec_" + alnum(32),
        lambda: "sk-proj-" + alnum(48) + "_" + alnum(20), lambda: "sk-" + alnum(48),
        lambda: "sk-ant-api03-" + alnum(60) + "-" + alnum(20) + "AA", lambda: "AIza" + alnum(35),
        lambda: "AKIA" + _pick(string.ascii_uppercase + string.digits, 16),
        lambda: "ASIA" + _pick(string.ascii_uppercase + string.digits, 16),
        lambda: "npm_" + alnum(36), lambda: "pypi-AgEIcHlwaS5vcmc" + alnum(70),
        lambda: f"SG.{alnum(22)}.{alnum(43)}", lambda: "SK" + hexits(32),
        lambda: "hf_" + alnum(34), lambda: "hvs." + alnum(90), lambda: "dop_v1_" + hexits(64),
        lambda: "glsa_" + alnum(32) + "_" + hexits(8), lambda: "GOCSPX-" + alnum(28),
        lambda: hexits(32) + "-us14", lambda: "shpat_" + hexits(32), lambda: "dapi" + hexits(32),
    ]
    cases = []
    for make in formats:
        for template in ("calling upstream with {}", "({})", "key='{}'"):
            token = make()
            cases.append((template.format(token), token))
    return cases


def _jwts() -> list[tuple[str, str]]:
    cases = []
    for _ in range(3):
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        token = f"{header}.{alnum(40)}.{alnum(43)}"
        cases.append((f"id token {token} expired", token))
    return cases


def _pem_blocks() -> list[tuple[str, str]]:
    cases = []
    for kind in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY",
                 "ENCRYPTED PRIVATE KEY", "PGP PRIVATE KEY BLOCK"):
        line = _pick(B64, 64)
        cases.append((f"loaded -----BEGIN {kind}-----\n{line}\n{_pick(B64, 40)}==\n-----END {kind}-----", line))
    line = _pick(B64, 64)
    cases.append((f"truncated -----BEGIN RSA PRIVATE KEY-----\n{line}", line))
    return cases


def _connection_strings() -> list[tuple[str, str]]:
    cases = []
    for template in ("postgres://app:{}@db.internal:5432/app", "postgresql://user:{}@10.0.0.5/db",
                     "mysql://root:{}@mysql:3306/shop", "redis://:{}@cache:6379/0",
                     "rediss://default:{}@redis.example.net:6380", "mongodb://admin:{}@mongo:27017",
                     "mongodb+srv://svc:{}@cluster0.ab1cd.mongodb.net/db?retryWrites=true",
                     "amqp://guest:{}@rabbit:5672/vhost", "amqps://worker:{}@mq.example.com",
                     "mssql://sa:{}@sql:1433/master", "https://deploy:{}@git.example.com/repo.git",
                     "DATABASE_URL=postgres://u:{}@h/db"):
        password = alnum(14)
        cases.append((f"connecting to {template.format(password)}", password))
    token = alnum(32)
    cases.append((f"cloning https://{token}@github.com/org/repo.git", token))
    return cases


def _headers() -> list[tuple[str, str]]:
    cases = []
    for _ in range(2):
        basic = base64.b64encode(f"svc:{alnum(16)}".encode()).decode()
        cases += [(f"Authorization: Basic {basic}", basic),
                  (f"headers=[('Authorization', 'Basic {basic}')]", basic),
                  (f"Proxy-Authorization: Basic {basic}", basic)]
        for template in ("Authorization: Bearer {}", "Cookie: theme=dark; session={}",
                         "Set-Cookie: sid={}; Path=/; HttpOnly", "X-Api-Key: {}", "x-api-key={}",
                         "{{'Cookie': 'session={}; lang=en'}}", "got header authorization: token {}"):
            token = alnum(24)
            cases.append((template.format(token), token))
    return cases


def _named_values() -> list[tuple[str, str]]:
    cases = []
    for template in ("access_token={}&expires=3600", "client_secret={}", "refresh_token: {}",
                     "password={}", "pwd={}", "db_pass={}", "apikey={}", "api-key: {}",
                     '{{"client_secret": "{}", "scope": "read"}}', "{{'password': '{}'}}",
                     "note=password%3D{}&page=2", "aws_secret_access_key={}",
                     "AWS_SECRET_ACCESS_KEY {}", "Password={};Server=sql", "secret_key = '{}'",
                     "PGPASSWORD={} psql", '\\"password\\": \\"{}\\"', "sessionid={}"):
        secret = alnum(40) if "aws" in template.lower() else alnum(18)
        cases.append((template.format(secret), secret))
    webhook = f"T{alnum(10)}/B{alnum(10)}/{alnum(24)}"
    cases.append((f"posting to https://hooks.slack.com/services/{webhook}", webhook))
    return cases


def _cards() -> list[tuple[str, str]]:
    cases = []
    for prefix, length, sizes in (("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)),
                                  ("22", 16, (4, 4, 4, 4)), ("37", 15, (4, 6, 5)),
                                  ("6011", 16, (4, 4, 4, 4)), ("4", 13, (4, 4, 5)),
                                  ("35", 19, (4, 4, 4, 4, 3))):
        number = luhn_complete(prefix, length)
        for sep in ("", " ", "-"):
            written = _grouped(number, sizes, sep)
            cases.append((f"charged card {written} for 12.50", written))
    return cases


SECRET_TEXTS: list[tuple[str, str]] = [*_vendor_tokens(), *_jwts(), *_pem_blocks(), *_connection_strings(),
                                       *_headers(), *_named_values(), *_cards()]

SECRET_KEY_NAMES = ("pwd", "pass", "passwd", "password", "db_pass", "dbPassword", "apikey", "api-key",
                    "x-api-key", "X-Api-Key", "api_key", "cookie", "Cookie", "set-cookie", "Set-Cookie",
                    "session", "sessionid", "sessionId", "session_id", "private_key", "privateKey",
                    "client_secret", "clientSecret", "access_token", "refresh_token", "authorization",
                    "Authorization", "PGPASSWORD", "MYSQL_PWD", "auth_token", "csrf_token",
                    "aws_secret_access_key", "secret_key", "dsn", "api_key_b64", "X-Auth-Token", "token")
SECRET_KEYS: list[tuple[str, str]] = [(key, "v" + _pick(ALNUM, 15)) for key in SECRET_KEY_NAMES]

HARMLESS_KEY_NAMES = ("primary_key", "cache_key", "key_count", "token_count", "sort_key", "monkey",
                      "author", "partition_key", "public_key", "keyboard", "passenger", "secretary",
                      "input_tokens", "max_tokens", "idempotency_key", "page_token", "auth_method",
                      "routing_key", "keynote", "foreign_key")
HARMLESS_KEYS: list[tuple[str, str]] = [(key, f"{key}-value-42") for key in HARMLESS_KEY_NAMES]

_non_luhn = luhn_complete("4", 16)
_non_luhn = _non_luhn[:-1] + str((int(_non_luhn[-1]) + 1) % 10)

HARMLESS_TEXTS: list[str] = [
    "pod sk-worker-7f9c4d5b8-x2k9p restarted", "deployment sk-api-gateway scaled to 3",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b merged",
    "sha 0123456789abcdef0123456789abcdef01234567", "request 123e4567-e89b-42d3-a456-426614174000 done",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736", "Basic authentication failed for user bob",
    "bearer of bad news", f"order number {_non_luhn} shipped", "timestamp 1718000000123 ms",
    "nanos 1718000000123456789", "call +1 555-123-4567 for support", "released on 2024-06-01 12:00:00",
    "https://example.com/path?q=1&page=2", "postgres://db.internal:5432/app", "redis://cache:6379/0",
    "mail bob@example.com about it", "http://localhost:8080/api/v1/companies",
    "error: connection refused", "took 1234 ms", "the token count is 42", "token_count=42",
    "key_count=3", "cache_key=user:42", "primary_key=17", "sort_key=created_at", "author=bob",
    "monkey=banana", "AKIA is how AWS key ids start", "ghp_short", "version 1.2.3-beta.4",
    "password reset email sent to user 42", "passwords must have 12 characters", "session started",
    "cookie policy accepted", "x-request-id: abc123", "Content-Type: application/json",
    "image sha256:" + "ab" * 32, "rows 1-20 of 400", "GET /search?q=50%3D50&page=2 HTTP/1.1",
    "monkey typed on the keyboard", "skeleton mode on", "Projects/MyApp2/src/main/java/com/Example",
    "sk-learn 1.5 installed", "tokens=5 in skeleton mode", "SKU 12345678 restocked",
    "price 4111 EUR", "room 3 of 12 booked", "keynote by the author at 9:30", "bearer tokens rotate daily",
    "the secretary filed it", "page_token=next", "public_key=ssh-ed25519",
]

SECRET_CASES = len(SECRET_TEXTS) + len(SECRET_KEYS)
HARMLESS_CASES = len(HARMLESS_TEXTS) + len(HARMLESS_KEYS)
