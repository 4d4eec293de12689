"""The DMF benchmark's gateway (bench/dmf.sh): registers N things over AMQP, times one
assignment to all of them until the last DOWNLOAD_AND_INSTALL arrived, then publishes
RUNNING and FINISHED for every action and times until the last one is applied.
Needs pika (PyPI) and the Python standard library; prints one JSON line of figures.
"""
import argparse
import json
import sys
import time

import pika

sys.path.insert(0, __import__("os").path.dirname(__file__))
from ddi_setup import api, client  # noqa: E402

MAX_PER_ASSIGNMENT = 5000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--amqp", required=True)
    p.add_argument("--things", type=int, default=10000)
    a = p.parse_args()
    conn = client(a.url)()
    call = lambda *x, **k: api(conn, a.token, *x, **k)  # noqa: E731
    call("POST", "/api/v1/products", {"tid": "P1", "name": "bench"})
    call("POST", "/api/v1/models", {"tid": "CAFEBABE", "name": "m", "product": "P1"})
    call("POST", "/api/v1/delivery-methods", {"tid": "DEADBEEF", "name": "http"})
    call("POST", "/api/v1/delivery-procedures",
         {"tid": "dp-handle", "name": "as is", "delivery_method": "DEADBEEF", "confirm": True})
    call("POST", "/api/v1/channels", {"tid": "BAADFOOD", "name": "stable", "product": "P1"})
    fw = call("POST", "/api/v1/firmware", {"model": "CAFEBABE", "version": "1.1.0", "channels": ["BAADFOOD"]})
    call("PUT", f"/api/v1/firmware/{fw['id']}/image", b"\x5a" * 4096)
    call("POST", f"/api/v1/firmware/{fw['id']}/release", {})

    amqp = pika.BlockingConnection(pika.URLParameters(a.amqp))
    ch = amqp.channel()
    ch.exchange_declare("bench.gw", "fanout", durable=True)
    ch.queue_declare("bench.gw.inbox", durable=True)
    ch.queue_bind("bench.gw.inbox", "bench.gw")
    things = [f"thing-{n:05d}" for n in range(a.things)]

    def send(headers, body, correlation_id=None):
        props = pika.BasicProperties(content_type="application/json", headers=headers, reply_to="bench.gw",
                                     correlation_id=correlation_id)
        ch.basic_publish("dmf.exchange", "", json.dumps(body).encode(), props)

    t = time.monotonic()
    for thing in things:
        send({"type": "THING_CREATED", "tenant": "P1", "thingId": thing}, {"type": "CAFEBABE"})
    while call("GET", "/api/v1/devices?product=P1&limit=1")["total"] < a.things:
        time.sleep(0.2)
    registered = time.monotonic() - t

    # one assignment (in chunks of 5000, the most one call takes) to every thing
    actions = []
    t0 = time.monotonic()
    for i in range(0, len(things), MAX_PER_ASSIGNMENT):
        r = call("POST", f"/api/v1/firmware/{fw['id']}/assign", {"devices": things[i:i + MAX_PER_ASSIGNMENT]})
        actions += [(s["id"], int(s["action"]["id"])) for s in r["sessions"]]
    assigned = time.monotonic() - t0
    announced = set()
    for method, props, body in ch.consume("bench.gw.inbox", auto_ack=True, inactivity_timeout=600):
        if method is None:
            sys.exit(f"only {len(announced)} DOWNLOAD_AND_INSTALL within 600 s")
        if props.headers.get("topic") == "DOWNLOAD_AND_INSTALL":
            announced.add(json.loads(body)["actionId"])
            if len(announced) == len(actions):
                break
    ch.cancel()
    to_last_message = time.monotonic() - t0

    # every action RUNNING, then FINISHED: 2N status messages, applied in order
    t1 = time.monotonic()
    for status in ("RUNNING", "FINISHED"):
        for _, action in actions:
            send({"type": "EVENT", "tenant": "P1", "topic": "UPDATE_ACTION_STATUS"},
                 {"actionId": action, "actionStatus": status}, f"{status}-{action}")
    published = time.monotonic() - t1
    last = actions[-1][0]
    while call("GET", f"/api/v1/firmware-update/{last}/")["state"] != "success":
        time.sleep(0.05)
    applied = time.monotonic() - t1
    sample = [call("GET", f"/api/v1/firmware-update/{s}/")["state"] for s, _ in actions[:: max(1, len(actions) // 50)]]
    assert all(s == "success" for s in sample), sample
    print(json.dumps({
        "things": a.things, "register_s": round(registered, 1), "assign_calls_s": round(assigned, 1),
        "assignment_to_last_download_and_install_s": round(to_last_message, 1),
        "statuses": 2 * len(actions), "publish_s": round(published, 1), "applied_s": round(applied, 1),
        "statuses_per_s": round(2 * len(actions) / applied),
    }))


if __name__ == "__main__":
    main()
