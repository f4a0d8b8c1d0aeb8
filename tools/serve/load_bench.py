"""Load figures for `swiftclip serve` (issue 23): wrk on loopback against three servers, all started at
once and measured point by point in turn (interleaved, the order rotating), same model (convnext_v2_tiny,
random init, unless --model says otherwise):
  swift-batched    swiftclip serve --max-batch 32 --max-wait-ms 5
  swift-unbatched  swiftclip serve --max-batch 1
  python           tools/reference/serve_openclip.py (open_clip behind FastAPI/uvicorn)
Image embedding (one JPEG per request) and text embedding (one text per request) at concurrency
1, 8 and 32: requests/s, p50, p99 and, for SwiftCLIP, the mean batch size and the share of the
wall time its forward passes took (from /metrics: swiftclip_batch_size, swiftclip_pass_seconds).
Optionally a soak: RSS of the batched server every few seconds under concurrency 8.

Usage (from the repository root, after `swift build -c release --product swiftclip`):
  tools/reference/.venv/bin/python tools/serve/load_bench.py [--seconds 10] [--rounds 1] [--soak-seconds 0]
      [--model NAME|config.json] [--servers swift-batched,swift-unbatched,python] [--tag serve] [--chart docs/serving.png]
Writes benchmarks/results/<date>-<tag>.{json,md} and the chart.
"""
import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/swiftclip")
LUA = os.path.join(ROOT, "tools/serve/wrk_post.lua")
IMAGE = os.path.join(ROOT, "Tests/CLIPDataTests/Fixtures/flower.jpg")


def wait_ready(port, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise SystemExit(f"server on {port} never became ready")


def histogram_stats(port, metric="swiftclip_batch_size"):
    """(count, sum) of a /metrics histogram per queue: swiftclip_batch_size (items per pass) or
    swiftclip_pass_seconds (time of each forward pass)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except Exception:  # noqa: BLE001
        return {}
    out = {}
    for q in ("image", "text"):
        c = re.search(r'%s_count\{queue="%s"\} (\S+)' % (metric, q), text)
        s = re.search(r'%s_sum\{queue="%s"\} (\S+)' % (metric, q), text)
        out[q] = (float(c.group(1)) if c else 0.0, float(s.group(1)) if s else 0.0)
    return out


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def minor_faults(pid):
    """Minor page faults of the process so far (/proc/PID/stat field 10): each a first touch of a page."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def cpu_seconds(pid):
    """User + system CPU time of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, limit=120):
    """Waits until the server stops working through what the last point left queued (wrk stops
    sending at its end, but requests already queued still run their passes, and would take the
    cores from the next point's server): under 5% of a core over half a second."""
    end = time.time() + limit
    while time.time() < end:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            return


def wrk(port, route, body_file, content_type, concurrency, seconds):
    env = dict(os.environ, BODY_FILE=body_file, CONTENT_TYPE=content_type)
    cmd = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "30s",
           "-s", LUA, f"http://127.0.0.1:{port}{route}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("RESULT ")]
    return json.loads(line[0][len("RESULT "):])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--image-seconds", type=int, default=0, help="wrk duration of image points (default --seconds): a batched "
                   "pass of 32 convnext_v2_tiny images takes several seconds, so short windows see mostly its start-up")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--soak-seconds", type=int, default=0)
    p.add_argument("--model", default="convnext_v2_tiny", help="a built-in name or an open_clip JSON config")
    p.add_argument("--servers", default="swift-batched,swift-unbatched,python")
    p.add_argument("--routes", default="image,text")
    p.add_argument("--rounds", type=int, default=1, help="each point is measured once per round; the report keeps every round")
    p.add_argument("--tag", default="serve", help="results go to benchmarks/results/<date>-<tag>.{json,md}")
    p.add_argument("--chart", default="docs/serving.png", help="'' for none")
    p.add_argument("--buffer-reuse", default="", help="comma-separated SWIFTCLIP_BUFFER_REUSE ratios: one more batched server "
                   "for each (swift-batched-reuse<R>), to measure the engine's buffer-cache rule under load")
    a = p.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    text_file = "/tmp/swiftclip-serve-bench-text.json"
    with open(text_file, "w") as f:
        json.dump({"texts": ["a photo of a flower in a garden"]}, f)
    python = os.path.join(ROOT, "tools/reference/.venv/bin/python")
    every = {
        "swift-batched": [BIN, "serve", "--model", a.model, "--port", "8181", "--max-batch", "32", "--max-wait-ms", "5"],
        "swift-unbatched": [BIN, "serve", "--model", a.model, "--port", "8182", "--max-batch", "1", "--max-wait-ms", "0"],
        "python": [python, os.path.join(ROOT, "tools/reference/serve_openclip.py"), "--model", a.model, "--port", "8183", "--threads", "2"],
    }
    ports = {"swift-batched": 8181, "swift-unbatched": 8182, "python": 8183}
    envs = {}
    for i, ratio in enumerate(x for x in a.buffer_reuse.split(",") if x):
        name = f"swift-batched-reuse{ratio}"
        ports[name] = 8190 + i
        every[name] = every["swift-batched"][:5] + [str(ports[name])] + every["swift-batched"][6:]
        envs[name] = dict(os.environ, SWIFTCLIP_BUFFER_REUSE=ratio)
    names = [n for n in a.servers.split(",") if n] + [n for n in every if n.startswith("swift-batched-reuse")]
    servers = {n: every[n] for n in names}
    routes = [r for r in (("/v1/embeddings/image", IMAGE, "image/jpeg", "image"),
                          ("/v1/embeddings/text", text_file, "application/json", "text")) if r[3] in a.routes.split(",")]
    rows = []
    soak = []
    procs = {}
    peak = {}
    try:
        # Every server up at once (idle ones cost nothing), then each point measured on each server in
        # turn, the order rotating, so that the machine's load drifts over all of them alike.
        for name, cmd in servers.items():
            log = open(f"/tmp/swiftclip-serve-bench-{name}.log", "w")  # a file, never a pipe that could fill and block the server
            procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, env=envs.get(name))
        for name in servers:
            wait_ready(ports[name])
            peak[name] = rss_mb(procs[name].pid)
        turn = 0
        for rnd in range(a.rounds):
            for route, body, ctype, kind in routes:
                for c in levels:
                    for i in range(len(names)):
                        name = names[(i + turn) % len(names)]
                        before, passes_before = histogram_stats(ports[name]), histogram_stats(ports[name], "swiftclip_pass_seconds")
                        for other in procs.values():
                            wait_idle(other.pid)
                        faults, cpu = minor_faults(procs[name].pid), cpu_seconds(procs[name].pid)
                        r = wrk(ports[name], route, body, ctype, c, (a.image_seconds or a.seconds) if kind == "image" else a.seconds)
                        r["minor_faults_per_request"] = (minor_faults(procs[name].pid) - faults) / max(r["requests"], 1)
                        # The server's own CPU time per answered request (user + system, all threads): the work
                        # a request costs, much less disturbed by other processes on the cores than wall time.
                        r["cpu_ms_per_request"] = 1000 * (cpu_seconds(procs[name].pid) - cpu) / max(r["requests"], 1)
                        after, passes_after = histogram_stats(ports[name]), histogram_stats(ports[name], "swiftclip_pass_seconds")
                        if kind in after and kind in before and after[kind][0] > before[kind][0]:
                            r["mean_batch"] = (after[kind][1] - before[kind][1]) / (after[kind][0] - before[kind][0])
                        if kind in passes_after and kind in passes_before and passes_after[kind][0] > passes_before[kind][0]:
                            busy = passes_after[kind][1] - passes_before[kind][1]
                            items = after[kind][1] - before[kind][1]
                            # Share of the wall time spent in forward passes, and pass time per item.
                            r["pass_busy"] = busy / r["seconds"]
                            r["pass_ms_per_item"] = 1000 * busy / items if items else float("nan")
                        peak[name] = max(peak[name], rss_mb(procs[name].pid))
                        r.update(server=name, kind=kind, concurrency=c, round=rnd + 1)
                        rows.append(r)
                        print(json.dumps(r), flush=True)
                    turn += 1
        if "swift-batched" in servers and a.soak_seconds > 0:
            env = dict(os.environ, BODY_FILE=IMAGE, CONTENT_TYPE="image/jpeg")
            w = subprocess.Popen(["wrk", "-t", "2", "-c", "8", "-d", f"{a.soak_seconds}s", "--timeout", "30s", "-s", LUA,
                                  f"http://127.0.0.1:{ports['swift-batched']}/v1/embeddings/image"], env=env, stdout=subprocess.PIPE, text=True)
            start = time.time()
            while w.poll() is None:
                soak.append({"t": round(time.time() - start, 1), "rss_mb": round(rss_mb(procs["swift-batched"].pid), 1)})
                time.sleep(5)
            out = w.stdout.read()
            soak_result = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][0][7:])
            print("soak", json.dumps(soak_result), flush=True)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    for r in rows:
        r["peak_rss_mb"] = round(peak[r["server"]], 1)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = re.search(r"Model name:\s*(.*)", cpu)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d")
    load = os.getloadavg()
    result = {"date": datetime.datetime.utcnow().isoformat() + "Z", "cpu": model_name.group(1) if model_name else "?",
              "cores": os.cpu_count(), "seconds_per_point": a.seconds, "image_seconds_per_point": a.image_seconds or a.seconds, "rounds": a.rounds, "model": a.model, "rows": rows, "soak": soak,
              "load_average_at_end": load,
              "note": "one 2-core machine shared with other engineers' builds; wrk ran on the same cores; servers interleaved point by point"}
    os.makedirs(os.path.join(ROOT, "benchmarks/results"), exist_ok=True)
    with open(os.path.join(ROOT, f"benchmarks/results/{stamp}-{a.tag}.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = ["| round | server | route | concurrency | req/s | p50 ms | p99 ms | p99/p50 | mean batch | pass busy | pass ms/item | CPU ms/request | errors | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["kind"], r["concurrency"], names.index(r["server"]), r["round"])):
        ratio = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] else float("nan")
        lines.append(f"| {r['round']} | {r['server']} | {r['kind']} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{ratio:.2f} | {r.get('mean_batch', float('nan')):.2f} | {r.get('pass_busy', float('nan')):.2f} | "
                     f"{r.get('pass_ms_per_item', float('nan')):.1f} | {r['cpu_ms_per_request']:.0f} | {r['errors']} | {r['non2xx']} |")
    if soak:
        lines += ["", f"Soak (swift-batched, image, concurrency 8): RSS {soak[0]['rss_mb']} MB at start, "
                      f"{max(s['rss_mb'] for s in soak)} MB peak, {soak[-1]['rss_mb']} MB at {soak[-1]['t']} s."]
    with open(os.path.join(ROOT, f"benchmarks/results/{stamp}-{a.tag}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if a.chart:
        chart(rows, os.path.join(ROOT, a.chart), names, a.model)


def chart(rows, path, servers, model):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = sorted({r["kind"] for r in rows})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        levels = sorted({r["concurrency"] for r in rows})
        width = 0.8 / len(servers)
        for i, s in enumerate(servers):
            # The median over rounds.
            vals = []
            for c in levels:
                got = sorted(r["rps"] for r in rows if r["server"] == s and r["kind"] == kind and r["concurrency"] == c)
                vals.append(got[len(got) // 2] if got else 0)
            ax.bar([x + i * width for x in range(len(levels))], vals, width, label=s)
        ax.set_xticks([x + width for x in range(len(levels))], [f"c={c}" for c in levels])
        ax.set_title(f"{kind} embedding, requests/s (higher is better)")
        ax.legend()
    fig.suptitle(f"swiftclip serve vs open_clip + FastAPI, {os.path.basename(model)}, 2 shared cores, wrk on loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
