#!/usr/bin/env python3
"""Legitimate connections per second under a SYN flood, on the testbed.

floodgate (HTTP on 198.18.0.1:80, one shard on core 0, default limits: a
65,536-entry table, a half-open budget of 1/8 of it, cookies in XDP under a
flood) against floodgate-load `cps` from 198.18.0.10-.41 (core 1), first
alone, then with floodgate-load's SYN flood from 198.18.0.42-.73 beside it
(`--flood-sources`, the same thread: the two sides of the veth have one core
each). SYN-ACKs to the flood's sources are dropped by nftables in the client
namespace, as replies to spoofed addresses vanish. Rounds alternate: without,
with (`--flood-seconds`, 60 s by default), without. During the flood the
server's resident memory (VmRSS) is sampled every second.

Beside every figure: the CPU model (lscpu) and the steal time of the run
(from /proc/stat): the machine is a shared VM. Uses the benchmark's testbed
(FG_TESTBED_NS=fgb) and its lock, like compare.py, whose helpers it uses.
Writes results/flood.json and results/flood.md. Needs root.
"""

import argparse
import fcntl
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as c  # noqa: E402

LEGIT = "198.18.0.10-198.18.0.41"
FLOOD = "198.18.0.42-198.18.0.73"


def cpu_model():
    for line in c.sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def stat_totals():
    """(steal, total) jiffies of all CPUs, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return f[7], sum(f[:8])


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cps(seconds, flood, rate=0):
    extra = f"--sources {LEGIT} --concurrency 256"
    if flood:
        extra += f" --flood-sources {FLOOD} --flood-rate {rate}"
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        c.sh(c.ns(c.CLI, f"{c.ROOT}/target/release/floodgate-load cps --iface fg-c0 --target {c.VIP}:80 "
                         f"--cpus {c.CLIENT_CPU} --duration {seconds} --json {f.name} {extra}"),
             timeout=seconds + 60)
        j = json.loads(Path(f.name).read_text())
    errors = j["connect_errors"] + j["resets"] + j["timeouts"] + j["bad_responses"]
    return {"cps": j["connects_per_sec"], "errors": errors, "p99_us": j["latency_us"]["p99"],
            "flood_syns_per_sec": j.get("flood_syns_per_sec", 0.0)}


def measured(fn, pid):
    """Runs fn, sampling the server's RSS each second; adds steal and RSS."""
    samples, stop = [], threading.Event()

    def sample():
        while not stop.wait(1.0):
            samples.append(rss_kib(pid))

    t = threading.Thread(target=sample)
    s0, t0 = stat_totals()
    t.start()
    try:
        r = fn()
    finally:
        stop.set()
        t.join()
    s1, t1 = stat_totals()
    r["steal_pct"] = 100.0 * (s1 - s0) / max(1, t1 - t0)
    r["rss_kib"] = samples
    return r


def metrics():
    out = c.sh(c.ns(c.SRV, "curl -s -m 2 http://127.0.0.1:9100/metrics"), check=False)
    keep = ("floodgate_tcp_cookies_", "floodgate_tcp_cookie_acks_", "floodgate_connections_half_open",
            "floodgate_tcp_syns_received_total", "floodgate_xdp_program_frames_total{verdict=\"syn_cookie_tx\"")
    return {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines()
            if ln.startswith(keep) and len(ln.split()) == 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10, help="each run without the flood")
    ap.add_argument("--flood-seconds", type=int, default=60)
    ap.add_argument("--flood-rates", default="0",
                    help="SYN/s of each flood run, comma-separated; 0 = as fast as the client loop allows")
    ap.add_argument("--results", default=str(c.ROOT / "results"))
    ap.add_argument("--skip-build", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("flood: needs root (network namespaces, XDP)")
    if not a.skip_build:
        c.sh(f"cd {c.ROOT} && flock /tmp/fg-cargo.lock cargo build --release -p floodgate -p floodgate-bench --bins",
             capture=False)
    lock = open("/tmp/floodgate-testbed.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    c.sh(f"FG_TESTBED_NS={c.TESTBED_NS} {c.ROOT}/deploy/testbed.sh down", capture=False)
    c.sh(f"FG_TESTBED_NS={c.TESTBED_NS} {c.ROOT}/deploy/testbed.sh up", capture=False)
    for side, dev in [(c.CLI, "fg-c0"), (c.SRV, "fg-s0")]:
        c.sh(c.ns(side, f"sh -c 'echo 3 > /sys/class/net/{dev}/queues/tx-0/xps_cpus; "
                        f"echo 0 > /sys/class/net/{dev}/queues/tx-1/xps_cpus'"), check=False)
    c.set_rx_mode("own")
    lo, hi = FLOOD.split("-")
    c.sh(c.ns(c.CLI, f"nft 'add table inet fgflood; add chain inet fgflood in {{ type filter hook input priority 0; "
                     f"policy accept; }}; add rule inet fgflood in ip daddr {lo}-{hi} tcp flags & (syn | ack) == "
                     f"syn | ack drop'"))
    fg_cmd = (f"taskset -c {c.SERVER_CPU} {c.ROOT}/target/release/floodgate serve --iface fg-s0 "
              f"--vip {c.VIP} --port 80 --app http --queues 1 --http-body '{c.BODY}' "
              f"--metrics 127.0.0.1:9100 --drain 1s")
    fg = c.Server("floodgate", fg_cmd, 80, pid_of=lambda: int(c.sh("pgrep -n -x floodgate").split()[0]))
    runs = []
    try:
        fg.start()
        c.pin_napi("own")
        pid = fg.pid()
        rates = [int(x) for x in a.flood_rates.split(",")]
        for flood, rate in [(False, 0)] + [(True, x) for x in rates] + [(False, 0)]:
            secs = a.flood_seconds if flood else a.seconds
            before = metrics()
            r = measured(lambda: cps(secs, flood, rate), pid)
            after = metrics()
            r.update(flood=flood, flood_rate=rate, seconds=secs,
                     counters={k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)})
            print(f"flood={flood}: {r['cps']:.0f} conn/s, errors {r['errors']}, flood {r['flood_syns_per_sec']:.0f} "
                  f"SYN/s, steal {r['steal_pct']:.1f} %, RSS {min(r['rss_kib'], default=0)}-"
                  f"{max(r['rss_kib'], default=0)} KiB", flush=True)
            runs.append(r)
            time.sleep(3)
    finally:
        fg.stop()
        c.sh(c.ns(c.CLI, "nft delete table inet fgflood"), check=False)
        c.sh(f"FG_TESTBED_NS={c.TESTBED_NS} {c.ROOT}/deploy/testbed.sh down", check=False, capture=False)
    model = cpu_model()
    base = statistics.mean(r["cps"] for r in runs if not r["flood"])
    floods = [r for r in runs if r["flood"]]
    res = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu_model": model, "nproc": os.cpu_count(),
           "runs": runs, "baseline_cps": base}
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flood.json").write_text(json.dumps(res, indent=1) + "\n")
    md = [f"floodgate under a SYN flood, {res['date']}, {model} ({res['nproc']} cores)", "",
          "| run | legit conn/s | errors | flood SYN/s | steal | server RSS (KiB) |", "|---|---|---|---|---|---|"]
    for r in runs:
        what = (f"flood at {r['flood_rate'] or 'max'} SYN/s" if r['flood'] else "no flood")
        md.append(f"| {what} ({r['seconds']} s) | {r['cps']:.0f} | "
                  f"{r['errors']} | {r['flood_syns_per_sec']:.0f} | {r['steal_pct']:.1f} % | "
                  f"{min(r['rss_kib'], default=0)}-{max(r['rss_kib'], default=0)} |")
    md.append("")
    for fl in floods:
        rss = fl["rss_kib"]
        md += [f"Flood at {fl['flood_rate'] or 'max'} SYN/s (sent {fl['flood_syns_per_sec']:.0f}/s): "
               f"{100 * fl['cps'] / base:.1f} % of the mean CPS without it; server RSS during the flood "
               f"{min(rss, default=0)}-{max(rss, default=0)} KiB. Counters: "
               + ", ".join(f"{k} +{v:.0f}" for k, v in sorted(fl["counters"].items())), ""]
    (out / "flood.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
