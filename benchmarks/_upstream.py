"""A fast local upstream/provider for the benchmarks, in its own process (asyncio, keep-alive).

    python benchmarks/_upstream.py PORT [DELAY_MS]

Answers every request with ``{"ok": true, "email": "someone@provider.test"}`` after DELAY_MS
(without blocking other requests), so it stands for an API, a provider's verification
endpoint, a token endpoint or a webhook receiver, and is never the bottleneck itself.
"""

from __future__ import annotations

import asyncio
import json
import sys

BODY = json.dumps(
    {
        "ok": True,
        "email": "someone@provider.test",
        "access_token": "bench-access-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "bench-refresh-token",
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if delay:
                await asyncio.sleep(delay)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int, delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, delay), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2] if len(sys.argv) > 2 else 0) / 1000))
