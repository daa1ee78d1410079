#!/usr/bin/env python3
"""Helpers for benches/run.sh.

  report.py parse WRK_OUTPUT_FILE EXPECT
      Print `requests rps p50_us p99_us errors` (space-separated) from wrk --latency output.
      errors = socket errors + responses whose status is not the expected one (wrk only
      tells "status >= 400", so that is what is counted).

  report.py parse-h2load H2LOAD_OUTPUT_FILE H2LOAD_LOG_FILE EXPECT
      The same from h2load: counts and req/s from its output, p50/p99 from its --log-file
      (one line per request: start time, status, microseconds to the end of the response).
      errors = failed + errored + timed-out requests + responses whose status is not EXPECT.

  report.py summary RESULTS_TSV
      Print the markdown report: medians over rounds per scenario and proxy, Portico/nginx
      ratios (median of the per-round paired ratios, with their range), and each
      scenario's Portico throughput relative to the "plain" scenario.
"""

import csv
import re
import statistics
import sys
from collections import defaultdict

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * UNITS_US[m.group(2)]


def parse(path: str, expect: int) -> None:
    text = open(path, encoding="utf-8", errors="replace").read()
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if not m:
        sys.exit(f"no request count in wrk output {path}:\n{text}")
    requests = int(m.group(1))
    rps = float(re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M).group(1))
    pct = dict(re.findall(r"^\s*(50|99)%\s+(\S+)", text, re.M))
    p50, p99 = to_us(pct["50"]), to_us(pct["99"])
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad_n = int(bad.group(1)) if bad else 0
    errors += bad_n if expect < 400 else requests - bad_n
    print(requests, f"{rps:.1f}", f"{p50:.0f}", f"{p99:.0f}", errors)


def parse_h2load(path: str, log_path: str, expect: int) -> None:
    text = open(path, encoding="utf-8", errors="replace").read()
    m = re.search(r"^finished in [^,]+, ([0-9.]+) req/s", text, re.M)
    counts = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
        re.M,
    )
    if not m or not counts:
        sys.exit(f"no results in h2load output {path}:\n{text}")
    rps = float(m.group(1))
    done, failed, errored, timeout = (int(counts.group(i)) for i in (3, 5, 6, 7))
    latencies, wrong = [], 0
    for line in open(log_path, encoding="utf-8"):
        fields = line.split()
        if len(fields) < 3:
            continue
        latencies.append(int(fields[2]))
        wrong += int(fields[1]) != expect
    if not latencies:
        sys.exit(f"no requests in h2load log {log_path}")
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(done, f"{rps:.1f}", pick(0.50), pick(0.99), failed + errored + timeout + wrong)


def fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def ratio_cell(values: list) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3f}"
    return f"**{med:.3f}** ({min(values):.3f}–{max(values):.3f})"


def summary(path: str) -> None:
    rows = list(csv.DictReader(open(path, encoding="utf-8"), delimiter="\t"))
    if not rows:
        sys.exit("no results")
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    # baselines first (in name order), then Portico: a stable order whatever the rotation
    proxies = sorted({r["proxy"] for r in rows}, key=lambda p: (p == "portico", p))
    by = defaultdict(list)  # (scenario, proxy) -> rows
    per_round = {}  # (scenario, proxy, round) -> row
    for r in rows:
        by[(r["scenario"], r["proxy"])].append(r)
        per_round[(r["scenario"], r["proxy"], r["round"])] = r
    rounds = sorted({r["round"] for r in rows}, key=int)

    def med(rs, key):
        return statistics.median(float(r[key]) for r in rs)

    out = []
    out.append(f"Medians over {len(rounds)} interleaved rounds.\n")
    out.append("| scenario | proxy | req/s | p50 | p99 | CPU µs/req | proxy core busy | other load on that core | RSS after | errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in scenarios:
        for p in proxies:
            rs = by.get((s, p))
            if not rs:
                continue
            errors = sum(int(r["errors"]) for r in rs)
            out.append(
                f"| {s} | {p} | {med(rs, 'rps'):,.0f} | {fmt_us(med(rs, 'p50_us'))} | "
                f"{fmt_us(med(rs, 'p99_us'))} | {med(rs, 'cpu_us_per_req'):.1f} | "
                f"{med(rs, 'proxy_core_pct'):.0f}% | {med(rs, 'core_other_pct'):.1f}% | "
                f"{med(rs, 'rss_kib') / 1024:.1f} MiB | {errors} |"
            )

    def paired(s1, p1, s2, p2, key):
        vals = []
        for rd in rounds:
            a, b = per_round.get((s1, p1, rd)), per_round.get((s2, p2, rd))
            if a and b and float(b[key]) > 0:
                vals.append(float(a[key]) / float(b[key]))
        return vals

    baselines = [p for p in proxies if p != "portico"]
    if "portico" in proxies and baselines:
        out.append("")
        out.append("Portico / baseline, median of the per-round ratios (range in brackets); "
                   "req/s: higher is better, CPU µs/req: lower is better.\n")
        head = "| scenario |"
        for b in baselines:
            head += f" req/s vs {b} | CPU/req vs {b} |"
        out.append(head)
        out.append("|---|" + "---:|---:|" * len(baselines))
        for s in scenarios:
            line = f"| {s} |"
            for b in baselines:
                line += (f" {ratio_cell(paired(s, 'portico', s, b, 'rps'))} |"
                         f" {ratio_cell(paired(s, 'portico', s, b, 'cpu_us_per_req'))} |")
            out.append(line)
    others = [s for s in scenarios if s != "plain"]
    if "plain" in scenarios and others and "portico" in proxies:
        out.append("")
        out.append("Portico in each scenario / Portico in `plain`, same round:\n")
        out.append("| scenario | req/s ratio | CPU µs/req ratio |")
        out.append("|---|---:|---:|")
        for s in others:
            out.append(
                f"| {s} / plain | {ratio_cell(paired(s, 'portico', 'plain', 'portico', 'rps'))} | "
                f"{ratio_cell(paired(s, 'portico', 'plain', 'portico', 'cpu_us_per_req'))} |"
            )
    busy = [r for r in rows if float(r["core_other_pct"]) > 5]
    if busy:
        out.append("")
        out.append(
            f"NOTE: in {len(busy)} of {len(rows)} measurements something else used more than 5% of "
            "the proxy's core (column \"other load on that core\"). There, req/s and latency "
            "describe the machine's load as much as the proxy (a preempted proxy serves fewer "
            "requests); CPU µs/req is the figure that stays comparable."
        )
    total_errors = sum(int(r["errors"]) for r in rows)
    if total_errors:
        out.append("")
        out.append(f"WARNING: {total_errors} failed requests in total; see the wrk outputs.")
    print("\n".join(out))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "parse":
        parse(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "parse-h2load":
        parse_h2load(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
