"""Summarise benchmark rounds: medians per case, ratios a/b and a/c, the issue's goals, a table.

Pure functions over the list of per-run figures, so they are easy to test and to re-run on a
saved JSON file (`python bench/report.py bench/results/<file>.json` prints its table again).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

# Issue 7's goals, at 16 connections on the default setup.
GOAL_CONNECTIONS = 16
GOAL_RATIO_BASELINE = 8.0
GOAL_RATIO_FLOOR = 0.5
GOAL_P99_MS = 30.0
GOAL_RSS_MB = 250.0
GOAL_WAL_SYNCS_PER_REQUEST = 0.1  # issue 12, the PostgreSQL + Redis layout


def summarise(runs: list[dict]) -> dict:
    """Medians over rounds for each (connections, case); non-2xx and socket errors are summed."""
    grouped: dict[tuple[int, str], list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["connections"], run["case"]), []).append(run)
    cases: dict[str, dict[str, dict]] = {}
    for (connections, case), items in sorted(grouped.items()):
        cases.setdefault(str(connections), {})[case] = {
            "label": items[0]["label"],
            "rounds": len(items),
            "rps": round(statistics.median(i["rps"] for i in items), 1),
            "p50_ms": round(statistics.median(i["p50_ms"] for i in items), 2),
            "p99_ms": round(statistics.median(i["p99_ms"] for i in items), 2),
            "non_2xx": sum(i["non_2xx"] for i in items),
            "socket_errors": sum(i["socket_errors"] for i in items),
            "other_cpu_cores": round(
                statistics.median(i.get("other_cpu_cores", 0.0) for i in items), 2
            ),
            "rps_each_round": [i["rps"] for i in items],
        }
    ratios = {}
    for connections, by_case in cases.items():
        a = by_case.get("a", {}).get("rps")
        entry = {}
        for other in ("b", "c"):
            value = by_case.get(other, {}).get("rps")
            entry[f"a/{other}"] = round(a / value, 3) if a and value else None
        ratios[connections] = entry
    return {"cases": cases, "ratios": ratios}


def check_goals(summary: dict, rss_mb: float | None, wal: dict | None = None) -> dict:
    """Each goal of issue 7 with the measured value and whether it is met (None: not measured)."""
    at = summary["cases"].get(str(GOAL_CONNECTIONS), {})
    ratios = summary["ratios"].get(str(GOAL_CONNECTIONS), {})
    a = at.get("a")

    def goal(value, ok):
        return {"value": value, "met": None if value is None else ok(value)}

    return {
        "a/c >= 8": goal(ratios.get("a/c"), lambda v: v >= GOAL_RATIO_BASELINE),
        "a/b >= 0.5": goal(ratios.get("a/b"), lambda v: v >= GOAL_RATIO_FLOOR),
        "p99(a) <= 30 ms": goal(a and a["p99_ms"], lambda v: v <= GOAL_P99_MS),
        "zero non-2xx (a)": goal(a and a["non_2xx"] + a["socket_errors"], lambda v: v == 0),
        "worker RSS <= 250 MB": goal(rss_mb, lambda v: v <= GOAL_RSS_MB),
    } | ({"WAL syncs/request <= 0.1": goal(wal["per_request"], _wal_ok)} if wal is not None else {})


def _wal_ok(value: float) -> bool:
    return value <= GOAL_WAL_SYNCS_PER_REQUEST


def format_table(result: dict) -> str:
    """The human-readable table `make bench` prints for one configuration."""
    summary = result["summary"]
    lines = [
        f"== {result['config']}: {result['description']}",
        f"{'conns':>5}  {'case':<40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'sock err':>8} {'other CPU':>9}",
    ]
    for connections, by_case in summary["cases"].items():
        for key, figures in sorted(by_case.items()):
            lines.append(
                f"{connections:>5}  {key + ') ' + figures['label']:<40} {figures['rps']:>9.1f} "
                f"{figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f} {figures['non_2xx']:>8} "
                f"{figures['socket_errors']:>8} {figures['other_cpu_cores']:>9.2f}"
            )
        ratio = summary["ratios"][connections]
        shown = "  ".join(f"{k} = {v:.2f}" for k, v in ratio.items() if v is not None)
        lines.append(f"{'':>5}  ratios: {shown or 'n/a'}")
    rss = result.get("worker_rss_mb")
    if rss:
        lines.append(f"web worker RSS (MB, both demo models loaded): {rss}")
        lines.append("other CPU: cores used by processes outside the bench (median), 2 = all")
    wal = result.get("wal")
    if wal:
        lines.append(
            f"WAL syncs (pg_stat_wal) over all rounds: {wal['syncs']} for "
            f"{wal['metered_requests']} metered requests = {wal['per_request']} per request"
        )
    for name, goal in result.get("goals", {}).items():
        mark = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        lines.append(f"goal {name:<22} {goal['value']!s:>10}  {mark}")
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    for path in paths:
        data = json.loads(Path(path).read_text())
        for result in data["configs"]:
            print(format_table(result))
            print()


if __name__ == "__main__":
    main(sys.argv[1:])
