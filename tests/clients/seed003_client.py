"""Seed 003's Python example (Leitwert Device Hub "Firmware APIs"), assembled into one
script and run unchanged against devicehub by tests/api/sessions.rs.

Only what the seed leaves to the reader comes from the environment: the server address,
the token (the seed imports it from `private_settings`) and the poll interval (the seed
sleeps 5 s). Two obvious typos of the page are fixed: the unterminated "BAADFOOD string,
and `header`, which the page uses but never defines (the headers of the first request).
"""
import json
import math
import os
import time

import requests

token = os.environ["DEVICEHUB_TOKEN"]
BASE = os.environ["DEVICEHUB_URL"].rstrip("/")
POLL_SECONDS = float(os.environ.get("POLL_SECONDS", "5"))

header = {
    "Authorization": f"Token {token}",
    "Content-Type": "application/json",
}

# Request a firmware update session by providing your specification as a JSON body:
response = requests.post(
    f"{BASE}/api/v1/firmware-update/request",
    json={
        "model": "CAFEBABE",
        "device_id": "my-device-id",
        "delivery_method": "DEADBEEF",
        "delivery_procedure_tid": "dp-handle",
        "current_channel": "BAADFOOD",
        "current_firmware_version": "0.1.0",
        "allow_draft_firmware": False,
    },
    headers={
        "Authorization": f"Token {token}",
        "Content-Type": "application/json",
    },
)
print(json.dumps(response.json(), indent=2))
response.raise_for_status()

# Start the procedure pipeline:
id = response.json()["id"]
response = requests.post(
    f"{BASE}/api/v1/firmware-update/{id}/start",
    headers=header,
)

# Wait until the download link is available.
deadline = time.time() + 120
while response.json()["state"] not in ["fail", "created", "success"]:
    if response.json()["state"] == "fail":
        print("fail")
        exit(1)
    response = requests.get(
        f"{BASE}/api/v1/firmware-update/{id}/",
        headers=header,
    )
    time.sleep(POLL_SECONDS)
    if time.time() > deadline:
        print("timeout waiting for the pipeline")
        exit(1)

download_url = None
if response.json()["state"] in ["created", "success"]:
    download_url = response.json()['payload']['download_link']

# Download the firmware image:
output = None
if download_url:
    output = requests.get(download_url, headers=header).content
    print(f"Downloaded {len(output)} bytes.")

# Chunked firmware download
headers = {
    "Authorization": f"Token {token}",
    "Range": "bytes=0-1"
}
chunk_response = requests.get(url=download_url, headers=headers)
total_size = int(chunk_response.headers["Content-Range"].split("/")[1])
print(f"Expected total size: {total_size} bytes")

# download in chunks
number_of_chunks = 10
chunk_size = math.ceil(total_size / number_of_chunks)
full_content = b""
for index in range(0, number_of_chunks):
    start = index * chunk_size
    end = min(start + chunk_size - 1, total_size - 1)
    headers = {
        "Authorization": f"Token {token}",
        "Range": f"bytes={start}-{end}",
    }
    print(f"Get bytes {start} to {end}.")
    chunk_response = requests.get(url=download_url, headers=headers)
    full_content += chunk_response.content

    # write to file
    with open("firmware_image.bin", "wb") as f:
        f.write(full_content)
print(f"Downloaded {len(full_content)} bytes in chunks of {chunk_size} bytes")
assert full_content == output, "chunked download differs from the full download"

# Confirm that the update is completed:
if output and response.json()["state"] == "created":
    response = requests.post(
        f"{BASE}/api/v1/firmware-update/{id}/confirm",
        json={"success": True},
        headers=header,
    )

# To check if the firmware request session completed successfully:
response = requests.get(
    f"{BASE}/api/v1/firmware-update/{id}/",
    headers=header,
)
print(response.json()["state"])
