"""A python-websockets client for tests/peers.rs: connects, reads (which answers pings),
and reports. Usage: py_client.py URL on|off INTERVAL_SECONDS"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def main(url: str, keepalive: bool, interval: float) -> None:
    options = (
        {"ping_interval": interval, "ping_timeout": 3 * interval}
        if keepalive
        else {"ping_interval": None, "ping_timeout": None}
    )
    async with connect(url, **options) as ws:
        print("connected", flush=True)
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        print(f"closed {ws.close_code}", flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2] == "on", float(sys.argv[3])))
