"""Prepares the DDI poll benchmark (bench/ddi.sh); Python standard library only.

devicehub:
  ddi_setup.py devicehub register --url U --token T --devices N --out FILE
      seed catalog, a released 4 KiB firmware, N devices made through the admin API;
      writes "<controllerId> <target token>" lines to FILE
  ddi_setup.py devicehub assign --url U --token T --out FILE
      assigns the firmware to every device of FILE and waits until every session is
      `created` (the deliverable is ready, so the poll offers deploymentBase)
  ddi_setup.py devicehub assign-timed --url U --token T --out FILE --count N --skip K
      assigns the firmware to N devices of FILE (after the first K) in one assignment; prints
      how long the answer took and how long until the assignment was done (JSON)
goosebit:
  ddi_setup.py goosebit register --url U --devices FILE
      one poll per device in goosebit's "setup" auth mode, which stores its token
  ddi_setup.py goosebit registered --db SQLITE
      (goosebit stopped) marks every device REGISTERED, as its configData would
  ddi_setup.py goosebit assign --db SQLITE --image PATH
      (goosebit stopped) a software row for the default hardware, every device on LATEST
"""
import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import sqlite3
import sys
import time
import urllib.parse


def client(url):
    u = urllib.parse.urlparse(url)
    return lambda: http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def api(conn, token, method, path, body=None, expect=(200, 201)):
    headers = {"Authorization": f"Token {token}"}
    data = None
    if body is not None:
        data = json.dumps(body) if not isinstance(body, bytes) else body
        headers["Content-Type"] = "application/json" if not isinstance(body, bytes) else "application/octet-stream"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    text = r.read()
    if r.status not in expect:
        sys.exit(f"{method} {path}: {r.status} {text[:300]!r}")
    return json.loads(text) if text else None


def devicehub_register(args):
    conn = client(args.url)()
    call = lambda *a, **k: api(conn, args.token, *a, **k)  # noqa: E731
    call("POST", "/api/v1/products", {"tid": "P1", "name": "bench"})
    call("POST", "/api/v1/models", {"tid": "CAFEBABE", "name": "m", "product": "P1"})
    call("POST", "/api/v1/channels", {"tid": "BAADFOOD", "name": "stable", "product": "P1"})
    call("POST", "/api/v1/delivery-methods", {"tid": "DEADBEEF", "name": "http"})
    call("POST", "/api/v1/delivery-procedures",
         {"tid": "dp-handle", "name": "as is", "delivery_method": "DEADBEEF", "confirm": True})
    fw = call("POST", "/api/v1/firmware", {"model": "CAFEBABE", "version": "1.1.0", "channels": ["BAADFOOD"]})
    call("PUT", f"/api/v1/firmware/{fw['id']}/image", os.urandom(4096))
    call("POST", f"/api/v1/firmware/{fw['id']}/release", {})
    with open(args.out, "w") as out:
        for i in range(args.devices):
            d = call("POST", "/api/v1/devices", {"device_id": f"dev-{i:05}", "model": "CAFEBABE",
                                                 "channel": "BAADFOOD", "installed_version": "1.0.0"})
            out.write(f"{d['device_id']} {d['target_token']}\n")
    print(fw["id"])


def devicehub_assign(args):
    conn = client(args.url)()
    call = lambda *a, **k: api(conn, args.token, *a, **k)  # noqa: E731
    fw = call("GET", "/api/v1/firmware?version=1.1.0")["results"][0]["id"]
    ids = [line.split()[0] for line in open(args.out)]
    for start in range(0, len(ids), 5000):
        assign_and_wait(call, fw, ids[start:start + 5000])
    deadline = time.time() + 1800
    while True:
        created = call("GET", "/api/v1/firmware-update/?state=created&limit=1")["count"]
        if created >= len(ids):
            break
        if time.time() > deadline:
            sys.exit(f"only {created} of {len(ids)} sessions reached created")
        time.sleep(1)


def assign_and_wait(call, fw, devices):
    """One assignment; waits until it is done when it runs as a job (202)."""
    r = call("POST", f"/api/v1/firmware/{fw}/assign", {"devices": devices}, expect=(201, 202))
    if "sessions" in r:
        return
    while r["state"] == "running":
        time.sleep(0.05)
        r = call("GET", f"/api/v1/assignments/{r['id']}")
    if r["state"] != "done":
        sys.exit(f"the assignment ended {r['state']}: {r.get('error')}")


def devicehub_assign_timed(args):
    conn = client(args.url)()
    call = lambda *a, **k: api(conn, args.token, *a, **k)  # noqa: E731
    fw = call("GET", "/api/v1/firmware?version=1.1.0")["results"][0]["id"]
    ids = [line.split()[0] for line in open(args.out)][args.skip:args.skip + args.count]
    started = time.time()
    r = call("POST", f"/api/v1/firmware/{fw}/assign", {"devices": ids}, expect=(201, 202))
    answered = time.time() - started
    if "sessions" not in r:
        while r["state"] == "running":
            time.sleep(0.05)
            r = call("GET", f"/api/v1/assignments/{r['id']}")
    print(json.dumps({"answer_s": round(answered, 2), "done_s": round(time.time() - started, 2)}))


def goosebit_register(args):
    make = client(args.url)
    lines = [line.split() for line in open(args.devices)]

    def poll(chunk):
        conn = make()
        for device, token in chunk:
            conn.request("GET", f"/DEFAULT/controller/v1/{device}", headers={"Authorization": f"TargetToken {token}"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"goosebit poll {device}: {r.status}")

    chunks = [lines[i::4] for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(poll, chunks))


def goosebit_registered(args):
    db = sqlite3.connect(args.db)
    db.execute("UPDATE device SET last_state = 2, sw_version = '1.0.0'")
    db.commit()


def goosebit_assign(args):
    data = open(args.image, "rb").read()
    db = sqlite3.connect(args.db)
    cur = db.execute(
        "INSERT INTO software (uri, size, hash, version, image_format) VALUES (?, ?, ?, ?, 0)",
        (f"file://{os.path.abspath(args.image)}", len(data), hashlib.sha1(data).hexdigest(), "1.1.0"),
    )
    # concurrent first polls may have made several "default" hardware rows: all are compatible
    for (hardware,) in db.execute("SELECT id FROM hardware").fetchall():
        db.execute("INSERT INTO software_compatibility (software_id, hardware_id) VALUES (?, ?)", (cur.lastrowid, hardware))
    db.execute("UPDATE device SET update_mode = 1")
    db.commit()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("server", choices=["devicehub", "goosebit"])
    p.add_argument("step", choices=["register", "registered", "assign", "assign-timed"])
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--devices")
    p.add_argument("--out")
    p.add_argument("--db")
    p.add_argument("--image")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--skip", type=int, default=0)
    args = p.parse_args()
    if args.server == "devicehub" and args.step == "register":
        args.devices = int(args.devices)
        devicehub_register(args)
    elif args.server == "devicehub" and args.step == "assign-timed":
        devicehub_assign_timed(args)
    elif args.server == "devicehub":
        devicehub_assign(args)
    elif args.step == "register":
        goosebit_register(args)
    elif args.step == "registered":
        goosebit_registered(args)
    else:
        goosebit_assign(args)


if __name__ == "__main__":
    main()
