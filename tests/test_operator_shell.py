"""Operator commands work in a plain shell after `make setup` (its `.env`, read by the settings).

A subprocess with nothing but PATH and HOME in its environment (no DJANGO_DEBUG, no secret key)
runs `manage.py` as the README says; without the file it refuses loudly, with it it works.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlapi.envfile import load_env_file, parse_env_file, write_env_file
from tests.servers import BASE_DIR


def manage(tmp_path, *args: str, env_file) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLAPI_ENV_FILE": str(env_file),
        "MLAPI_DATA_DIR": str(tmp_path / "var"),  # a fresh SQLite database, as on a new clone
        "DJANGO_SUPERUSER_USERNAME": "operator",
        "DJANGO_SUPERUSER_EMAIL": "operator@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a-Long-operator-pass-42",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_createsuperuser_works_in_a_plain_shell_once_setup_wrote_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    refused = manage(tmp_path, "check", env_file=env_file)
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY is required" in refused.stderr

    subprocess.run([sys.executable, "mlapi/envfile.py", str(env_file)], cwd=BASE_DIR, check=True)
    assert manage(tmp_path, "migrate", "--noinput", env_file=env_file).returncode == 0
    created = manage(tmp_path, "createsuperuser", "--noinput", env_file=env_file)
    assert created.returncode == 0, created.stderr
    assert "Superuser created successfully" in created.stdout


def test_env_file_is_written_once_with_a_secret_and_never_overrides_the_environment(
    tmp_path, monkeypatch
):
    path = tmp_path / ".env"
    assert write_env_file(path)
    first = path.read_text()
    assert not write_env_file(path) and path.read_text() == first  # the secret key is kept
    values = parse_env_file(first)
    assert values["DJANGO_DEBUG"] == "1" and len(values["DJANGO_SECRET_KEY"]) >= 50
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("DJANGO_DEBUG", "0")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "recorded")  # so that the test's end restores it
    monkeypatch.delenv("DJANGO_SECRET_KEY")
    loaded = load_env_file(path)
    assert os.environ["DJANGO_DEBUG"] == "0" and "DJANGO_DEBUG" not in loaded
    assert loaded["DJANGO_SECRET_KEY"] == values["DJANGO_SECRET_KEY"]


def test_env_file_values_may_be_quoted_and_commented(tmp_path):
    text = "# comment\n\nexport A='x y'\nB=\"z\"\nC=plain=with=equals\nnot a pair\n"
    assert parse_env_file(text) == {"A": "x y", "B": "z", "C": "plain=with=equals"}
