"""A python-websockets echo server for tests/peers.rs on 127.0.0.1 (port printed).
Usage: py_server.py on|off INTERVAL_SECONDS"""
import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(keepalive: bool, interval: float) -> None:
    options = (
        {"ping_interval": interval, "ping_timeout": 3 * interval}
        if keepalive
        else {"ping_interval": None, "ping_timeout": None}
    )
    async with serve(echo, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main(sys.argv[1] == "on", float(sys.argv[2])))
