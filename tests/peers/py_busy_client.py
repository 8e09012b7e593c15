"""A python-websockets client with its own keepalive (ping every 0.2 s, closed when a pong
takes over 0.4 s), for tests/busy_handler.rs: sends "request", waits up to 6 s for the
server's text answer, and says what came first. Usage: py_busy_client.py URL"""
import asyncio
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def main(url: str) -> None:
    async with connect(url, ping_interval=0.2, ping_timeout=0.4, close_timeout=0.5) as ws:
        start = time.monotonic()
        await ws.send("request")
        try:
            async with asyncio.timeout(6):
                while True:
                    msg = await ws.recv()
                    if isinstance(msg, str):
                        print(f"answer {msg} {time.monotonic() - start:.3f}", flush=True)
                        return
        except ConnectionClosed:
            print(f"closed {ws.close_code} {time.monotonic() - start:.3f}", flush=True)
        except TimeoutError:
            print("timeout", flush=True)


asyncio.run(main(sys.argv[1]))
