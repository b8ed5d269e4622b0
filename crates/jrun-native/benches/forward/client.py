# The bench's load generator: CLIENTS workers start together; each makes REQUESTS sequential
# GETs, each on a fresh connection, to HOST:PORT. Prints one JSON line: requests, errors by
# kind (an "empty" reply is a connection closed before any byte came back), requests/s and
# latency percentiles (connect to the last byte) in ms.
import asyncio
import json
import sys
import time

host, port, clients, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
TIMEOUT = 15.0
REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n"

latencies = []
errors = {"empty": 0, "refused": 0, "reset": 0, "timeout": 0, "bad": 0, "other": 0}


async def one():
    t0 = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        writer.write(REQUEST)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        if not data:
            errors["empty"] += 1
        elif not data.startswith(b"HTTP/1.0 200") or not data.endswith(b"ok\n"):
            errors["bad"] += 1
        else:
            latencies.append((time.monotonic() - t0) * 1000)
    except asyncio.TimeoutError:
        errors["timeout"] += 1
    except ConnectionRefusedError:
        errors["refused"] += 1
    except ConnectionResetError:
        errors["reset"] += 1
    except OSError:
        errors["other"] += 1
    finally:
        if writer is not None:
            writer.close()


async def worker(start):
    await start.wait()
    for _ in range(requests):
        await one()


async def main():
    start = asyncio.Event()
    tasks = [asyncio.create_task(worker(start)) for _ in range(clients)]
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    start.set()
    await asyncio.gather(*tasks)
    return time.monotonic() - t0


elapsed = asyncio.run(main())
lat = sorted(latencies)


def pct(p):
    return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None


print(json.dumps({
    "requests": clients * requests,
    "ok": len(lat),
    "errors": sum(errors.values()),
    "by_kind": {k: v for k, v in errors.items() if v},
    "rps": round(clients * requests / elapsed),
    "p50": pct(50),
    "p99": pct(99),
    "max": round(lat[-1], 1) if lat else None,
}))
