"""The local `.env`: written once by `make setup`, read by the settings outside tests.

`make run` used to pass DJANGO_DEBUG=1 on its own command lines only, so the README's
`.venv/bin/python manage.py createsuperuser` failed in a plain shell (no secret key). Now
`make setup` writes `.env` (gitignored) with the development defaults and a generated secret
key, and `mlapi/settings.py` loads it; variables already in the process environment win, so
production (which sets its own) is unchanged. `MLAPI_ENV_FILE` names another file.

Format: `NAME=value` lines, `#` comments, optional matching quotes around the value, nothing
else (no interpolation): the subset of dotenv that this project writes, so no dependency.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / ".env"

TEMPLATE = """\
# Written by `make setup` for local development (gitignored; see .env.example for every
# variable). mlapi's settings read this file; variables set in the environment win.
DJANGO_DEBUG=1
DJANGO_SECRET_KEY={secret_key}
"""


def env_file_path() -> Path:
    return Path(os.environ.get("MLAPI_ENV_FILE") or DEFAULT_PATH)


def parse_env_file(text: str) -> dict[str, str]:
    """`NAME=value` pairs of a dotenv-style text (comments, blanks and `export ` ignored)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def load_env_file(path: Path | None = None) -> dict[str, str]:
    """Put the file's variables into os.environ where not already set; returns those set."""
    path = path or env_file_path()
    if not path.is_file():
        return {}
    loaded = {}
    for name, value in parse_env_file(path.read_text()).items():
        if name not in os.environ:
            os.environ[name] = loaded[name] = value
    return loaded


def write_env_file(path: Path) -> bool:
    """Write the development `.env` unless it exists (a kept file keeps its secret key)."""
    if path.exists():
        return False
    path.write_text(TEMPLATE.format(secret_key=secrets.token_urlsafe(50)))
    path.chmod(0o600)
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else env_file_path()
    if write_env_file(target):
        print(f"wrote {target} (development settings and a new secret key)")
