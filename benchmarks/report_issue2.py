#!/usr/bin/env python3
"""Collect the per-process JSON files of run_issue2.sh into one JSON + a Markdown table."""
import argparse
import glob
import json
import os
import platform
import subprocess
import sys


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""


def machine_info():
    lscpu = {}
    for line in sh("LC_ALL=C lscpu").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            lscpu[k.strip()] = v.strip()
    flags = lscpu.get("Flags", "").split()
    return {
        "cpu_model": lscpu.get("Model name", "?"),
        "cpus": lscpu.get("CPU(s)", "?"),
        "cores_per_socket": lscpu.get("Core(s) per socket", "?"),
        "threads_per_core": lscpu.get("Thread(s) per core", "?"),
        "cpu_family_model": f"{lscpu.get('CPU family', '?')}/{lscpu.get('Model', '?')}",
        "simd": [f for f in flags if f.startswith("avx512") or f in ("avx2", "fma")],
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "mem_total": sh("free -h | awk '/Mem:/{print $2}'"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--json-out", required=True)
    ap.add_argument("--md-out", required=True)
    ap.add_argument("--swift-version", default="")
    ap.add_argument("--swift-bin", default="")
    ap.add_argument("--have-swift", default="1")
    a = ap.parse_args()

    rows, errors = [], []
    for f in sorted(glob.glob(os.path.join(a.raw, "*.json"))):
        try:
            data = json.load(open(f))
        except Exception as e:  # a failed run leaves a broken file
            errors.append(f"{os.path.basename(f)}: {e}")
            continue
        for i, r in enumerate(data if isinstance(data, list) else [data]):
            r["run_order"] = int(os.path.basename(f).split("-")[0])
            r["round"] = int(os.path.basename(f).rsplit("-r", 1)[1].split(".")[0])
            rows.append(r)
    load = {k: open(os.path.join(a.raw, k)).read().strip()
            for k in ("load_start", "load_end") if os.path.exists(os.path.join(a.raw, k))}
    versions = {}
    for r in rows:
        for k, v in (r.get("versions") or {}).items():
            versions.setdefault(k, v)
    info = {
        "machine": machine_info(),
        "load_average": load,
        "swift": a.swift_version,
        "swiftclip_commit": sh("git rev-parse --short HEAD"),
        "peer_versions": versions,
        "notes": ("median of repeated runs after warm-up, one process per (system, tower, batch); "
                  "systems interleaved per configuration; peak_rss_mb = ru_maxrss of that process"),
        "errors": errors,
        "results": rows,
    }
    with open(a.json_out, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")

    m = info["machine"]
    lines = [
        f"# Benchmark — {a.model}: SwiftCLIP vs PyTorch vs ONNX Runtime",
        "",
        f"- CPU: {m['cpu_model']} ({m['cpus']} CPUs, {m['cores_per_socket']} cores/socket, "
        f"{m['threads_per_core']} thread/core, family/model {m['cpu_family_model']}), {m['mem_total']} RAM, "
        f"{m['os']}, kernel {m['kernel']}",
        f"- SIMD: {' '.join(m['simd'])}",
        f"- load average at start / end: {load.get('load_start', '?')} / {load.get('load_end', '?')}",
        f"- Swift: {a.swift_version or '?'}; SwiftCLIP commit {info['swiftclip_commit']}"
        + ("" if a.have_swift == "1" else " — **swiftclip binary missing, no SwiftCLIP rows**"),
        "- peers: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v),
        "- latency = median wall time per forward after warm-up (p10–p90 in brackets); one process per "
        "(system, tower, batch), systems alternated per configuration; peak RSS = ru_maxrss of that process",
        "",
        "| model | tower | batch | system | median ms | p10–p90 ms | items/s | peak RSS MB | params | runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    key = lambda r: (r.get("model", ""), r.get("tower", ""), int(r.get("batch", 0)), r.get("system", ""), r.get("round", 0))
    for r in sorted(rows, key=key):
        p10, p90 = r.get("p10_ms"), r.get("p90_ms")
        spread = f"{p10:.1f}–{p90:.1f}" if p10 is not None and p90 is not None else ""
        params = r.get("params")
        lines.append(
            f"| {r.get('model')} | {r.get('tower')} | {r.get('batch')} | {r.get('system')} | {r.get('median_ms', float('nan')):.1f} | "
            f"{spread} | {r.get('items_per_s', float('nan')):.2f} | {r.get('peak_rss_mb', float('nan')):.0f} | "
            f"{params:,} | {r.get('repeats', '')} |" if isinstance(params, int) else
            f"| {r.get('model')} | {r.get('tower')} | {r.get('batch')} | {r.get('system')} | {r.get('median_ms')} | {spread} | "
            f"{r.get('items_per_s')} | {r.get('peak_rss_mb')} | {params} | {r.get('repeats', '')} |")
    if errors:
        lines += ["", "Errors: " + "; ".join(errors)]
    with open(a.md_out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
