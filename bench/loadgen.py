#!/usr/bin/env python3
"""Load generator for bench/load.sh (Python 3 standard library only).

Holds SOCKETS browser WebSockets on /ws (each reads every frame the server pushes) and sends
RATE API requests per second, open loop, round-robin over PATHS, on a pool of kept-alive HTTP/1.1
connections (a new one is opened whenever none is idle). A request's latency runs from the
moment it was due, so a stalled server cannot hide its queueing (no coordinated omission).

Prints one JSON object on stdout at the end; progress goes to stderr.
"""

import argparse
import asyncio
import base64
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sockets", type=int, default=500)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--paths", default="/api/status,/api/models,/api/gallery,/api/workflows")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--server-pid", type=int, help="read this process's CPU time and RSS")
    return p.parse_args()


class Stats:
    def __init__(self):
        self.latencies = {}  # path -> [seconds]
        self.errors = {}  # description -> count
        self.ws_open = 0
        self.ws_failed = 0
        self.ws_dropped = 0
        self.ws_frames = 0
        self.ws_bytes = 0
        self.connections_opened = 0

    def error(self, what):
        self.errors[what] = self.errors.get(what, 0) + 1


async def read_response(reader):
    """Reads one HTTP/1.1 response; returns (status, body_len, keep_alive)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before the status line")
    parts = status_line.split(b" ", 2)
    status = int(parts[1])
    length = None
    chunked = False
    keep_alive = True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.lower() == b"close":
            keep_alive = False
    size = 0
    if chunked:
        while True:
            size_line = await reader.readline()
            n = int(size_line.split(b";")[0].strip(), 16)
            if n == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            await reader.readexactly(n + 2)
            size += n
    elif length is not None:
        await reader.readexactly(length)
        size = length
    else:
        body = await reader.read()
        size = len(body)
        keep_alive = False
    return status, size, keep_alive


class HttpPool:
    def __init__(self, host, port, stats):
        self.host, self.port, self.stats = host, port, stats
        self.idle = []

    async def request(self, path, timeout):
        if self.idle:
            conn = self.idle.pop()
        else:
            conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
            self.stats.connections_opened += 1
        reader, writer = conn
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Accept: application/json\r\n\r\n".encode()
            )
            status, size, keep_alive = await asyncio.wait_for(read_response(reader), timeout)
        except BaseException:
            writer.close()
            raise
        if keep_alive:
            self.idle.append(conn)
        else:
            writer.close()
        return status, size


async def one_request(pool, path, due, args, stats):
    try:
        status, _ = await pool.request(path, args.timeout)
        if 200 <= status < 300:
            stats.latencies.setdefault(path, []).append(time.monotonic() - due)
        else:
            stats.error(f"{path}: HTTP {status}")
    except asyncio.TimeoutError:
        stats.error(f"{path}: timeout after {args.timeout}s")
    except Exception as e:  # noqa: BLE001 - every failure is a counted error
        stats.error(f"{path}: {type(e).__name__}: {e}")


async def api_load(args, stats, stop_at):
    paths = [p for p in args.paths.split(",") if p]
    pool = HttpPool(args.host, args.port, stats)
    interval = 1.0 / args.rate
    start = time.monotonic()
    tasks = set()
    i = 0
    while True:
        due = start + i * interval
        if due >= stop_at:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one_request(pool, paths[i % len(paths)], due, args, stats))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 1)
    for _, w in pool.idle:
        w.close()
    return i


async def ws_client(args, stats, stop_at, opened):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(args.host, args.port), args.timeout
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://{args.host}:{args.port}\r\n\r\n"
            ).encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), args.timeout)
        if b" 101 " not in status_line:
            stats.ws_failed += 1
            stats.error(f"/ws handshake: {status_line.decode(errors='replace').strip()}")
            writer.close()
            return
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
    except Exception as e:  # noqa: BLE001
        stats.ws_failed += 1
        stats.error(f"/ws connect: {type(e).__name__}: {e}")
        return
    stats.ws_open += 1
    opened.release()
    try:
        while True:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                break
            try:
                head = await asyncio.wait_for(reader.readexactly(2), remaining)
            except asyncio.TimeoutError:
                break
            opcode = head[0] & 0x0F
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            if head[1] & 0x80:
                await reader.readexactly(4)
            payload = await reader.readexactly(n)
            if opcode == 0x8:  # close from the server before the end
                stats.ws_dropped += 1
                stats.error("/ws closed by the server")
                return
            if opcode == 0x9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
            stats.ws_frames += 1
            stats.ws_bytes += n
    except Exception as e:  # noqa: BLE001
        stats.ws_dropped += 1
        stats.error(f"/ws dropped: {type(e).__name__}")
        return
    # A clean close frame (masked, code 1000).
    mask = os.urandom(4)
    body = (1000).to_bytes(2, "big")
    writer.write(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(body)))
    try:
        await writer.drain()
    except Exception:  # noqa: BLE001
        pass
    writer.close()


def proc_cpu_s(pid):
    """User + system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


async def main():
    args = parse_args()
    stats = Stats()
    # Sockets first (ramped: one every 5 ms), then the measured window.
    opened = asyncio.Semaphore(0)
    ws_tasks = []
    t0 = time.monotonic()
    # The sockets read until a stop time fixed below (ramp allowance + duration).
    ramp_stop = {"at": None}

    async def ws_runner(i):
        await asyncio.sleep(i * 0.005)
        await ws_client(args, stats, ramp_stop["at"], opened)

    for i in range(args.sockets):
        ws_tasks.append(asyncio.create_task(ws_runner(i)))
    ramp_s = 5.0 + args.sockets * 0.01
    ramp_stop["at"] = time.monotonic() + ramp_s + args.duration
    deadline = time.monotonic() + ramp_s
    got = 0
    while got < args.sockets and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(opened.acquire(), max(0.01, deadline - time.monotonic()))
            got += 1
        except asyncio.TimeoutError:
            break
        if stats.ws_failed + got >= args.sockets:
            break
    ramp_took = time.monotonic() - t0
    print(f"loadgen: {stats.ws_open} sockets open ({stats.ws_failed} failed) in {ramp_took:.1f}s; "
          f"{args.rate:g} req/s for {args.duration:g}s", file=sys.stderr)
    sys.stderr.flush()
    cpu0 = proc_cpu_s(args.server_pid) if args.server_pid else None
    own0 = os.times()
    window_start = time.monotonic()
    stop_at = window_start + args.duration
    frames_before = stats.ws_frames
    sent = await api_load(args, stats, stop_at)
    window = time.monotonic() - window_start
    server = {}
    if args.server_pid:
        server = {
            "server_cpu_pct": round(100 * (proc_cpu_s(args.server_pid) - cpu0) / window, 1),
            "server_rss_mib": round(int(proc_status(args.server_pid, "VmRSS")) / 1024, 1),
            "server_threads": int(proc_status(args.server_pid, "Threads")),
        }
    own1 = os.times()
    server["loadgen_cpu_pct"] = round(
        100 * ((own1.user - own0.user) + (own1.system - own0.system)) / window, 1)
    # Sockets close shortly after; count the ones still open at the end of the window.
    open_at_end = stats.ws_open - stats.ws_dropped
    for t in ws_tasks:
        t.cancel()
    await asyncio.gather(*ws_tasks, return_exceptions=True)

    all_lat = sorted(x for v in stats.latencies.values() for x in v)
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    per_path = {
        p: {
            "ok": len(v),
            "p50_ms": ms(percentile(sorted(v), 50)),
            "p99_ms": ms(percentile(sorted(v), 99)),
        }
        for p, v in sorted(stats.latencies.items())
    }
    errors = sum(stats.errors.values())
    print(json.dumps({
        "sockets_wanted": args.sockets,
        "sockets_open": stats.ws_open,
        "sockets_open_at_end": open_at_end,
        "sockets_failed": stats.ws_failed,
        "sockets_dropped": stats.ws_dropped,
        "ws_frames_in_window": stats.ws_frames - frames_before,
        "requests_sent": sent,
        "requests_ok": len(all_lat),
        "achieved_rate": round(len(all_lat) / window, 1) if window > 0 else None,
        "window_s": round(window, 1),
        "http_connections_opened": stats.connections_opened,
        "p50_ms": ms(percentile(all_lat, 50)),
        "p99_ms": ms(percentile(all_lat, 99)),
        "max_ms": ms(all_lat[-1] if all_lat else None),
        "per_path": per_path,
        "errors": errors,
        "error_kinds": stats.errors,
        **server,
    }))


if __name__ == "__main__":
    asyncio.run(main())
