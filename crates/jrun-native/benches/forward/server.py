# The bench's jail server: answers every connection with one small HTTP response and closes.
# asyncio with a listen queue of 4096, so the server's own queue never limits the bench.
import asyncio
import sys

BODY = b"ok\n"
REPLY = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)


async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(REPLY)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
