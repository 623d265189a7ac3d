#!/usr/bin/env python3
"""Markdown tables and target verdicts from bench/run.sh's results.

usage: summarize.py [--seconds S] [--reps R] results.txt

Each input line is key=value pairs: server= client= call= threads= rep= and
the program's own result line (calls= ... cpu_us_per_call=, or the waiters=
line of bench_mem_waiters), plus server_cpu_us_per_call= and failed=1.
Every figure shown is the median over the runs of that point.
"""
import argparse
import statistics
import sys
from collections import OrderedDict

CLIENTS = OrderedDict([
    ("raw", "bare socket (floor)"),
    ("raw-work", "bare socket, 2 µs of work after each reply"),
    ("libvirt-shared", "libvirt.so, one shared conn"),
    ("libvirt-own", "libvirt.so, conn per thread"),
    ("lvrpc-direct", "lvrpc Direct"),
    ("lvrpc-shared-k1", "lvrpc Shared K=1"),
    ("lvrpc-shared-k4", "lvrpc Shared K=4"),
])

# Targets (the issue's; measured in the same run on the same machine)
T_CPU_US = 10.0        # Shared K=1, 16 threads: client CPU per call
T_P50_DELTA_US = 5.0   # one thread: p50 minus the bare socket's p50
T_INSTANT_RATIO = 5.0  # instant server: Shared calls/s vs libvirt.so shared
T_MEM_KIB = 4096       # 1,000 waiters on one Shared connection


def parse(path):
    groups = OrderedDict()
    for line in open(path):
        kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if "server" not in kv:
            continue
        key = (kv["server"], kv["client"], kv["call"], int(kv["threads"]))
        groups.setdefault(key, []).append(kv)
    return groups


def med(runs, k):
    vals = [float(r[k]) for r in runs if k in r and "failed" not in r]
    return statistics.median(vals) if vals else None


def spread(runs, k):
    vals = [float(r[k]) for r in runs if k in r and "failed" not in r]
    if len(vals) < 2 or not statistics.median(vals):
        return None
    return (max(vals) - min(vals)) / statistics.median(vals) * 100


def fmt(v, f="{:.0f}"):
    return "–" if v is None else f.format(v)


def ratio(a, b):
    return None if a is None or not b else a / b


def table(groups, server, server_cpu_name):
    calls = []
    for (srv, _, call, _) in groups:
        if srv == server and call not in calls:
            calls.append(call)
    out = []
    for call in calls:
        threads = sorted({t for (srv, cl, c, t) in groups if srv == server and c == call and cl != "raw"})
        raw = groups.get((server, "raw", call, 1))
        raw_p50 = med(raw, "p50_us") if raw else None
        out.append("")
        out.append(f"call = **{call}**")
        out.append("")
        out.append("| threads | client | calls/s | spread % | p50 µs | p99 µs | client CPU µs/call | "
                   f"{server_cpu_name} CPU µs/call | vCPU idle entries/call | calls/s ÷ libvirt.so shared | "
                   "calls/s ÷ libvirt.so per-thread | CPU/call ÷ libvirt.so shared | p50 − floor µs | runs |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in threads:
            ref = groups.get((server, "libvirt-shared", call, t))
            own = groups.get((server, "libvirt-own", call, t))
            ref_cps, ref_cpu = (med(ref, "calls_per_s"), med(ref, "cpu_us_per_call")) if ref else (None, None)
            own_cps = med(own, "calls_per_s") if own else None
            rows = [c for c in CLIENTS if (server, c, call, t) in groups and c != "raw"]
            if t == 1 and raw:
                rows.insert(0, "raw")
            for c in rows:
                runs = groups[(server, c, call, 1 if c == "raw" else t)]
                cps, cpu, p50 = med(runs, "calls_per_s"), med(runs, "cpu_us_per_call"), med(runs, "p50_us")
                fails = sum(1 for r in runs if "failed" in r)
                errs = sum(int(r.get("errors", 0)) for r in runs)
                note = f"{len(runs)}" + (f", {fails} failed" if fails else "") + (f", {errs} call errors" if errs else "")
                is_ref = c in ("raw", "raw-work", "libvirt-shared", "libvirt-own")
                delta = None
                if t == 1 and raw_p50 is not None and c != "raw":
                    delta = p50 - raw_p50 if p50 is not None else None
                out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    t if not c.startswith("raw") else "1 (seq.)", CLIENTS[c], fmt(cps), fmt(spread(runs, "calls_per_s")),
                    fmt(p50, "{:.1f}"), fmt(med(runs, "p99_us"), "{:.1f}"), fmt(cpu, "{:.1f}"),
                    fmt(med(runs, "server_cpu_us_per_call"), "{:.1f}"),
                    fmt(med(runs, "idle_entries_per_call"), "{:.2f}"),
                    "–" if is_ref else fmt(ratio(cps, ref_cps), "{:.2f}×"),
                    "–" if is_ref else fmt(ratio(cps, own_cps), "{:.2f}×"),
                    "–" if is_ref else fmt(ratio(cpu, ref_cpu), "{:.2f}×"),
                    "–" if delta is None else "{:+.1f}".format(delta), note))
    return out


def verdict(ok):
    return "–" if ok is None else ("**MET**" if ok else "**NOT MET**")


def targets(groups):
    out = []
    g = lambda *k: groups.get(k)
    call = "lookup"

    s16, l16 = g("real", "lvrpc-shared-k1", call, 16), g("real", "libvirt-shared", call, 16)
    a, b = (med(s16, "calls_per_s") if s16 else None), (med(l16, "calls_per_s") if l16 else None)
    ok = None if a is None or b is None else a >= b
    out.append(f"- Shared K=1, 16 threads, real libvirtd ({call}): calls/s {fmt(a)} ≥ libvirt.so shared "
               f"{fmt(b)} ({fmt(ratio(a, b), '{:.2f}×')}): {verdict(ok)}")

    cpu = med(s16, "cpu_us_per_call") if s16 else None
    lcpu = med(l16, "cpu_us_per_call") if l16 else None
    ok = None if cpu is None else cpu <= T_CPU_US
    out.append(f"- Shared K=1, 16 threads, real libvirtd ({call}): client CPU {fmt(cpu, '{:.1f}')} µs/call "
               f"≤ {T_CPU_US:.0f} µs (libvirt.so shared: {fmt(lcpu, '{:.1f}')}): {verdict(ok)}")
    wake, wake1 = wake_cpu(groups, "wake"), wake_cpu(groups, "wake1cpu")
    if wake is not None:
        out.append(f"  - one thread wake-up on this machine (bench_wake_floor; waker and woken together): "
                   f"{fmt(wake, '{:.1f}')} µs of CPU across vCPUs, {fmt(wake1, '{:.1f}')} on one CPU. "
                   f"A Shared call that waits costs its client at least one.")

    for c in ("lvrpc-direct", "lvrpc-shared-k1"):
        for callname in ("lookup", "libversion"):
            raw, r = g("real", "raw", callname, 1), g("real", c, callname, 1)
            if not raw or not r:
                continue
            lv = g("real", "libvirt-shared", callname, 1)
            rp, p = med(raw, "p50_us"), med(r, "p50_us")
            lp = med(lv, "p50_us") if lv else None
            d = None if rp is None or p is None else p - rp
            ok = None if d is None else d <= T_P50_DELTA_US
            work = g("real", "raw-work", callname, 1)
            wp = med(work, "p50_us") if work else None
            wnote = "" if wp is None or p is None else (
                f"; a bare socket busy 2 µs after each reply: {wp:.1f} µs, lvrpc {p - wp:+.1f} µs against it")
            out.append(f"- One thread, one call at a time, {CLIENTS[c]} ({callname}): p50 {fmt(p, '{:.1f}')} µs "
                       f"vs bare socket {fmt(rp, '{:.1f}')} µs = {fmt(d, '{:+.1f}')} µs ≤ +{T_P50_DELTA_US:.0f} µs "
                       f"(libvirt.so shared: {fmt(None if lp is None or rp is None else lp - rp, '{:+.1f}')} µs"
                       f"{wnote}): {verdict(ok)}")

    for c in ("lvrpc-direct", "lvrpc-shared-k1"):
        raw, r = g("instant1cpu", "raw", "lookup", 1), g("instant1cpu", c, "lookup", 1)
        if not raw or not r:
            continue
        lv = g("instant1cpu", "libvirt-shared", "lookup", 1)
        rp, p = med(raw, "p50_us"), med(r, "p50_us")
        lp = med(lv, "p50_us") if lv else None
        d = None if rp is None or p is None else p - rp
        ok = None if d is None else d <= T_P50_DELTA_US
        out.append(f"  - the same against the instant server on one CPU (software only), {CLIENTS[c]} (lookup): "
                   f"p50 {fmt(p, '{:.1f}')} µs vs bare socket {fmt(rp, '{:.1f}')} µs = {fmt(d, '{:+.1f}')} µs "
                   f"(libvirt.so shared: {fmt(None if lp is None or rp is None else lp - rp, '{:+.1f}')} µs): "
                   f"{verdict(ok)}")

    for srv, label in (("instant", "Instant server"), ("instant1cpu", "  - the same on one CPU")):
        for k in ("k1", "k4"):
            cl = "lvrpc-shared-" + k
            for t in sorted({t for (sv, c, _, t) in groups if sv == srv and c == cl}):
                s, l = g(srv, cl, "lookup", t), g(srv, "libvirt-shared", "lookup", t)
                a, b = (med(s, "calls_per_s") if s else None), (med(l, "calls_per_s") if l else None)
                r = ratio(a, b)
                ok = None if r is None else r >= T_INSTANT_RATIO
                d = g(srv, "lvrpc-direct", "lookup", t)
                dr = ratio(med(d, "calls_per_s") if d else None, b)
                floor = ""
                raw = g(srv, "raw", "lookup", 1) if t == 1 else None
                if raw and b:
                    # One call at a time: calls/s is 1 / round trip, which
                    # the bare socket's round trip bounds (within the noise).
                    floor = (f"; one call at a time, calls/s is one over the round trip, and the bare "
                             f"socket's own makes only {fmt(ratio(med(raw, 'calls_per_s'), b), '{:.2f}×')}"
                             f" libvirt.so's")
                out.append(f"{'- ' if srv == 'instant' else ''}{label}, {t} thread{'s' if t > 1 else ''}: "
                           f"Shared K={k[1:]} calls/s {fmt(a)} ≥ {T_INSTANT_RATIO:.0f}× libvirt.so shared {fmt(b)} "
                           f"(is {fmt(r, '{:.2f}×')}; Direct: {fmt(dr, '{:.2f}×')}{floor}): {verdict(ok)}")

    mem = [v for (k, v) in groups.items() if k[0] == "mem"]
    if mem:
        runs = mem[0]
        lib, tot, thr = med(runs, "library_kib"), med(runs, "total_kib"), med(runs, "threads_kib")
        ok = None if lib is None else lib < T_MEM_KIB
        out.append(f"- {runs[0].get('waiters', '?')} threads waiting on one Shared connection: the library's RSS growth "
                   f"{fmt(lib)} KiB < {T_MEM_KIB} KiB (the threads themselves, {runs[0].get('stack_kib', '?')} KiB "
                   f"stacks: {fmt(thr)} KiB more; total {fmt(tot)} KiB): {verdict(ok)}")
    return out


def wake_cpu(groups, srv):
    """CPU µs of one wake-up: bench_wake_floor's "call" is a round trip, two wake-ups."""
    runs = groups.get((srv, "wake-floor", "-", 2))
    cpu = med(runs, "cpu_us_per_call") if runs else None
    return None if cpu is None else cpu / 2


def wakes(groups):
    out = []
    for srv, where in (("wake", "two threads, unpinned"), ("wake1cpu", "two threads on one CPU (taskset)")):
        runs = groups.get((srv, "wake-floor", "-", 2))
        if not runs:
            continue
        t = med(runs, "p50_us")
        out.append(f"| {where} | {fmt(None if t is None else t / 2, '{:.1f}')} | "
                   f"{fmt(wake_cpu(groups, srv), '{:.1f}')} | {len(runs)} |")
    if out:
        out = ["", "| threads | µs per wake-up (p50 round trip ÷ 2) | CPU µs per wake-up | runs |",
               "|---|---:|---:|---:|"] + out
    return out


def memory(groups):
    mem = [v for (k, v) in groups.items() if k[0] == "mem"]
    if not mem:
        return []
    runs = mem[0]
    cols = [("threads_kib", "threads alone KiB"), ("library_kib", "library KiB"),
            ("library_stack_kib", "of which call stack KiB"), ("library_heap_kib", "of which heap KiB"),
            ("library_bytes_per_waiter", "library bytes/waiter"), ("total_kib", "total KiB")]
    out = ["", "| waiters | stack size | " + " | ".join(c[1] for c in cols) + " | runs |",
           "|---:|---:|" + "---:|" * len(cols) + "---:|"]
    out.append(f"| {runs[0].get('waiters', '?')} | {runs[0].get('stack_kib', '?')} KiB | " +
               " | ".join(fmt(med(runs, k)) for k, _ in cols) + f" | {len(runs)} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", default="?")
    ap.add_argument("--reps", default="?")
    ap.add_argument("results")
    a = ap.parse_args()
    groups = parse(a.results)
    p = print
    p(f"Medians of {a.reps} runs of {a.seconds} s per point; \"spread\" = (max − min) ÷ median of calls/s. "
      "Ratios compare medians of the same run; \"floor\" = the bare socket's p50 (one thread, one call "
      "at a time, hand-written protocol).")
    p("")
    p("### Targets")
    p("")
    for line in targets(groups):
        p(line)
    p("")
    p("### Against the real libvirtd (test:///default over TCP, daemon defaults: max_client_requests=5, max_workers=20)")
    for line in table(groups, "real", "daemon"):
        p(line)
    if any(k[0] == "realtls" for k in groups):
        p("")
        p("### Against the real libvirtd over TLS (same daemon, TLS listener; tests/make-certs.sh certificates, client certificate verified)")
        for line in table(groups, "realtls", "daemon"):
            p(line)
    p("")
    p("### Against the instant server (bench_instant_server: tests/fakeserver.c in INSTANT mode; the clients' own overhead)")
    for line in table(groups, "instant", "server"):
        p(line)
    if any(k[0] == "instant1cpu" for k in groups):
        p("")
        p("### Against the instant server, server and client on one CPU (taskset): software cost only, no cross-CPU wake-ups")
        for line in table(groups, "instant1cpu", "server"):
            p(line)
    p("")
    p("### Memory: threads waiting on one Shared connection (bench_mem_waiters; exact RSS from /proc/self/smaps_rollup)")
    for line in memory(groups):
        p(line)
    lines = wakes(groups)
    if lines:
        p("")
        p("### One thread wake-up (bench_wake_floor: two threads passing a token on semaphores, as Shared mode's waiters sleep)")
        for line in lines:
            p(line)


if __name__ == "__main__":
    sys.exit(main())
