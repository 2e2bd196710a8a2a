"""Connection passwords at rest: Fernet with a key from the environment, Secrets Manager, or a local file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from cryptography.fernet import Fernet
from moto import mock_aws
from sqlalchemy import select

from explorer_jobs.connections import service
from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.errors import ConfigurationError
from explorer_jobs.settings import Settings
from explorer_jobs.store.crypto import KEY_FILE_NAME, decrypt_password, encrypt_password
from explorer_jobs.store.engine import get_engine
from explorer_jobs.store.tables import connections
from tests.support.databases import apply_settings


def test_round_trip_with_the_configured_key(isolated_store: Settings) -> None:
    token = encrypt_password("s3cret pass")
    assert "s3cret" not in token
    assert decrypt_password(token) == "s3cret pass"
    assert isolated_store.ENCRYPTION_KEY is not None
    assert Fernet(isolated_store.ENCRYPTION_KEY.get_secret_value()).decrypt(token.encode()) == b"s3cret pass"


def test_key_rotation_new_key_first_old_key_still_reads(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = isolated_store.ENCRYPTION_KEY.get_secret_value() if isolated_store.ENCRYPTION_KEY else ""
    token = encrypt_password("before rotation")
    new = Fernet.generate_key().decode()
    apply_settings(monkeypatch, ENCRYPTION_KEY=f"{new},{old}")
    assert decrypt_password(token) == "before rotation"
    assert Fernet(new).decrypt(encrypt_password("after").encode()) == b"after"


def test_a_changed_key_is_a_configuration_error(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = encrypt_password("pw")
    apply_settings(monkeypatch, ENCRYPTION_KEY=Fernet.generate_key().decode())
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        decrypt_password(token)


def test_a_malformed_key_is_a_configuration_error(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_settings(monkeypatch, ENCRYPTION_KEY="not-a-fernet-key")
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        encrypt_password("pw")


def test_local_mode_generates_a_private_key_file_once(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    settings = apply_settings(monkeypatch)
    token = encrypt_password("dev password")
    key_file = settings.EXPLORER_JOBS_HOME / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Fernet(key_file.read_bytes().strip()).decrypt(token.encode()) == b"dev password"
    before = key_file.read_bytes()
    assert decrypt_password(encrypt_password("again")) == "again"
    assert key_file.read_bytes() == before
    assert [p.name for p in settings.EXPLORER_JOBS_HOME.iterdir() if p.name.endswith(".tmp")] == []


def test_no_key_file_is_generated_on_aws(isolated_store: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    settings = apply_settings(monkeypatch, AWS_LAMBDA_FUNCTION_NAME="enqueue")
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEY"):
        encrypt_password("pw")
    assert not (settings.EXPLORER_JOBS_HOME / KEY_FILE_NAME).exists()


def test_key_from_secrets_manager(isolated_store: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    key = Fernet.generate_key().decode()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    try:
        with mock_aws():
            boto3.client("secretsmanager").create_secret(
                Name="explorer-jobs/encryption-key", SecretString=key
            )
            settings = apply_settings(monkeypatch, ENCRYPTION_KEY_SECRET_NAME="explorer-jobs/encryption-key")
            token = encrypt_password("from the vault")
            assert decrypt_password(token) == "from the vault"
        assert Fernet(key).decrypt(token.encode()) == b"from the vault"
        assert not (settings.EXPLORER_JOBS_HOME / KEY_FILE_NAME).exists()
    finally:
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        # powertools keeps its default providers (and their boto clients) per process.
        parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]


def test_the_sqlite_file_never_holds_the_plaintext(isolated_store: Settings, tmp_path: Path) -> None:
    canary = "canary-" + os.urandom(6).hex()
    created = service.create_connection(
        "alice",
        ConnectionCreate(
            name="db", dialect="postgresql", host="127.0.0.1", database="x", username="u", password=canary
        ),
    )
    assert canary not in json.dumps(created.model_dump(mode="json", by_alias=True))
    with get_engine().connect() as conn:
        stored = conn.execute(select(connections.c.password_encrypted)).scalar_one()
    assert stored and canary not in stored
    assert decrypt_password(stored) == canary
    get_engine().dispose()  # flush WAL into the file before reading its bytes
    for path in (tmp_path / "home").glob("explorer_jobs.db*"):
        assert canary.encode() not in path.read_bytes()
