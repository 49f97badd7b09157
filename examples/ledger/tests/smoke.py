"""The ledger's HTTP smoke test, standard library only: run against a running app.

    APP_URL=http://127.0.0.1:8002 python3 tests/smoke.py

It checks /health, writes an entry, reads it back and deletes it again (it may run against
prod: it leaves nothing behind). Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

URL = (os.environ.get("APP_URL") or "http://127.0.0.1:8002").rstrip("/")


def call(method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def main() -> int:
    deadline = time.monotonic() + float(os.environ.get("APP_WAIT_SECONDS", "15"))
    while True:
        try:
            status, health = call("GET", "/health")
            break
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                print(f"FAIL ledger not reachable at {URL}: {exc}")
                return 1
            time.sleep(0.3)
    checks: list[tuple[str, bool]] = [
        ("GET /health is 200 ok", status == 200 and isinstance(health, dict)
         and health.get("status") == "ok")]
    account = "smoke-" + uuid.uuid4().hex[:8]
    status, entry = call("POST", "/entries", {"account": account, "amount_cents": 1234})
    checks.append(("POST /entries is 201", status == 201 and isinstance(entry, dict)))
    if isinstance(entry, dict) and "id" in entry:
        status, back = call("GET", f"/entries/{entry['id']}")
        checks.append(("GET /entries/{id} returns it", status == 200 and isinstance(back, dict)
                       and back.get("account") == account and back.get("receipt")
                       == entry.get("receipt")))
        status, _ = call("DELETE", f"/entries/{entry['id']}")
        checks.append(("DELETE /entries/{id} is 204", status == 204))
    for name, ok in checks:
        print(("ok   " if ok else "FAIL ") + name)
    failed = sum(not ok for _, ok in checks)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
