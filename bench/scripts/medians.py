"""Medians of A/B load runs: reads lines "MODE SIDE N/s p99 X ms [cpu Y us/msg] ..." (as the
ab-*.sh scripts print them, one per run) from the file named, and prints, per mode and side,
the median rate, p99 and CPU per message (when the runs gave it) with each run's figure."""
import re
import statistics
import sys

runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) (\w+) (\d+)/s p99 ([\d.]+) ms(?: cpu ([\d.?]+))?", line)
    if m:
        runs.setdefault((m[1], m[2]), []).append((int(m[3]), float(m[4]), m[5]))
for (mode, side), values in sorted(runs.items()):
    rates = [v[0] for v in values]
    p99s = [v[1] for v in values]
    cpus = [float(v[2]) for v in values if v[2] not in (None, "?")]
    cpu = f", cpu {statistics.median(cpus)} us/msg" if cpus else ""
    print(f"{mode} {side}: {statistics.median(rates):.0f}/s (runs {rates}), "
          f"p99 {statistics.median(p99s):.1f} ms (runs {p99s}){cpu}")
