"""The serving control token: who may swap or roll back the served model.

A random token in `$NIGHTSHIFT_HOME/serve.token`, readable by its owner only. It is made at
`nightshift service install` or on first need; the serving process reads it for every control
request and clients (the CLI, the Dagster asset) send it as `Authorization: Bearer <token>`.
A web page can neither read the file nor add that header without a CORS preflight, which the
endpoint refuses, so no page open on the machine can change the served model.

Clients send the token only to a process that proves it holds it: the status reply carries
`status_proof` of the client's random nonce, bound to the server's pid and port, so nothing
else squatting on the port gets the token or has a client signal the pid it names.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from pipeline.paths import nightshift_home

TOKEN_FILE = "serve.token"
TOKEN_BYTES = 32  # 256 bits of randomness; secrets.token_urlsafe makes 43 characters of it
MIN_CHARS = 32  # anything shorter was not made here: refuse it rather than trust a weak token
NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class TokenError(RuntimeError):
    """The token file cannot be used; the message names the file and the fix."""


def token_path() -> Path:
    return nightshift_home() / TOKEN_FILE


def ensure_token(path: Path | None = None) -> str:
    """The token, made first if there is none; TokenError if the file is unsafe or damaged."""
    path = path or token_path()
    try:
        return read_token(path)
    except FileNotFoundError:
        pass
    _create(path, secrets.token_urlsafe(TOKEN_BYTES))
    return read_token(path)  # whoever won a race to create it, everyone uses the same token


def read_token(path: Path | None = None) -> str:
    """The token in `path`; FileNotFoundError if there is none, TokenError if it is unsafe."""
    path = path or token_path()
    fix = f"delete {path} and run `nightshift service install` to make a new one"
    # O_NOFOLLOW: a symlink planted in its place could point at a file someone else controls.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise TokenError(f"cannot open the serving token {path} ({exc.strerror}); {fix}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"the serving token {path} is not a regular file; {fix}")
        if info.st_uid != os.getuid():
            raise TokenError(f"the serving token {path} belongs to another user; {fix}")
        if info.st_mode & 0o077:
            mode = oct(stat.S_IMODE(info.st_mode))
            raise TokenError(
                f"the serving token {path} can be read by others (mode {mode}); "
                f"run `chmod 600 {path}`, or {fix}"
            )
        raw = os.read(fd, 1024)
    finally:
        os.close(fd)
    token = raw.decode("ascii", errors="replace").strip()
    if len(token) < MIN_CHARS or not all(c.isalnum() or c in "-_" for c in token):
        raise TokenError(f"the serving token {path} is damaged; {fix}")
    return token


def token_matches(given: str | None, path: Path | None = None) -> bool:
    """Whether `given` is the token, compared in constant time."""
    if not given:
        return False
    expected = ensure_token(path).encode()
    return hmac.compare_digest(given.encode("utf-8", errors="surrogateescape"), expected)


def status_proof(token: str, nonce: str, pid: object, port: object) -> str:
    """HMAC-SHA256 of the client's nonce and the server's pid and port under the token: proof
    that the process answering on `port` holds the token, and that `pid` is its own (a
    squatter relaying another serving process's status cannot keep the proof valid)."""
    message = f"nightshift-status:{nonce}:{pid}:{port}".encode("utf-8", "surrogateescape")
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def _create(path: Path, token: str) -> None:
    """Write the token with mode 0600 from the first byte, then link it into place.

    os.link never replaces an existing file, so two processes making it at once agree on one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; this states the mode outright
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links: rename, unless someone was first
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
