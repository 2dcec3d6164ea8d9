"""The one secret behind every token Carillon hands out: unsubscribe links and dashboard
sessions are HMAC-SHA256 signatures keyed by `CARILLON_SECRET_KEY`.

Production roles refuse to start without it (a key derived from anything an attacker can read,
such as the database URL, would let anyone unsubscribe anyone). The embedded default on a
SQLite file makes a random key on first start and keeps it beside the database, readable by
its owner only, so `carillon serve` needs no setting and its links survive a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url

from app.settings import Settings

MISSING = (
    "CARILLON_SECRET_KEY is not set: it signs unsubscribe links and dashboard sessions, and "
    "every api, worker and scheduler process needs the same one; make one with "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


class MissingSecretKey(RuntimeError):
    """No CARILLON_SECRET_KEY, and no SQLite file to keep a generated one beside."""


def key_file(settings: Settings) -> Path | None:
    """Where the embedded default keeps its generated key: `<database file>.secret`."""
    if not settings.is_sqlite:
        return None
    database = make_url(settings.database_url).database
    if not database or database == ":memory:":
        return None
    path = Path(database)
    return path.with_name(f"{path.name}.secret")


@lru_cache
def _kept_key(path: Path) -> bytes:
    """Read the key beside the database, or create it. Two processes starting at once agree:
    the key is written to a temporary file, then hard-linked into place, which fails if the
    other got there first; the loser reads the winner's key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp makes it 0600
                handle.write(secrets.token_urlsafe(32) + "\n")
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key) < 16:
        raise MissingSecretKey(f"{path} holds no usable key: delete it to make a new one")
    return key.encode()


def secret_key(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    path = key_file(settings)
    if path is None:
        raise MissingSecretKey(MISSING)
    return _kept_key(path.resolve())


def sign(settings: Settings, purpose: bytes, payload: bytes) -> bytes:
    """HMAC-SHA256 of `payload`; `purpose` keeps a token made for one use from passing as
    another's."""
    return hmac.new(secret_key(settings), purpose + b"\0" + payload, hashlib.sha256).digest()
