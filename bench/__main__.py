"""`python -m bench delivery` runs both benchmarks; `fanout` or `inbox` runs one.

`python -m bench policies [--size N]` runs the delivery-policies benchmark (bench/policies.py).

`python -m bench websockets [...]` runs the WebSocket benchmark (bench/websockets.py, its own options);
`python -m bench inbox-http [...]` the inbox endpoints over real HTTP (bench/inbox_http.py);
`python -m bench inbox-instructions [...]` their CPU instructions per request (bench/inbox_instructions.py);
`python -m bench chaos [...]` the fault benchmark (bench/chaos.py, its own options);
`python -m bench digests [...]` the digest benchmark (bench/digests.py, its own options);
`python -m bench dispatch [...]` deliveries per second to a null provider (bench/dispatch.py, its own options).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench import common

# The HTTP measurements make a couple of thousand calls a minute as one user:
# the throttles stay in the request path, with limits they never reach.
os.environ.setdefault("THROTTLE_USER_RATE", "1000000/minute")
os.environ.setdefault("THROTTLE_PLATFORM_RATE", "1000000/minute")


def main() -> None:
    if sys.argv[1:2] == ["websockets"]:
        from bench import websockets

        sys.argv = ["python -m bench websockets", *sys.argv[2:]]
        websockets.main()
        return
    if sys.argv[1:2] == ["digests"]:
        from bench import digests

        digests.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["inbox-http"]:
        from bench import inbox_http

        inbox_http.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["inbox-instructions"]:
        from bench import inbox_instructions

        inbox_instructions.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["dispatch"]:
        from bench import dispatch

        dispatch.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["chaos"]:
        from bench import chaos

        chaos.main()
        return
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", choices=["delivery", "fanout", "inbox", "policies"], nargs="?", default="delivery")
    parser.add_argument("--sizes", default="10000,100000", help="fan-out audience sizes (comma separated)")
    parser.add_argument("--calls", type=int, default=1000, help="inbox calls per measurement")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the 2M-row inbox data set")
    parser.add_argument("--size", type=int, default=100_000, help="policies: recipients per send")
    parser.add_argument("--no-baseline", action="store_true", help="fanout: the pipeline only (no per-row baseline)")
    args = parser.parse_args()
    if args.which == "policies":
        # Our side only: SMS accepted at once by a null backend.
        os.environ.setdefault("NOTIFY_SMS_BACKEND", "bench.null_backend.NullBackend")
    common.setup()
    if args.which == "policies":
        from celery import current_app

        from bench import policies

        # No worker in this process: large sends are dispatched by the caller.
        current_app.conf.task_always_eager = True
        policies.run(size=args.size)
        return
    if args.which in ("delivery", "fanout"):
        from bench import fanout

        fanout.run(sizes=[int(s) for s in args.sizes.split(",")], baseline=not args.no_baseline)
    if args.which in ("delivery", "inbox"):
        from bench import inbox

        inbox.run(calls=args.calls, rebuild=args.rebuild)


if __name__ == "__main__":
    main()
