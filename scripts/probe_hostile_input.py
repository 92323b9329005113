#!/usr/bin/env python
"""Send the hostile requests of issue 19 (findings 5-8) to a running server and print what it
answers: one line per probe with the HTTP status and the start of the message. Read-only apart
from a few rejected records; bounded (about 40 requests); meant for a server you run, e.g.

    python scripts/probe_hostile_input.py --url http://127.0.0.1:8000 --token <engineer token>

``--login`` also tries 6 wrong passwords for a throwaway user name to show the lockout (this
locks that name, and your address for a minute)."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import requests


def _short(response: requests.Response) -> str:
    text = response.text.replace("\n", " ")
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            text = json.dumps(body["error"]) + (f" {json.dumps(body['detail'])}" if "detail" in body else "")
        else:
            text = json.dumps(body)
    except ValueError:
        pass
    return text[:140]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="an engineer's API token")
    parser.add_argument("--login", action="store_true", help="also probe the login lockout")
    parser.add_argument("--user", default="operator", help="a user for the page probes (with --password)")
    parser.add_argument("--password", help="that user's password: enables the media path and form redirect probes")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {args.token}"

    def show(finding: str, what: str, response: requests.Response) -> None:
        print(f"{finding:>3} | {what:<48} | {response.status_code} | {_short(response)}")

    ts = "2026-03-01T00:00:00Z"
    detectors = api.get(f"{base}/api/v1/detectors/", timeout=30)
    show("5", "GET /api/v1/detectors/", detectors)
    ids = [d["id"] for d in detectors.json().get("results", [])] if detectors.ok else []
    if ids:
        show("5", f"GET /api/v1/detectors/{ids[0]}/", api.get(f"{base}/api/v1/detectors/{ids[0]}/", timeout=30))
        show("5", f"GET /api/v1/detectors/{ids[0]}/scores/", api.get(f"{base}/api/v1/detectors/{ids[0]}/scores/", timeout=30))

    buffer = io.BytesIO()
    np.savez_compressed(buffer, vib=np.zeros(50_000_000))  # 400 MB of float64 in about 400 KB
    show("6", f"npz {len(buffer.getvalue()) // 1024} KB declaring 400 MB", api.post(
        f"{base}/api/v1/ingest/files", files={"file": ("bomb.npz", buffer.getvalue())},
        data={"spec": json.dumps({"layout": "npz", "sampling_rate_hz": 1000, "start": ts})}, timeout=120))
    show("6", "log message of 10 MB", api.post(f"{base}/api/v1/logs", json={"logs": [{"source": "P-101", "ts": ts, "message": "x" * 10_000_000}]}, timeout=120))
    show("6", "log level of 10,000 characters", api.post(f"{base}/api/v1/logs", json={"logs": [{"source": "P-101", "ts": ts, "level": "W" * 10_000, "message": "m"}]}, timeout=30))

    for path in ("/api/v1/sites", "/api/v1/alarms", "/api/v1/sensors"):
        show("7", f"GET {path}?limit=2**63", api.get(f"{base}{path}", params={"limit": 9223372036854775808}, timeout=30))
    alarms = api.get(f"{base}/api/v1/alarms", timeout=30).json().get("results", [])
    alarm = alarms[0]["id"] if alarms else 1
    show("7", "shelve duration_s 1e308", api.post(f"{base}/api/v1/alarms/{alarm}/shelve", json={"duration_s": 1e308, "comment": "probe"}, timeout=30))
    show("7", "reading value with 401 digits", api.post(f"{base}/api/v1/readings", data='{"readings": [{"sensor": "P-101.VIB", "ts": "%s", "value": %s}]}' % (ts, "9" * 401),
                                                          headers={"Content-Type": "application/json"}, timeout=30))
    show("7", '{"readings": [null]}', api.post(f"{base}/api/v1/readings", json={"readings": [None]}, timeout=30))
    show("7", "lone surrogate \\ud800 in a log message", api.post(f"{base}/api/v1/logs", data='{"logs": [{"source": "P-101", "ts": "%s", "message": "a\\ud800b"}]}' % ts,
                                                                   headers={"Content-Type": "application/json"}, timeout=30))
    show("7", "JSON nested 50,000 deep", api.post(f"{base}/api/v1/readings", data='{"readings": ' + "[" * 50_000 + "]" * 50_000 + "}",
                                                  headers={"Content-Type": "application/json"}, timeout=30))
    page = requests.Session()
    if args.password:  # the pages need a session: media path, unshelve form redirects
        token = page.get(f"{base}/accounts/login/", timeout=30).cookies.get("csrftoken", "")
        page.post(f"{base}/accounts/login/", data={"username": args.user, "password": args.password, "csrfmiddlewaretoken": token},
                  headers={"Referer": f"{base}/accounts/login/"}, timeout=30)
        show("7", "GET /media/uploads%00/x", page.get(f"{base}/media/uploads%00/x", timeout=30, allow_redirects=False))
        for target in ("foo", "https://evil.example/"):
            form = {"next": target, "csrfmiddlewaretoken": page.cookies.get("csrftoken", "")}
            response = page.post(f"{base}/alarms/{alarm}/unshelve/", data=form, headers={"Referer": f"{base}/alarms/"}, timeout=30, allow_redirects=False)
            print(f"  7 | unshelve form next={target:<29} | {response.status_code} | Location: {response.headers.get('Location')}")
        page = requests.Session()

    show("8", "GET /api/docs/ (Swagger UI source)", api.get(f"{base}/api/docs/", timeout=30))
    headers = page.get(f"{base}/accounts/login/", timeout=30).headers
    print(f"  8 | login page Content-Security-Policy              | {headers.get('Content-Security-Policy', '(none)')[:140]}")
    if args.login:
        for attempt in range(1, 7):
            token = page.get(f"{base}/accounts/login/", timeout=30).cookies.get("csrftoken", "")
            response = page.post(f"{base}/accounts/login/", data={"username": "probe-nobody", "password": f"wrong-{attempt}", "csrfmiddlewaretoken": token},
                                 headers={"Referer": f"{base}/accounts/login/"}, timeout=30)
            show("8", f"login attempt {attempt} with a wrong password", response)


if __name__ == "__main__":
    main()
