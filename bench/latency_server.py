"""A fixed-latency OpenAI-compatible server for benchmarks: every chat completion answers after
exactly LATENCY seconds, at most CAP at a time (argv 3; the rest wait their turn, as a server with
a fixed number of slots would). A raw ASGI app on uvicorn, so the server costs little CPU.
GET /stats returns the arrival times of all requests (server clock), for throughput."""

import asyncio
import json
import sys
import time

LATENCY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
CAP = int(sys.argv[3]) if len(sys.argv) > 3 else 0
arrivals: list[float] = []
slots = None
BODY = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x " * 100},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 60, "completion_tokens": 100, "total_tokens": 160}}).encode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        data = json.dumps(arrivals).encode()
    else:
        global slots
        arrivals.append(time.time())
        while (await receive()).get("more_body"):
            pass
        if CAP:
            slots = slots or asyncio.Semaphore(CAP)
            async with slots:
                await asyncio.sleep(LATENCY)
        else:
            await asyncio.sleep(LATENCY)
        data = BODY
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", backlog=4096)
