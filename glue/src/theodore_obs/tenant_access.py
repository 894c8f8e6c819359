"""Reading per tenant: the bearer tokens vmauth checks, and the native runtime's copies of them.

vmauth (``vmauth/auth.yml``) is the log stores' read gateway: one user per tenant with a
``token_file`` and one for the auditors (``audit.reader_token_file``), each reaching only the
read API (``/select/logsql/…``) of its store, in its tenant's space. The rendered file names each
token as a ``%{ENV}`` placeholder, the token file's name upper-cased (``team_a_token`` →
``%{TEAM_A_TOKEN}``), which vmauth fills from its environment: never a token itself.

Natively each token is a file in the state's secrets directory, where the collector's
``bearertokenauth`` reads the writers' tokens too: taken from that environment variable when it
is set, else generated once (``secrets.token_urlsafe(32)``) and kept across restarts. The
native vmauth reads a private copy of its config with the tokens filled in
(:func:`filled_config`), so no token goes through supervisord's config or a command line. The
native runtime (``native.py``) writes both; this module only decides what they hold.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

import yaml

from .tenants import token_files

__all__ = ["TOKEN_TEXT", "VMAUTH_CONFIG", "TokenError", "filled_config", "native_tokens", "read_token",
           "token_env"]

TOKEN_TEXT = re.compile(r"[A-Za-z0-9._~+/=-]{16,4096}")
"""What a token may be: 16 or more URL-safe or base64 characters, so it stays one word in a
header, a YAML scalar and a file line wherever it is filled in."""

VMAUTH_CONFIG = "vmauth-auth.yml"
"""The native vmauth's config (tokens filled in), in the state's secrets directory, mode 0600."""

PLACEHOLDER = re.compile(r"%\{([^}]+)\}")
"""A ``%{ENV}`` placeholder of the rendered vmauth config."""

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How an existing token file is opened: never through a symlink, never blocking on a FIFO."""


class TokenError(ValueError):
    """A token file that cannot be used: missing, unreadable, empty or not one token."""


def token_env(spec: dict[str, Any]) -> dict[str, str]:
    """Environment variable → token file name, for every token vmauth checks: the tenants' with a
    ``token_file`` and the auditors' (none for a partial spec without ``audit``)."""
    if "audit" not in spec:
        return {}
    return {file.upper(): file for file in token_files(spec)}


def checked_token(text: str, where: str) -> str:
    """``text`` without surrounding blanks if it is one token (:data:`TOKEN_TEXT`), else
    :class:`TokenError` naming ``where`` (never quoting the text)."""
    token = text.strip()
    if not token:
        raise TokenError(f"{where}: empty")
    if not TOKEN_TEXT.fullmatch(token):
        raise TokenError(f"{where}: expected one token of 16 or more letters, digits or ._~+/=- "
                         "(no blanks or line breaks)")
    return token


def read_token(path: Path) -> str:
    """The token in the file ``path``; :class:`TokenError` saying what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise TokenError(f"{path}: unreadable ({why})") from None
    return checked_token(text, str(path))


def _existing(dir_fd: int, name: str, where: Path) -> str | None:
    """The text of the secret ``name`` in ``dir_fd`` if it is there (a regular file), else None."""
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenError(f"{where}: refusing to read the token ({exc.strerror}; a symlink?)") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TokenError(f"{where}: refusing to read the token (not a regular file)")
        return handle.read()


def native_tokens(spec: dict[str, Any], dir_fd: int, secrets_dir: Path,
                  environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """Token file name → token for the native runtime: its environment variable's value, else
    the file's current token, else a new one. Two tokens alike are refused: a token names one
    tenant (or the auditors)."""
    found: dict[str, str] = {}
    holders: dict[str, str] = {}
    for env_var, name in token_env(spec).items():
        where = secrets_dir / name
        if env_var in environ:
            token = checked_token(environ[env_var], f"${env_var}")
        else:
            text = _existing(dir_fd, name, where)
            token = secrets.token_urlsafe(32) if text is None else checked_token(
                text, f"{where} (set ${env_var} to replace it)")
        if token in holders:
            raise TokenError(f"{holders[token]} and {env_var} hold the same token: each tenant and the "
                             "auditors need their own")
        holders[token] = env_var
        found[name] = token
    return found


def filled_config(rendered: str, tokens: dict[str, str]) -> str:
    """The rendered vmauth config with each user's ``%{ENV}`` placeholder replaced by the token
    (``tokens``: environment variable → token), written back as YAML."""
    config = yaml.safe_load(rendered)
    for user in config["users"]:
        placeholder = PLACEHOLDER.fullmatch(user["bearer_token"])
        if placeholder is None or placeholder.group(1) not in tokens:
            raise TokenError(f"vmauth user {user.get('name')!r}: no token for {user['bearer_token']!r}")
        user["bearer_token"] = tokens[placeholder.group(1)]
    return "# The native vmauth's users, tokens filled in (theodore-obs up). Private: mode 0600.\n" + \
        yaml.safe_dump(config, sort_keys=False)
