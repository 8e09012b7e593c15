"""A python-websockets client for tests/peers.rs that reconnects the way websockets
documents it (`async for ws in connect(url)`): prints "connected", then "closed CODE" when
the server closes, and connects again. Usage: py_reconnecting_client.py URL"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def main(url: str) -> None:
    async for ws in connect(url, ping_interval=None):
        print("connected", flush=True)
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        print(f"closed {ws.close_code}", flush=True)


asyncio.run(main(sys.argv[1]))
