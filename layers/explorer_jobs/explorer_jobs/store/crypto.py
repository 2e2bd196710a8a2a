"""Encryption of connection passwords at rest (Fernet).

The key comes from, in order:

1. `ENCRYPTION_KEY`: one Fernet key, or several separated by commas to rotate (the first encrypts,
   any of them decrypts);
2. AWS Secrets Manager, the secret named by `ENCRYPTION_KEY_SECRET_NAME` (same format), read through
   powertools' parameters utility and cached for a few minutes;
3. locally only, a key file `EXPLORER_JOBS_HOME/encryption.key` (mode 0600), generated on first
   use. This is what lets `explorer-jobs dev` work with no setup: the key lives next to the SQLite
   store whose passwords it protects, so the two are kept or lost together. It is never done on AWS
   (Lambda, ECS): there a generated key would differ per instance and be lost with it, leaving the
   stored passwords unreadable, so a missing key is a `ConfigurationError` instead.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from explorer_jobs.errors import ConfigurationError
from explorer_jobs.settings import get_settings

KEY_FILE_NAME = "encryption.key"
# How long a key read from Secrets Manager is trusted before asking again (rotation delay).
SECRET_MAX_AGE_SECONDS = 300


def encrypt_password(plaintext: str) -> str:
    """The Fernet token of `plaintext`, as text."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt_password(token: str) -> str:
    """The plaintext of a token made by `encrypt_password`; `ConfigurationError` if no key reads it."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise ConfigurationError(
            "a stored password cannot be decrypted with the configured encryption key "
            "(was ENCRYPTION_KEY changed?); save the connection's password again"
        ) from None


def _fernet() -> MultiFernet:
    settings = get_settings()
    if settings.ENCRYPTION_KEY is not None:
        return _fernet_from_text(settings.ENCRYPTION_KEY.get_secret_value())
    if settings.ENCRYPTION_KEY_SECRET_NAME:
        return _fernet_from_text(_read_secret(settings.ENCRYPTION_KEY_SECRET_NAME))
    if _running_on_aws():
        raise ConfigurationError(
            "set ENCRYPTION_KEY or ENCRYPTION_KEY_SECRET_NAME: no key file is made on AWS"
        )
    return _fernet_from_text(_local_key(settings.EXPLORER_JOBS_HOME))


@lru_cache(maxsize=8)
def _fernet_from_text(text: str) -> MultiFernet:
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise ConfigurationError("the encryption key is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ConfigurationError(
            "the encryption key is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def _read_secret(name: str) -> str:
    # Imported here: powertools' parameters utility pulls in boto3, which only this path needs.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS)
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise ConfigurationError(f"secret {name!r} does not hold a Fernet key as text")
    return value


def _running_on_aws() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("AWS_EXECUTION_ENV"))


def _local_key(home: Path) -> str:
    path = home / KEY_FILE_NAME
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        # Write a temporary file, then hard-link it into place: link fails if another process won
        # the race, so every process ends up reading the one complete key.
        tmp = home / f".{KEY_FILE_NAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, Fernet.generate_key())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
