#!/usr/bin/env python3
"""Open N idle TLS connections to the webhook, each after one request (how
the API server pools them), then, while holding them, read the server's
memory and open file descriptors and check that a fresh connection still
gets an answer. Usage: idle_connections.py PORT N SERVER_PID"""
import http.client, os, resource, ssl, sys

port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE


def readyz(connection):
    connection.request("GET", "/readyz")
    response = connection.getresponse()
    response.read()
    return response.status


def server_status(field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return line.split()[1]


idle, failed = [], 0
for _ in range(count):
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        readyz(connection)
        idle.append(connection)
    except OSError:
        failed += 1
rss_kb = server_status("VmRSS")
fds = len(os.listdir(f"/proc/{pid}/fd"))
fresh = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
try:
    status = readyz(fresh)
except OSError as error:
    status = f"error:{error}"
print(f"IDLE opened={len(idle)} failed={failed} server_rss_kb={rss_kb} server_fds={fds} fresh_request={status}")
