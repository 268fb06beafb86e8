#!/usr/bin/env python3
"""An idle-connection flood for tests: holds HOLD TCP connections to HOST:PORT that
never send a byte, then replaces the oldest with CHURN new ones a second, until
killed. Writes "held opened" to STATUS once a second. One process holds at most what
its open-file limit allows, so a test runs several."""
import collections
import signal
import socket
import sys
import time

host, port, hold, churn, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
conns = collections.deque()
opened = 0
last = 0.0
while True:
    batch = 500 if len(conns) < hold else max(churn // 10, 1)
    for _ in range(batch):
        try:
            conns.append(socket.create_connection((host, port), timeout=1))
            opened += 1
        except OSError:
            pass
        while len(conns) > hold:
            conns.popleft().close()
    now = time.monotonic()
    if now - last >= 1:
        with open(status + ".tmp", "w") as f:
            f.write(f"{len(conns)} {opened}\n")
        import os
        os.replace(status + ".tmp", status)
        last = now
    time.sleep(0.1)
