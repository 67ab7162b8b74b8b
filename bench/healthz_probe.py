#!/usr/bin/env python3
"""Probe the TLS listener of `kube-once serve` at a fixed pace and record
each request's latency (bench/preview_hostile.sh).

Usage: healthz_probe.py PORT MODE SECONDS INTERVAL_MS OUT [BODY]
  MODE keepalive  GET /healthz on one keep-alive connection
       fresh      GET /healthz on a new TCP+TLS connection each time (as the
                  kubelet probes: no keep-alive), handshake included
       mutate     POST BODY (an AdmissionReview) to /mutate, keep-alive
Writes one line per request to OUT: `OFFSET_S LATENCY_MS STATUS` (status 0:
the request failed; the connection is then opened anew). Requests start on
a fixed schedule (every INTERVAL_MS), not INTERVAL_MS after the previous
answer, so a stall shows as one long request, not as missing samples."""
import http.client, ssl, sys, time

port, mode, seconds, interval, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) / 1000, sys.argv[5]
body = open(sys.argv[6], "rb").read() if mode == "mutate" else None
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE


def connect():
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)


connection = connect()
lines = []
start = time.perf_counter()
due = start
while due - start < seconds:
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
    began = time.perf_counter()
    status = 0
    try:
        if mode == "fresh":
            connection = connect()
        if mode == "mutate":
            connection.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        else:
            connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        status = response.status
        if mode == "fresh":
            connection.close()
    except (OSError, http.client.HTTPException):
        connection.close()
        connection = connect()
    ended = time.perf_counter()
    lines.append(f"{began - start:.3f} {(ended - began) * 1000:.2f} {status}\n")
    # The next request is due on the schedule; after a stall, start again from now.
    due = max(due + interval, ended)
connection.close()
with open(out, "w") as file:
    file.writelines(lines)
