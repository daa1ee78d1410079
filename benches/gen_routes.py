#!/usr/bin/env python3
"""Print a Portico `routes:` section with N routes, all pointing at one upstream.

Used by the "routes10k" benchmark scenario (benches/scenarios.sh). The routes mix every
kind of match the router supports, so that no single fast path covers them all:

    i % 4 == 0   hosts: [svc{i}.example.com]     paths: ["/svc{i}/status"]        exact path, GET only
    i % 4 == 1   hosts: ["*.svc{i}.example.com"] paths: ["/svc{i}/users/{id}"]    wildcard host, {param}
    i % 4 == 2   hosts: [svc{i}.example.com]     paths: ["/svc{i}/*"]             exact host, prefix
    i % 4 == 3   (any host)                      paths: ["/svc{i}", "/svc{i}/*"]  no host, exact + prefix

Route ids are `svc-{i}`, i = 0 .. N-1. A request for route i (i % 4 == 2), e.g. the one
the benchmark sends, is `Host: svc{i}.example.com` + `GET /svc{i}/api/items`.

usage: gen_routes.py N UPSTREAM_ID
"""

import sys


def route(i: int, upstream: str) -> str:
    kind = i % 4
    if kind == 0:
        match = f'hosts: [svc{i}.example.com], paths: ["/svc{i}/status"], methods: [GET]'
    elif kind == 1:
        match = f'hosts: ["*.svc{i}.example.com"], paths: ["/svc{i}/users/{{id}}"]'
    elif kind == 2:
        match = f'hosts: [svc{i}.example.com], paths: ["/svc{i}/*"]'
    else:
        match = f'paths: ["/svc{i}", "/svc{i}/*"]'
    return f"  - {{ id: svc-{i}, {match}, upstream: {upstream} }}\n"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    n, upstream = int(sys.argv[1]), sys.argv[2]
    out = ["routes:\n"]
    out.extend(route(i, upstream) for i in range(n))
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
