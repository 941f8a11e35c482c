"""Prints the median of every criterion benchmark under target/criterion, as time per
iteration and, where the benchmark declared a throughput, elements per second."""
import json
import pathlib

root = pathlib.Path("target/criterion")
for estimates in sorted(root.glob("*/*/new/estimates.json")):
    bench = estimates.parent.parent
    median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
    line = f"{bench.parent.name}/{bench.name}: median {median_ns / 1000:.1f} us per iteration"
    info = json.loads((estimates.parent / "benchmark.json").read_text())
    elements = (info.get("throughput") or {}).get("Elements")
    if elements:
        line += f", {elements / (median_ns / 1e9) / 1e6:.2f} M elements/s"
    print(line)
