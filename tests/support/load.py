"""Load helpers for the live-server limits tests: many clients spending one quota at once."""

from __future__ import annotations

import random
import threading
import time

import requests

IRIS = [5.1, 3.5, 1.4, 0.2]
THREADS = 32
ROW = IRIS


def hammer(url: str, key: str, worker) -> list:
    """Run `worker(session, url, key)` in THREADS threads released together; gather results."""
    results: list = []
    errors: list = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    base = url.split("/api/")[0]

    def run():
        with requests.Session() as session:
            session.headers["X-API-Key"] = key
            # Open the keep-alive connection first: 32 simultaneous connects would overflow the
            # test server's listen backlog, and a reset connection proves nothing about limits.
            for _ in range(50):
                try:
                    session.get(f"{base}/healthz", timeout=10)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
            start.wait()
            try:
                out = worker(session, url)
            except BaseException as exc:  # a lost response would hide an admission
                with lock:
                    errors.append(exc)
                raise
        with lock:
            results.extend(out)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    return results


def predict(session, url: str, n: int):
    response = session.post(url, json={"instances": [ROW] * n}, timeout=60)
    code = response.json().get("code") if response.status_code != 200 else None
    return response.status_code, code, response


def quota_worker(session, url):
    """Ask for 1-5 predictions until refused; after a refusal, insist with 1 until refused."""
    admitted, rng, n = [], random.Random(), None
    while True:
        size = n or rng.randint(1, 5)
        status, code, response = predict(session, url, size)
        if status == 200:
            admitted.append(size)
            continue
        assert (status, code) == (429, "quota_exceeded"), response.text
        assert response.headers["Retry-After"]
        if size == 1:
            return admitted
        n = 1


def spend_quota(urls: list[str], key: str, seed: int, answered: list, admitted: list) -> None:
    """Predict batches of 1-5 until even one instance is refused for quota; a node that
    refuses connections (shut down) is left for the next one."""
    try:
        _spend(urls[seed % len(urls) :] + urls[: seed % len(urls)], key, seed, answered, admitted)
    except BaseException as exc:  # a thread's failure must fail the test
        answered.append(exc)


def _spend(urls: list[str], key: str, seed: int, answered: list, admitted: list) -> None:
    rng = random.Random(seed)
    while True:
        n = rng.randint(1, 5)
        try:
            response = requests.post(
                f"{urls[0]}/api/v1/models/iris/predict",
                json={"instances": [IRIS] * n},
                headers={"X-API-Key": key},
                timeout=60,
            )
        except requests.ConnectionError:
            assert len(urls) > 1, "the last node refused a connection"
            urls = urls[1:]  # not answered: neither metered nor counted
            continue
        answered.append(response.status_code)
        if response.status_code == 200:
            admitted.append(len(response.json()["predictions"]))
            continue
        assert response.status_code == 429, response.text
        assert response.json()["code"] == "quota_exceeded", response.text
        if n == 1:
            return
