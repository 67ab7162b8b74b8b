#!/usr/bin/env python3
"""Start `kube-once serve` and measure cold start: from exec to the first
/readyz answered 200 over TLS, polling as fast as the loopback allows.
Usage: start_server.py PORT LOG -- COMMAND...  Prints `PID MILLISECONDS`
and leaves the server running (bench/load.sh stops it)."""
import http.client, ssl, subprocess, sys, time

port, log = int(sys.argv[1]), sys.argv[2]
command = sys.argv[sys.argv.index("--") + 1:]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

with open(log, "wb") as out:
    start = time.perf_counter()
    server = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
deadline = start + 30
while True:
    if server.poll() is not None:
        sys.exit(f"kube-once serve exited with {server.returncode} before it was ready; see {log}")
    if time.perf_counter() > deadline:
        server.kill()
        sys.exit(f"kube-once serve not ready after 30 s; see {log}")
    try:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=1)
        connection.request("GET", "/readyz")
        if connection.getresponse().status == 200:
            break
    except OSError:
        pass
    finally:
        connection.close()
print(server.pid, round((time.perf_counter() - start) * 1000, 1))
