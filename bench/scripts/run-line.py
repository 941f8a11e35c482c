"""One load run's line for the A/B scripts: "MODE SIDE N/s p99 X ms" from the loadgen summary
in the log named (as bench/scripts/medians.py reads it), or a note that the run gave none.
    python3 bench/scripts/run-line.py LOG MODE SIDE"""
import json
import sys

log, mode, side = sys.argv[1:]
summary = next((json.loads(l) for l in open(log)
                if l.startswith('{"accepted"') and '"latency_us"' in l), None)
if summary is None:
    print(f"{mode} {side} no summary (see {log})")
else:
    print(f"{mode} {side} {summary['messages_per_second']:.0f}/s "
          f"p99 {summary['latency_us']['p99'] / 1000:.1f} ms")
