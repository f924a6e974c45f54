"""A plain script: JSON lines to a file, fields, bind, an exception, many threads.

python example_apps/basic.py /tmp/basic.log
"""

from __future__ import annotations

import sys
import threading

import kakashi


def main(path: str) -> None:
    kakashi.configure(format="json", sink=path, level="INFO")
    log = kakashi.get_logger("example.basic")
    log.info("starting", version="1.0")

    def worker(n: int) -> None:
        job = log.bind(worker=n)
        for i in range(100):
            job.info("job step", step=i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed", key="missing")
    log.info("done", stats=kakashi.stats())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "basic.log")
