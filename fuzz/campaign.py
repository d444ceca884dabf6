#!/usr/bin/env python3
"""A long fuzzing campaign for one target, counted in CPU time.

    fuzz/campaign.py TARGET CPU_SECONDS [--chunk SECONDS] [--idle] [--total]
    fuzz/campaign.py --report

Runs the built libFuzzer binary of TARGET (`cargo fuzz build --sanitizer
none` first) in chunks of --chunk wall seconds (default 300) on a working
corpus, fuzz/campaign/TARGET/ (seeded from fuzz/corpus/TARGET/, ignored by
git), until the chunks together used CPU_SECONDS of CPU time (user + sys
of the fuzzer, from wait4's rusage, so time spent waiting for the CPU on a
shared machine does not count). Each chunk appends one line to
fuzz/ledger.tsv: the UTC time, target, CPU and wall seconds, runs, final
coverage (cov / ft) and the result; the ledger is committed, so the CPU time
each target got adds up across sessions.

--total counts CPU_SECONDS as the target's total in the ledger (earlier
campaigns included) rather than this campaign's; --report prints each
target's total CPU time from the ledger.

--idle runs the fuzzer under SCHED_IDLE (it gets only CPU time nothing else
wants). While /tmp/fg-quiet exists (a benchmark is measuring) the fuzzer is
stopped with SIGSTOP and continued afterwards.

A crash ends the campaign with status 1; libFuzzer leaves the input in
fuzz/artifacts/TARGET/. Keep it as a seed in fuzz/corpus/TARGET/ once the
bug is fixed.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QUIET = "/tmp/fg-quiet"
MAX_LEN = {"frame": 9300, "metrics_request": 10000}


TIMEOUT_EXIT = 70  # libFuzzer's -timeout_exitcode default


def rerun_ok(binary, target):
    """Runs the newest timeout input alone; True (and the input removed)
    when it finishes within libFuzzer's 10 s."""
    arts = os.path.join(HERE, "artifacts", target)
    ins = sorted((os.path.join(arts, f) for f in os.listdir(arts) if f.startswith("timeout-")), key=os.path.getmtime)
    if not ins:
        return False
    r = subprocess.run([binary, "-timeout=10", ins[-1]], capture_output=True, timeout=120)
    if r.returncode == 0:
        os.remove(ins[-1])
        return True
    return False


def chunk(binary, target, secs, idle):
    """One libFuzzer run; returns (cpu_s, wall_s, status, output)."""
    work = os.path.join(HERE, "campaign", target)
    arts = os.path.join(HERE, "artifacts", target)
    os.makedirs(arts, exist_ok=True)
    cmd = [
        binary, work,
        f"-max_total_time={secs}", f"-max_len={MAX_LEN.get(target, 4096)}",
        "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
        f"-artifact_prefix={arts}/",
    ]
    if idle:
        cmd = ["chrt", "--idle", "0"] + cmd
    log = open(os.path.join(HERE, "campaign", f"{target}.log"), "w+")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    stopped = False
    killed = False
    status = None
    paused = 0.0  # seconds spent stopped: not the fuzzer's time
    while status is None:
        time.sleep(1)
        quiet = os.path.exists(QUIET)
        if quiet != stopped:
            os.kill(p.pid, signal.SIGSTOP if quiet else signal.SIGCONT)
            stopped = quiet
        if stopped:
            paused += 1.0
        elif not killed and time.monotonic() - t0 - paused > secs * 4 + 600:
            # A hung fuzzer: libFuzzer's own limits failed. os.kill, not
            # p.kill(): Popen polls first, and would reap the child that
            # wait4 below is to collect.
            os.kill(p.pid, signal.SIGKILL)
            killed = True
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status = os.waitstatus_to_exitcode(st)
    log.seek(0)
    return ru.ru_utime + ru.ru_stime, time.monotonic() - t0, status, log.read()


def totals(ledger):
    """CPU seconds per target in the ledger."""
    t = {}
    if os.path.exists(ledger):
        for line in open(ledger).read().splitlines()[1:]:
            f = line.split("\t")
            t[f[1]] = t.get(f[1], 0.0) + float(f[2])
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("target", nargs="?")
    ap.add_argument("cpu_seconds", type=float, nargs="?")
    ap.add_argument("--chunk", type=int, default=300)
    ap.add_argument("--idle", action="store_true")
    ap.add_argument("--total", action="store_true")
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    ledger = os.path.join(HERE, "ledger.tsv")
    if a.report:
        for t, s in sorted(totals(ledger).items()):
            print(f"{t}\t{s:.0f} s\t{s / 3600:.2f} CPU-hours")
        return
    if a.target is None or a.cpu_seconds is None:
        ap.error("TARGET and CPU_SECONDS are needed")

    binary = os.path.join(HERE, "target/x86_64-unknown-linux-gnu/release", a.target)
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} missing: (cd fuzz && cargo fuzz build --sanitizer none)")
    work = os.path.join(HERE, "campaign", a.target)
    if not os.path.isdir(work):
        shutil.copytree(os.path.join(HERE, "corpus", a.target), work)

    if not os.path.exists(ledger):
        with open(ledger, "w") as f:
            f.write("utc\ttarget\tcpu_s\twall_s\truns\tcov\tft\tresult\n")
    used = totals(ledger).get(a.target, 0.0) if a.total else 0.0
    while used < a.cpu_seconds:
        cpu, wall, status, out = chunk(binary, a.target, a.chunk, a.idle)
        used += cpu
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", out)
        crashed = status != 0
        result = "ok" if not crashed else f"exit {status}"
        if status == TIMEOUT_EXIT and rerun_ok(binary, a.target):
            # libFuzzer's per-input alarm runs on wall-clock time, so a
            # fuzzer stopped for a benchmark or starved under SCHED_IDLE
            # "times out"; the input, run again alone, finishes.
            crashed, result = False, "spurious timeout (stopped or starved): its input reruns in time"
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        row = [when, a.target, f"{cpu:.0f}", f"{wall:.0f}", runs[-1] if runs else "?",
               cov[-1][0] if cov else "?", cov[-1][1] if cov else "?", result]
        with open(ledger, "a") as f:
            f.write("\t".join(row) + "\n")
        print("\t".join(row), flush=True)
        if crashed:
            print(out[-4000:], file=sys.stderr)
            sys.exit(1)
    print(f"{a.target}: {used:.0f} CPU seconds in this campaign")


if __name__ == "__main__":
    main()
