"""Provision the benchmark's subscriber: a plan whose limits never interfere, and an API key.

Run in the server's environment (`python bench/provision.py`); prints one JSON line
`{"username", "plan", "api_key"}`. Idempotent for the plan and user; issues a new key each run.
The subscription and the key go through the operator commands of the contract
(`manage.py subscribe`, `manage.py issue_key`), so the bench exercises them as an operator would.

Environment: BENCH_USERNAME (default "bench"), BENCH_PLAN (default "bench").
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


def provision(username: str, plan_name: str) -> dict:
    """Create or refresh the plan and the user, subscribe it, issue a key."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from keys.models import Plan

    Plan.objects.update_or_create(name=plan_name, defaults=BENCH_PLAN)
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"email": f"{username}@bench.invalid"}
    )
    if created:
        user.set_unusable_password()
        user.save()
    call_command("subscribe", username, plan_name, stdout=io.StringIO())
    out = io.StringIO()
    call_command("issue_key", username, "--name", "bench", stdout=out)
    match = KEY_PATTERN.search(out.getvalue())
    if not match:
        raise SystemExit(f"issue_key printed no key: {out.getvalue()!r}")
    return {"username": username, "plan": plan_name, "api_key": match.group(0)}


def main() -> None:
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    import django

    django.setup()
    result = provision(
        os.environ.get("BENCH_USERNAME", "bench"), os.environ.get("BENCH_PLAN", "bench")
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
