"""Python `websockets` keepalive at N connections, for comparison with benches/scale.rs:
memory per connection and CPU per ping round per connection, with the server's keepalive on
(ping every 2 s) and off. Server and clients run in two processes (file descriptor limits);
CPU is counted in both, as scale.rs counts both ends.

    $WS_HEARTBEAT_PYTHON benches/python_keepalive.py 10000   (the venv of .ci/run)

With a second argument, the executable of `benches/keepalive_server.rs` (built by `cargo
bench --no-run`), it measures that Rust server too, the same way, with the same Python
clients: server RSS with the heartbeat on and off.
"""
import asyncio
import logging
import os
import subprocess
import sys
import time

INTERVAL = 2.0
ROUNDS = 5


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def serve(keepalive: bool) -> None:
    from websockets.asyncio.server import serve as ws_serve

    # The measurement ends by killing the clients: no need for a traceback per connection.
    logging.disable(logging.CRITICAL)

    async def handler(ws):
        async for _ in ws:
            pass

    options = {"ping_interval": INTERVAL, "ping_timeout": 3 * INTERVAL} if keepalive else {"ping_interval": None}
    async with ws_serve(handler, "127.0.0.1", 0, max_queue=1, **options) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()


async def clients(port: int, n: int) -> None:
    from websockets.asyncio.client import connect

    async def one():
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, max_queue=1) as ws:
            async for _ in ws:
                pass

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one()))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    print("connected", flush=True)
    await asyncio.gather(*tasks)


def measure(n: int, keepalive: bool, rust_server: str | None = None) -> tuple[float, float, float]:
    """Server memory per connection, CPU of both processes, CPU of the server alone."""
    me = sys.executable
    mode = "on" if keepalive else "off"
    command = [rust_server, mode] if rust_server else [me, __file__, "serve", mode]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    port = server.stdout.readline().strip()
    idle_rss = rss_kib(server.pid)
    client = subprocess.Popen([me, __file__, "clients", port, str(n)], stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "connected"
    time.sleep(INTERVAL)  # every connection set up and pinged once
    memory = (rss_kib(server.pid) - idle_rss) * 1024 / n
    server_before, client_before = cpu_seconds(server.pid), cpu_seconds(client.pid)
    time.sleep(INTERVAL * ROUNDS)
    server_cpu = cpu_seconds(server.pid) - server_before
    cpu = server_cpu + cpu_seconds(client.pid) - client_before
    for process in (server, client):
        process.kill()
        process.wait()
    return memory, cpu, server_cpu


def main() -> None:
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2] == "on"))
    elif sys.argv[1] == "clients":
        asyncio.run(clients(int(sys.argv[2]), int(sys.argv[3])))
    else:
        n = int(sys.argv[1])
        servers = [("python websockets", None)]
        if len(sys.argv) > 2:
            servers.append(("rust ws-heartbeat", sys.argv[2]))
        for name, rust_server in servers:
            off_memory, off_cpu, off_server = measure(n, False, rust_server)
            on_memory, on_cpu, on_server = measure(n, True, rust_server)
            per_round = (on_cpu - off_cpu) / (n * ROUNDS) * 1e6
            server_round = (on_server - off_server) / (n * ROUNDS) * 1e6
            print(f"{name}, N = {n}: server memory {off_memory:.0f} B per connection without keepalive, "
                  f"{on_memory:.0f} B with (+{on_memory - off_memory:.0f} B); CPU over {ROUNDS} rounds of {INTERVAL} s: "
                  f"{off_cpu:.2f} s without, {on_cpu:.2f} s with: {per_round:.1f} µs per round per connection "
                  f"(the server alone: {server_round:.1f} µs)", flush=True)

main()
