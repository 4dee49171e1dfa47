"""Provision the benchmark's subscriber: a plan whose limits never interfere, and an API key.

Run in the server's environment (`python bench/provision.py`); prints one JSON line
`{"username", "plan", "api_key", "api_keys", "password"}` (bench/locustfile.py reads it through
MLAPI_BENCH_CREDENTIALS). Idempotent for the plan and user; issues new keys each run.
The subscription and the key go through the operator commands of the contract
(`manage.py subscribe`, `manage.py issue_key`), so the bench exercises them as an operator would.

Environment: BENCH_USERNAME (default "bench"), BENCH_PLAN (default "bench"), BENCH_KEYS (how
many keys, default 1), BENCH_PASSWORD (sets the user's password so it can get a JWT for the
management plane; default: no usable password).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
KEY_PATTERN = re.compile(r"mlk_[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")

# Large enough that a whole benchmark (millions of predictions) never meets a limit.
BENCH_PLAN = {
    "description": "Benchmark plan: limits that never interfere with a load test.",
    "rate": 1_000_000.0,
    "burst": 1_000_000_000,
    "quota": 10**15,
    "quota_period": "month",
    "max_instances": 10_000,
    "max_job_rows": 10_000_000,
    "all_models": True,
    "requires_approval": False,
    "is_public": False,
}


def provision(username: str, plan_name: str, *, keys: int = 1, password: str = "") -> dict:
    """Create or refresh the plan and the user, subscribe it, issue `keys` API keys."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from keys.models import Plan

    Plan.objects.update_or_create(name=plan_name, defaults=BENCH_PLAN)
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@bench.invalid"}
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    call_command("subscribe", username, plan_name, stdout=io.StringIO())
    api_keys = []
    for number in range(1, keys + 1):
        out = io.StringIO()
        call_command("issue_key", username, "--name", f"bench-{number}", stdout=out)
        match = KEY_PATTERN.search(out.getvalue())
        if not match:
            raise SystemExit(f"issue_key printed no key: {out.getvalue()!r}")
        api_keys.append(match.group(0))
    return {
        "username": username,
        "plan": plan_name,
        "api_key": api_keys[0],
        "api_keys": api_keys,
        "password": password or None,
    }


def main() -> None:
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    import django

    django.setup()
    result = provision(
        os.environ.get("BENCH_USERNAME", "bench"),
        os.environ.get("BENCH_PLAN", "bench"),
        keys=max(1, int(os.environ.get("BENCH_KEYS", "1"))),
        password=os.environ.get("BENCH_PASSWORD", ""),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
