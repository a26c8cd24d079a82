#!/usr/bin/env python3
"""bench/plot on garbage: usage errors exit 2, unreadable or series-less
reports exit 1 with a message, a good synthetic report gives an SVG with its
lines. (tests/integration/profiles_test.cpp plots a real pulse-sim report.)"""
import json
import os
import subprocess
import sys
import tempfile

PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot")


def run(*args):
    return subprocess.run([sys.executable, PLOT, *args], capture_output=True, text=True, timeout=60)


def main():
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as d:
        check(run().returncode == 2, "no arguments: exit 2")
        check(run("a", "b", "c").returncode == 2, "three arguments: exit 2")
        r = run(os.path.join(d, "missing.json"))
        check(r.returncode == 1 and "missing.json" in r.stderr, "missing file: exit 1 naming it")
        for name, text in [("notjson", "{{"), ("noseries", "{}"), ("emptyseries", '{"series":[]}'),
                           ("badrow", '{"series":[{"t":0}]}'), ("array", "[1,2]"),
                           ("badtypes", '{"series":[{"t":"x","acked":"y"}]}')]:
            p = os.path.join(d, name + ".json")
            with open(p, "w") as f:
                f.write(text)
            r = run(p, os.path.join(d, name + ".svg"))
            check(r.returncode == 1 and r.stderr.startswith("plot: "), f"{name}: exit 1 with a message (got {r.returncode} {r.stderr!r})")
        good = {"profile": "meter", "devices": 2, "acked": 30, "throughput_per_s": 10,
                "series": [{"t": t, "acked": 10, "frames": 10,
                            "ack_latency_ms": {"count": 10, "p50": 1, "p99": 2, "max": 3}} for t in range(3)]}
        p = os.path.join(d, "good.json")
        with open(p, "w") as f:
            json.dump(good, f)
        r = run(p)
        svg_path = os.path.join(d, "good.svg")
        check(r.returncode == 0 and os.path.exists(svg_path), f"good report: exit 0 and good.svg ({r.stderr})")
        if os.path.exists(svg_path):
            svg = open(svg_path).read()
            check(svg.count("<polyline") == 4, "acked + 3 latency lines drawn")
            check("push p50" not in svg, "no push lines without --subscribe data")
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
