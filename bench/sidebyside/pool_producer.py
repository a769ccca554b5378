#!/usr/bin/python3
"""The producer of the redis-py pool in bench/sidebyside: LPUSH N JSON jobs
of a 1 KB text mail, --batch per pipelined LPUSH (the fastest redis-py
has), then one JSON line: jobs, seconds, CPU seconds.

Usage: pool_producer.py REDIS_URL QUEUE N BODY_FILE [BATCH]
"""
import json
import sys
import time

import redis


def main():
    url, queue, n, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    with open(body) as f:
        text = f.read()
    r = redis.Redis.from_url(url)
    t0 = time.monotonic()
    for i in range(0, n, batch):
        r.lpush(queue, *(json.dumps({"from": "bench@platform.example", "to": f"user{j}.0@example.com",
                                     "subject": "Your invoice from ACME (benchmark)", "text": text})
                         for j in range(i, min(n, i + batch))))
    s = time.monotonic() - t0
    print(json.dumps({"n": n, "seconds": s, "rate": n / s, "cpu_s": time.process_time()}))


if __name__ == "__main__":
    main()
