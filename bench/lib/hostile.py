#!/usr/bin/env python3
"""Hostile clients of the village intake, for bench/hostile.sh.

  hostile.py PORT SECONDS SLOW BIG BIG_MB

SLOW slowloris connections from 127.0.0.2, each sending a request head one
byte every 10 s (reconnecting when the intake cuts it), and BIG
unauthenticated uploads of BIG_MB MB each from 127.0.0.3, all started at
once, each sending its whole body whatever the intake answers.  Both
addresses are loopback: the intake's per-address cap applies to the
attackers, not to the honest clients on 127.0.0.1.  Prints one line of
counts at the end.
"""
import asyncio
import sys
import time

PORT, SECONDS, SLOW, BIG, BIG_MB = (int(a) for a in sys.argv[1:6])
HEAD = b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
counts = {"slow_cut": 0, "slow_bytes": 0, "big_done": 0, "big_status": {}, "big_reset": 0,
          "connect_failed": 0}


async def slowloris(deadline):
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", PORT, local_addr=("127.0.0.2", 0))
        except OSError:
            counts["connect_failed"] += 1
            await asyncio.sleep(1)
            continue
        i = 0
        try:
            while time.monotonic() < deadline:
                w.write(HEAD[i % len(HEAD):i % len(HEAD) + 1])
                await w.drain()
                counts["slow_bytes"] += 1
                i += 1
                try:
                    data = await asyncio.wait_for(r.read(1), timeout=10)
                    if data == b"":
                        counts["slow_cut"] += 1
                        break
                except asyncio.TimeoutError:
                    pass
        except OSError:
            counts["slow_cut"] += 1
        w.close()


async def big(body):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", PORT, local_addr=("127.0.0.3", 0))
    except OSError:
        counts["connect_failed"] += 1
        return
    head = (b"POST /v1/reports:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    status = "none"
    try:
        w.write(head)
        view = memoryview(body)
        for off in range(0, len(body), 1 << 18):
            w.write(view[off:off + (1 << 18)])
            await w.drain()
        line = await asyncio.wait_for(r.readline(), timeout=30)
        status = line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "none"
    except (OSError, asyncio.TimeoutError, IndexError):
        counts["big_reset"] += 1
    counts["big_status"][status] = counts["big_status"].get(status, 0) + 1
    counts["big_done"] += 1
    w.close()


async def main():
    deadline = time.monotonic() + SECONDS
    body = b"[" + b" " * (BIG_MB * 1024 * 1024 - 2) + b"]"
    tasks = [asyncio.create_task(slowloris(deadline)) for _ in range(SLOW)]
    tasks += [asyncio.create_task(big(body)) for _ in range(BIG)]
    await asyncio.wait(tasks, timeout=SECONDS + 40)
    print("hostile: slowloris connections %d, cut by the intake %d, bytes sent %d; "
          "uploads %d of %d MB finished, answers %s, reset %d; connects failed %d"
          % (SLOW, counts["slow_cut"], counts["slow_bytes"], counts["big_done"], BIG_MB,
             counts["big_status"], counts["big_reset"], counts["connect_failed"]), flush=True)


asyncio.run(main())
