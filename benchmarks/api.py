"""HTTP service latency and throughput: ``tierline serve`` on loopback, driven by a separate process.

Starts the server as a subprocess (temporary TIERLINE_HOME, SQLite, one uvicorn worker), makes a
viewer key with ``tierline keys create``, then runs the load generator in a separate process (this
script with ``--generator``: asyncio with raw keep-alive HTTP/1.1 connections, so the generator is
not the bottleneck) for:

1. open loop: ``POST /v1/determinations`` at a fixed 200 requests/s for 10 s. Requests are
   scheduled by the clock, not by the previous response, and latency runs from the *scheduled*
   send time to the end of the response, so a server that falls behind shows its queueing.
2. closed loop: the maximum throughput of ``GET /healthz`` (a trivial route) and of
   ``POST /v1/determinations`` on the same server, several connections each, 5 s each.

Targets (printed next to the figures, not asserted): p99 < 20 ms at 200 req/s; determination
throughput >= 0.5 x the trivial route's. Figures only; no assertions.

Run: ``.venv/bin/python benchmarks/api.py [--rate 200] [--seconds 10] [--closed-seconds 5]
[--connections 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TIERLINE = Path(sys.executable).with_name("tierline")
TX = {
    "date": "2025-06-01",
    "destination": "BR",
    "items": [{"chip": "H100 SXM5", "quantity": 2000}],
    "ultimate_consignee": {"id": "acme-br", "name": "Acme Brasil", "country": "BR"},
    "end_use": "data_center",
}
P99_TARGET_MS = 20.0
RATIO_TARGET = 0.5


# ---- the load generator (runs in its own process) --------------------------------------------------
def _request(method: str, path: str, host: str, key: str | None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; responses must carry a Content-Length (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        """Send one request, read its whole response; the status code."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this generator")
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def open_loop(
    host: str, port: int, request: bytes, rate: float, seconds: float, max_connections: int
) -> dict[str, Any]:
    """Dispatch request i at t0 + i/rate whatever happened before; latency from that scheduled time.
    A request finding every connection busy opens another (up to max_connections) or waits for
    one: that wait is queueing and is counted."""
    idle: list[Connection] = [await Connection.open(host, port) for _ in range(8)]
    opened = len(idle)
    freed = asyncio.Condition()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lag: list[float] = []
    reconnects = 0

    async def one(scheduled: float) -> None:
        nonlocal opened, reconnects
        async with freed:
            while not idle and opened >= max_connections:
                await freed.wait()
            if idle:
                conn = idle.pop()
            else:
                opened += 1
                conn = None
        if conn is None:
            conn = await Connection.open(host, port)
        try:
            status = await conn.exchange(request)
        except (asyncio.IncompleteReadError, ConnectionError):
            # uvicorn closes keep-alive connections idle for 5 s: reconnect (the time counts)
            reconnects += 1
            conn.close()
            conn = await Connection.open(host, port)
            status = await conn.exchange(request)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        async with freed:
            idle.append(conn)
            freed.notify()

    total = int(rate * seconds)
    tasks = []
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag.append(time.perf_counter() - scheduled)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for conn in idle:
        conn.close()
    return {
        "sent": total,
        "completed": len(latencies),
        "statuses": statuses,
        "elapsed": elapsed,
        "achieved_rate": len(latencies) / elapsed,
        "p50_ms": 1000 * _percentile(latencies, 0.50),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "max_dispatch_lag_ms": 1000 * max(lag),
        "connections": opened,
        "reconnects": reconnects,
        "generator_cpu": cpu / elapsed,
    }


async def closed_loop(
    host: str, port: int, request: bytes, connections: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    """Each connection sends its next request as soon as the previous response is in."""
    conns = [await Connection.open(host, port) for _ in range(connections)]
    for conn in conns:  # warm every connection once
        await conn.exchange(request)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        while (now := time.perf_counter()) < stop:
            status = await conn.exchange(request)
            latencies.append(time.perf_counter() - now)
            statuses[status] = statuses.get(status, 0) + 1

    server_cpu0, cpu0, start = _cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    cpu, server_cpu = time.process_time() - cpu0, _cpu_seconds(server_pid)
    for conn in conns:
        conn.close()
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * _percentile(latencies, 0.50),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "generator_cpu": cpu / elapsed,
        "server_cpu": None if server_cpu0 is None or server_cpu is None else (server_cpu - server_cpu0) / elapsed,
    }


async def generate(config: dict[str, Any]) -> dict[str, Any]:
    host, port, key = config["host"], config["port"], config["key"]
    where = f"{host}:{port}"
    determine = _request("POST", "/v1/determinations", where, key, json.dumps(TX).encode())
    healthz = _request("GET", "/healthz", where, None)
    warm = await Connection.open(host, port)
    for _ in range(50):  # warm the server: imports, caches, the SQLite connection pool
        status = await warm.exchange(determine)
        if status != 200:
            raise RuntimeError(f"POST /v1/determinations answered {status} while warming up")
    warm.close()
    return {
        "load_before": config["load_before"],
        "open_loop": await open_loop(host, port, determine, config["rate"], config["seconds"], 256),
        "healthz": await closed_loop(
            host, port, healthz, config["connections"], config["closed_seconds"], config["server_pid"]
        ),
        "determine": await closed_loop(
            host, port, determine, config["connections"], config["closed_seconds"], config["server_pid"]
        ),
    }


# ---- the driver ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tierline serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"tierline serve did not become ready:\n{log.read_text()}")


def _fmt_statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def report(result: dict[str, Any], args: argparse.Namespace, server_pid: int, generator_pid: int) -> None:
    ol, hz, dt_ = result["open_loop"], result["healthz"], result["determine"]
    ratio = dt_["throughput"] / hz["throughput"]
    met = {True: "met", False: "NOT met"}
    print(
        f"server pid {server_pid} (tierline serve, 1 uvicorn worker, SQLite) | load generator pid {generator_pid} "
        f"(asyncio, raw HTTP/1.1 keep-alive) | {os.cpu_count()} CPUs shared, load average before the run "
        f"{result['load_before']:.2f} (other processes compete for the same CPUs)"
    )
    print(f"\nopen loop: POST /v1/determinations at {args.rate:g} req/s for {args.seconds:g} s")
    print(
        f"  sent {ol['sent']}, completed {ol['completed']} ({_fmt_statuses(ol['statuses'])}) in {ol['elapsed']:.2f} s: "
        f"achieved {ol['achieved_rate']:.1f} req/s on {ol['connections']} connections "
        f"({ol['reconnects']} reopened after the server's keep-alive timeout)"
    )
    print(
        f"  latency from the scheduled send: p50 {ol['p50_ms']:.2f} ms, p99 {ol['p99_ms']:.2f} ms, "
        f"max {ol['max_ms']:.2f} ms   [target p99 < {P99_TARGET_MS:g} ms: {met[ol['p99_ms'] < P99_TARGET_MS]}]"
    )
    print(
        f"  generator: max dispatch lag {ol['max_dispatch_lag_ms']:.2f} ms, CPU {_pct(ol['generator_cpu'])} of a core"
    )
    print(f"\nclosed loop: {args.connections} connections, {args.closed_seconds:g} s per route")
    for name, r in (("GET /healthz", hz), ("POST /v1/determinations", dt_)):
        print(
            f"  {name:<24} {r['throughput']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"({_fmt_statuses(r['statuses'])}; server CPU {_pct(r['server_cpu'])}, "
            f"generator CPU {_pct(r['generator_cpu'])})"
        )
    print(
        f"  determinations / healthz throughput: {ratio:.2f}   [target >= {RATIO_TARGET:g}: {met[ratio >= RATIO_TARGET]}]"
    )
    print(
        f"  generator headroom: it sustained {hz['throughput']:.0f} req/s on /healthz, "
        f"{hz['throughput'] / args.rate:.0f}x the open-loop rate"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop request rate (req/s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--closed-seconds", type=float, default=5.0, help="closed-loop duration per route")
    parser.add_argument("--connections", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--generator", help=argparse.SUPPRESS)  # internal: run as the load generator
    args = parser.parse_args()
    if args.generator:
        print(json.dumps(asyncio.run(generate(json.loads(args.generator)))))
        return

    with tempfile.TemporaryDirectory(prefix="tierline-api-bench-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("TIERLINE_DATABASE_URL", "TIERLINE_POLICY_DIR")}
        env["TIERLINE_HOME"] = str(home)
        made = subprocess.run(
            [str(TIERLINE), "keys", "create", "--role", "viewer", "--label", "benchmark", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(made.stdout)["key"]
        port = _free_port()
        log = home / "server.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                [str(TIERLINE), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(f"http://127.0.0.1:{port}", server, log)
            config = {
                "host": "127.0.0.1",
                "port": port,
                "key": key,
                "rate": args.rate,
                "seconds": args.seconds,
                "closed_seconds": args.closed_seconds,
                "connections": args.connections,
                "server_pid": server.pid,
                "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
            }
            generator = subprocess.Popen(
                [sys.executable, __file__, "--generator", json.dumps(config)], stdout=subprocess.PIPE, text=True
            )
            out, _ = generator.communicate()
            if generator.returncode != 0:
                raise SystemExit(f"the load generator failed ({generator.returncode})")
            report(json.loads(out), args, server.pid, generator.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
