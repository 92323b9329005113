#!/usr/bin/env python
"""Send the least-privilege probes of issue 19 (findings 1-4) to a running server and print what it
answers: one line per probe with the HTTP status and the start of the message. Bounded (about 20
requests); every write it tries should be refused, and the one connector it creates on purpose
(to read its secret back) is deleted at the end. Meant for a server you run, e.g.

    python scripts/probe_access.py --url http://127.0.0.1:8000 --token <engineer token> \\
        --operator-token <operator token> --nogroup-token <token of a user in no role group>
"""

from __future__ import annotations

import argparse

import requests
from probe_hostile_input import _short  # the same one-line answer (scripts/ is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="an engineer's API token")
    parser.add_argument("--operator-token", required=True)
    parser.add_argument("--nogroup-token", required=True, help="a token of a signed-in user in no role group")
    parser.add_argument("--secret-key-path", default="var/secret_key", help="a server file that must stay unreadable")
    args = parser.parse_args()
    api = args.url.rstrip("/") + "/api/v1"

    def call(label: str, finding: int, method: str, path: str, token: str, body=None) -> requests.Response:
        response = requests.request(method, api + path, json=body, headers={"Authorization": f"Token {token}"}, timeout=30)
        print(f"{finding:>3} | {label:<52} | {response.status_code} | {_short(response)}")
        return response

    # 1. connector file access outside the connector roots
    for label, kind, config in (
        ("logfile on /etc/passwd", "logfile", {"path": "/etc/passwd", "source": "P-101"}),
        (f"logfile on {args.secret_key_path}", "logfile", {"path": args.secret_key_path, "source": "P-101"}),
        ("logfile on ../../etc/shadow", "logfile", {"path": "../../etc/shadow", "source": "P-101"}),
        ("image_folder on /tmp", "image_folder", {"directory": "/tmp"}),
        ("file_folder on /", "file_folder", {"directory": "/"}),
    ):
        call(label, 1, "POST", "/connectors/", args.token, {"name": "probe-" + kind, "kind": kind, "config": config})
    # 2. webhook SSRF
    for url in (
        "http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8000/",
        "http://localhost:8123/admin/", "http://0.0.0.0:6379/", "http://[::ffff:127.0.0.1]/", "http://10.20.1.5/scada",
    ):
        call(f"webhook to {url}", 2, "POST", "/webhooks/", args.token, {"url": url, "events": ["alarm.raised"]})
    hooks = requests.get(api + "/webhooks/", headers={"Authorization": f"Token {args.token}"}, timeout=30).json()
    first = (hooks.get("results") or [None])[0] if isinstance(hooks, dict) else None
    if first:
        call(f"operator reads deliveries of webhook {first['id']}", 2, "GET", f"/webhooks/{first['id']}/deliveries", args.operator_token)
        call(f"engineer reads deliveries of webhook {first['id']}", 2, "GET", f"/webhooks/{first['id']}/deliveries", args.token)
    # 3. a user in no role group
    call("no-group user creates a site", 3, "POST", "/sites/", args.nogroup_token, {"name": "probe-site"})
    call("no-group user creates a webhook", 3, "POST", "/webhooks/", args.nogroup_token, {"url": "https://93.184.216.34/h", "events": ["alarm.raised"]})
    call("no-group user reads sensors", 3, "GET", "/sensors/", args.nogroup_token)
    call("operator creates a site", 3, "POST", "/sites/", args.operator_token, {"name": "probe-site"})
    # 4. secrets are write-only
    body = {"name": "probe-mqtt", "kind": "mqtt_json",
            "config": {"broker": {"host": "10.0.0.5", "username": "phm", "password": "s3cret-probe"}, "mappings": [{"topic": "plant/+/t", "tag": "{levels[1]}.T"}]}}
    created = call("engineer creates an MQTT connector with a password", 4, "POST", "/connectors/", args.token, body)
    if created.status_code in (200, 201):
        seen = call("operator reads it back", 4, "GET", "/connectors/probe-mqtt", args.operator_token)
        print(f"  4 | password in the operator's answer: {'s3cret-probe' in seen.text}")
        seen = call("engineer reads it back", 4, "GET", "/connectors/probe-mqtt", args.token)
        print(f"  4 | password in the engineer's answer: {'s3cret-probe' in seen.text}")
        call("engineer deletes it", 4, "DELETE", "/connectors/probe-mqtt", args.token)


if __name__ == "__main__":
    main()
