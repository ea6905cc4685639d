#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction.

usage: delay-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Stands in for netem where the kernel has no sch_netem: a request and its
reply each wait DELAY_MS, so the round trip grows by 2 * DELAY_MS while
throughput stays that of loopback (data is queued, not throttled).

Built on asyncio protocols rather than streams: each chunk that arrives
costs one queue append, and one timer per direction releases whatever is
due, so the proxy spends little CPU per byte (the bench runs it beside the
server and the tools on the same cores). Order is kept per direction; a
side whose peer cannot keep up stops reading (flow control), as TCP would.
"""
import asyncio
import collections
import sys


class Half(asyncio.Protocol):
    """One side of a proxied connection: what it receives goes, DELAY
    later, to its peer."""

    def __init__(self, delay):
        self.delay = delay
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.peer = None
        self.queue = collections.deque()  # (due, bytes, or None for EOF)
        self.timer = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.push(data)

    def eof_received(self):
        self.push(None)
        return True  # keep the transport open for the other direction

    def connection_lost(self, exc):
        self.closed = True
        self.push(None)

    def pause_writing(self):
        if self.peer and self.peer.transport:
            self.peer.transport.pause_reading()

    def resume_writing(self):
        if self.peer and self.peer.transport:
            self.peer.transport.resume_reading()

    def push(self, data):
        self.queue.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self.release)

    def release(self):
        """Hand the peer everything that is due, in order."""
        self.timer = None
        if self.peer is None or self.peer.transport is None:
            # The server side is still connecting; try again shortly.
            self.timer = self.loop.call_later(0.001, self.release)
            return
        now = self.loop.time()
        out = self.peer.transport
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                if out.can_write_eof() and not self.closed:
                    out.write_eof()
                else:
                    out.close()
                if self.closed and self.peer.closed:
                    out.close()
                continue
            if not out.is_closing():
                out.write(data)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.release)


async def main():
    listen, target, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = delay_ms / 1000
    loop = asyncio.get_running_loop()

    def accept():
        client = Half(delay)

        async def connect():
            try:
                _, server = await loop.create_connection(
                    lambda: Half(delay), "127.0.0.1", target
                )
            except OSError:
                if client.transport:
                    client.transport.close()
                return
            server.peer, client.peer = client, server

        loop.create_task(connect())
        return client

    server = await loop.create_server(accept, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
