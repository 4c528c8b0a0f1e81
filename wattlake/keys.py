"""Keys for signatures and pseudonymous references, and keeping secrets out of text.

A key named ``insurer-acme`` is read from ``$WATTLAKE_KEY_INSURER_ACME`` (hex or any text); when
that is unset, from ``<key dir>/insurer-acme.key``, which is created with 32 random bytes and mode
0600 on first use (key dir: ``$WATTLAKE_KEY_DIR``, default ``~/.config/wattlake/keys``). Keys are
returned as bytes and never logged, printed or written into the lake.

:func:`redact` replaces every secret-looking environment value in a text (S3 keys, HMAC keys,
passwords) with ``***``; log handlers and exception messages that may quote configuration go
through it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _secrets
from pathlib import Path

#: environment variables whose values are secrets (matched on the name, case-insensitive)
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|ACCESS_KEY|SESSION_KEY|API_KEY|PRIVATE|"
                         r"^WATTLAKE_KEY_|DSN|DATABASE_URL)", re.IGNORECASE)


def key_dir() -> Path:
    return Path(os.environ.get("WATTLAKE_KEY_DIR") or Path.home() / ".config" / "wattlake" / "keys")


def _env_name(name: str) -> str:
    return "WATTLAKE_KEY_" + re.sub(r"[^A-Za-z0-9]+", "_", name).upper().strip("_")


def get_key(name: str) -> bytes:
    """The key ``name`` (environment first, else a per-installation key file created on first use)."""
    value = os.environ.get(_env_name(name))
    if value:
        return value.encode()
    path = key_dir() / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_hex(32))
    return path.read_text().strip().encode()


def sign(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` as hex."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(key: bytes, message: bytes, signature: str) -> bool:
    """Constant-time check of an HMAC-SHA256 hex signature."""
    return hmac.compare_digest(sign(key, message), signature)


def pseudonym(value: str, purpose: str = "audit") -> str:
    """A keyed, non-reversible reference to an identifier (e.g. a subject id in the audit log).

    The same value gives the same reference, so an operator holding the key can find a request
    again; without the key the reference reveals nothing, and it never contains the value.
    """
    return "ref_" + sign(get_key(purpose), value.encode())[:24]


class KeyMismatch(RuntimeError):
    """The pseudonym key in use is not the one the lake's stored pseudonyms were made with."""


def key_check(purpose: str = "audit") -> str:
    """A value that identifies the ``purpose`` key without revealing it (its pseudonym of a constant).
    Every audit row records it; :func:`require_key` compares it before stored pseudonyms are used."""
    return pseudonym("wattlake:key-check", purpose)


def require_key(recorded: str | None, purpose: str = "audit") -> None:
    """Raise :class:`KeyMismatch` when ``recorded`` (a :func:`key_check` stored in the lake) is not
    the current key's. A lost key file is silently replaced by a new key; with it every stored
    pseudonym stops matching, and erased subjects would come back with the next registry snapshot."""
    if recorded and recorded != key_check(purpose):
        where = _env_name(purpose) if os.environ.get(_env_name(purpose)) else str(key_dir() / f"{purpose}.key")
        raise KeyMismatch(
            f"the {purpose!r} key ({where}) is not the key this lake's audit and erasures were written with: "
            f"restore the original key (WATTLAKE_KEY_DIR or {_env_name(purpose)}); a key file created since "
            "must be replaced, not kept")


def secret_values(env: dict[str, str] | None = None, min_len: int = 6) -> list[str]:
    """Values of secret-looking environment variables (longest first)."""
    env = os.environ if env is None else env
    vals = {v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= min_len}
    return sorted(vals, key=len, reverse=True)


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """``text`` with every secret environment value replaced by ``***``."""
    for value in secret_values(env):
        text = text.replace(value, "***")
    return text


_base_factory = None


def install_log_redaction() -> None:
    """Redact secrets from EVERY Python log record, whichever library logs it (idempotent).

    A record factory renders the message (and any traceback) when the record is created and
    replaces each secret environment value by ``***`` (:func:`redact`), so no handler, Dagster
    event log or captured output can see the value. Example: botocore at DEBUG logs the
    ``x-amz-security-token`` header, i.e. ``AWS_SESSION_TOKEN``.
    """
    global _base_factory
    import logging

    if _base_factory is not None:
        return
    _base_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = _base_factory(*args, **kwargs)
        if not secret_values():
            return record
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep the record as the library made it
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
