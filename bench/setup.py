"""Prepares a running devicehub for bench/run.sh (Python standard library only).

Creates the seed catalog, uploads an image of --image-mib MiB, releases it, runs one
firmware-update session to `created`, then copies that session --sessions times straight
into the SQLite database (so the poll benchmark reads from a table of that size), and
prints JSON: {"download_link", "image_path", "ids_file"}.
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import sys
import time
import urllib.parse
import uuid


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--image-mib", type=int, default=64)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=10_000, help="how many session ids the poll picks from")
    p.add_argument("--version", default="1.0.0")
    args = p.parse_args()
    u = urllib.parse.urlparse(args.url)

    def call(method, path, body=None, raw=None, expect=(200, 201)):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        headers = {"Authorization": f"Token {args.token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if raw is not None:
            data = raw
            headers["Content-Length"] = str(os.fstat(raw.fileno()).st_size)
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        text = r.read()
        if r.status not in expect:
            sys.exit(f"{method} {path}: {r.status} {text[:300]!r}")
        return json.loads(text) if text else None

    first = args.version == "1.0.0"
    if first:
        call("POST", "/api/v1/products", {"tid": "P1", "name": "bench"})
        call("POST", "/api/v1/models", {"tid": "CAFEBABE", "name": "m", "product": "P1"})
        call("POST", "/api/v1/channels", {"tid": "BAADFOOD", "name": "stable", "product": "P1"})
        call("POST", "/api/v1/delivery-methods", {"tid": "DEADBEEF", "name": "http"})
        call("POST", "/api/v1/delivery-procedures",
             {"tid": "dp-handle", "name": "as is", "delivery_method": "DEADBEEF", "confirm": True})
    fw = call("POST", "/api/v1/firmware", {"model": "CAFEBABE", "version": args.version, "channels": ["BAADFOOD"]})
    image = os.path.join(args.data_dir, f"bench-{args.version}.bin")
    with open(image, "wb") as f:
        for _ in range(args.image_mib):
            f.write(os.urandom(1024 * 1024))
    with open(image, "rb") as f:
        fw = call("PUT", f"/api/v1/firmware/{fw['id']}/image", raw=f)
    os.remove(image)
    call("POST", f"/api/v1/firmware/{fw['id']}/release")

    req = {"model": "CAFEBABE", "device_id": f"bench-{args.version}", "delivery_method": "DEADBEEF",
           "delivery_procedure_tid": "dp-handle", "current_channel": "BAADFOOD",
           "current_firmware_version": "0.0.1", "target_firmware_version": args.version}
    s = call("POST", "/api/v1/firmware-update/request", req)
    call("POST", f"/api/v1/firmware-update/{s['id']}/start")
    for _ in range(600):
        s = call("GET", f"/api/v1/firmware-update/{s['id']}/")
        if s["state"] == "created":
            break
        time.sleep(0.1)
    else:
        sys.exit(f"the session never reached created: {s}")

    ids_file = os.path.join(args.data_dir, "session-ids.txt")
    if args.sessions:
        db = sqlite3.connect(os.path.join(args.data_dir, "devicehub.sqlite3"), timeout=30)
        cols = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
        copied = ", ".join("?" if c in ("id", "number") else c for c in cols)
        (top,) = db.execute("SELECT MAX(number) FROM sessions").fetchone()
        ids = [str(uuid.uuid4()) for _ in range(args.sessions)]
        rows = []
        for i, new_id in enumerate(ids):
            row = [new_id if c == "id" else top + 1 + i for c in cols if c in ("id", "number")]
            rows.append((*row, s["id"]))
        with db:
            db.executemany(f"INSERT INTO sessions ({', '.join(cols)}) SELECT {copied} FROM sessions WHERE id = ?", rows)
            # keep the server's number counter ahead of the copies
            db.execute("UPDATE counters SET value = (SELECT MAX(number) FROM sessions) WHERE name = 'session'")
        (count,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
        # fold the bulk insert into the database file, as a server running for a while has
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        with open(ids_file, "w") as f:
            f.write("\n".join(random.sample(ids, min(args.sample, len(ids)))) + "\n")
    else:
        count = None
    obj = os.path.join(args.data_dir, "objects", "images", fw["id"])
    # (an S3 store keeps no file here: bench/s3.sh)
    image_path = os.path.join(obj, os.listdir(obj)[0]) if os.path.isdir(obj) else None
    print(json.dumps({"download_link": s["payload"]["download_link"], "image_path": image_path,
                      "ids_file": ids_file, "sessions_in_db": count, "size": fw["size"]}))


if __name__ == "__main__":
    main()
