#!/usr/bin/env python3
"""The report of tools/load/compare.sh from its raw results: medians over the repetitions, ratios to
direct and to ReaperProxy Off, and the issue-11 targets marked met or short.

    tools/load/compare-table.py RESULTS.jsonl [--markdown OUT.md] [--check]

Prints Markdown (and writes it to OUT.md). --check exits 1, naming what is wrong, when a selected
subject has no result or reported errors in a part that ran, or a table or target lacks its data.
"""
import argparse
import json
import statistics
import sys

SUBJECT_ORDER = ["direct", "nginx", "haproxy", "off", "enforce", "short"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fx(r):
    return "—" if r is None else f"{r:.2f}×"


def rate_fmt(v):
    if v is None:
        return "—"
    return f"{v / 1000:.1f}k" if v >= 10000 else f"{v:,.0f}"


def num(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def size_fmt(size):
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--markdown")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    rows = [json.loads(line) for line in open(args.results) if line.strip()]
    header = next((r for r in rows if r["part"] == "header"), {})
    end = next((r for r in rows if r["part"] == "end"), {})
    parts = header.get("parts", "").split(",")
    subjects = [s for s in SUBJECT_ORDER if s in header.get("subjects", "").split(",")]
    problems = []
    out = []

    def p(line=""):
        out.append(line)

    short_ping = header.get("shortPing", "2s")
    names = {
        "direct": "direct (no proxy)",
        "nginx": f"nginx {header.get('nginx', '').split('/')[-1]}".strip(),
        "haproxy": f"HAProxy {header.get('haproxy', '')}".strip(),
        "off": "ReaperProxy Off (plain YARP)",
        "enforce": "ReaperProxy Enforce (15s/10s)",
        "short": f"ReaperProxy Enforce ({short_ping}/10s)",
    }

    # ---- header -----------------------------------------------------------------------------------
    m = header.get("machine", {})
    busy = [r.get("machineBusyPct") for r in rows if r.get("machineBusyPct") is not None]
    title = "ReaperProxy against nginx and HAProxy" + (" (smoke: the figures mean nothing)" if header.get("smoke") else "")
    p(f"## {title}")
    p()
    p(f"- Machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memTotalKB', 0) / 1048576:.1f} GiB, kernel {m.get('kernel')}")
    p(f"- Date: {header.get('date')}; commit {header.get('commit')} (proxy build {header.get('proxyBuild')}); .NET runtime {header.get('dotnetRuntime')}; "
      f"{header.get('nginx')}; HAProxy {header.get('haproxy')}")
    p(f"- Command: `{header.get('command')}`")
    if busy:
        p(f"- Machine busy during the measurements (all cores, /proc/stat): median {median(busy):.0f} %, {min(busy):.0f}–{max(busy):.0f} %"
          f"; the whole run took {end.get('seconds', '?')} s")
    p(f"- Medians of {header.get('repeat')} repetition(s); the subjects interleaved, their order rotated with each repetition. "
      "Everything on loopback, the LoadTest clients and backend for every subject.")
    p()

    # ---- collect ------------------------------------------------------------------------------------
    def results(part):
        return [r for r in rows if r["part"] == part]

    def proxy_cpu(r, key="cpuUsPerMessage"):
        res = r.get("result") or {}
        watched = res.get("watched") or []
        if r["subject"] == "direct" or len(watched) < 2:
            return None
        return sum(w.get(key) or 0 for w in watched[1:])

    sizes = [int(x) for x in header.get("sizes", "").split(",") if x]
    conns = [int(x) for x in header.get("connections", "").split(",") if x]
    rates = [int(x) for x in header.get("rates", "").split(",") if x]
    headline_k = 16 if 16 in conns else (sorted(conns)[len(conns) // 2] if conns else None)
    small = min(sizes) if sizes else None
    large = max(sizes) if sizes else None
    top_rate = max(rates) if rates else None

    tput = {}
    tcpu = {}
    tbusy = {}
    for r in results("throughput"):
        key = (r["size"], r["connections"], r["subject"])
        res = r.get("result")
        if res is None or r.get("exitCode") or res.get("errors"):
            problems.append(f"throughput {r['subject']} size {r['size']} K {r['connections']} rep {r['repeat']}: "
                            f"{'no result' if res is None else str(res.get('errors')) + ' errors'} (exit {r.get('exitCode')})")
        if res:
            tput.setdefault(key, []).append(res.get("messagesPerSec"))
            tcpu.setdefault(key, []).append(proxy_cpu(r))
        tbusy.setdefault(key[:2], []).append(r.get("machineBusyPct"))
    T = {k: median(v) for k, v in tput.items()}
    C = {k: median(v) for k, v in tcpu.items()}

    lat = {}
    for r in results("latency"):
        res = r.get("result")
        if res is None or r.get("exitCode") or res.get("errors"):
            problems.append(f"latency {r['subject']} rate {r['rate']} rep {r['repeat']}: no result or errors (exit {r.get('exitCode')})")
        lat.setdefault((r["rate"], r["subject"]), []).append(r)

    def lat_med(rate, subject, field):
        return median([(x.get("result") or {}).get(field) for x in lat.get((rate, subject), [])])

    churn = {}
    for r in results("churn"):
        res = r.get("result")
        if res is None or r.get("exitCode") or res.get("errors") or not res.get("upgrades"):
            problems.append(f"churn {r['subject']} rep {r['repeat']}: no result, no upgrade or errors (exit {r.get('exitCode')})")
        churn.setdefault(r["subject"], []).append(r)

    def churn_med(subject, field):
        return median([(x.get("result") or {}).get(field) for x in churn.get(subject, [])])

    idle = {}
    for r in results("idle"):
        if r.get("clientsFailed") or r.get("clientsClosedEarly") or r.get("connected", 0) < r.get("count", 1):
            problems.append(f"idle {r['subject']} rep {r['repeat']}: {r.get('connected')}/{r.get('count')} connected, "
                            f"{r.get('clientsFailed')} failed, {r.get('clientsClosedEarly')} cut")
        idle.setdefault(r["subject"], []).append(r)

    def idle_med(subject, field):
        return median([x.get(field) for x in idle.get(subject, [])])

    hb = {}
    for r in results("heartbeat"):
        if r.get("clientsFailed") or r.get("clientsClosedEarly") or r.get("connected", 0) < r.get("count", 1) or r.get("reapedTotal"):
            problems.append(f"heartbeat {r['subject']} rep {r['repeat']}: {r.get('connected')}/{r.get('count')} connected, "
                            f"{r.get('clientsFailed')} failed, {r.get('clientsClosedEarly')} cut, {r.get('reapedTotal')} reaped")
        hb.setdefault(r["subject"], []).append(r)

    def hb_med(subject, field):
        return median([x.get(field) for x in hb.get(subject, [])])

    def heap_per_conn(subject):
        return idle_med(subject, "heapPerConnKB")

    # ---- summary table ----------------------------------------------------------------------------------
    p("### Side by side")
    p()
    cols = []
    if "throughput" in parts and small is not None:
        cols += [f"{size_fmt(small)} msg/s ({headline_k} conns)", f"proxy CPU µs per {size_fmt(small)} msg"]
        if large != small:
            cols.append(f"{size_fmt(large)} msg/s ({headline_k} conns)")
    if "latency" in parts and top_rate:
        cols.append(f"p99 µs at {top_rate:,} msg/s ({header.get('rateConnections')} conns)")
    if "idle" in parts:
        cols.append(f"RSS per idle WebSocket ({header.get('idleCount'):,} idle)")
    if "churn" in parts:
        cols.append("upgrades/s (churn)")
    p("| subject | " + " | ".join(cols) + " |")
    p("|---|" + "---|" * len(cols))
    for s in subjects:
        cells = []

        def rel(v, base_direct, base_off, show_direct=True):
            bits = []
            if show_direct and s != "direct" and base_direct:
                bits.append(f"{fx(ratio(v, base_direct))} direct")
            if s not in ("off", "direct") and base_off:
                bits.append(f"{fx(ratio(v, base_off))} Off")
            return f" ({', '.join(bits)})" if bits and v is not None else ""

        if "throughput" in parts and small is not None:
            v = T.get((small, headline_k, s))
            cells.append(rate_fmt(v) + rel(v, T.get((small, headline_k, "direct")), T.get((small, headline_k, "off"))))
            c = C.get((small, headline_k, s))
            cells.append(("—" if c is None else f"{c:.1f}") + rel(c, None, C.get((small, headline_k, "off")), False))
            if large != small:
                v = T.get((large, headline_k, s))
                cells.append(rate_fmt(v) + rel(v, T.get((large, headline_k, "direct")), T.get((large, headline_k, "off"))))
        if "latency" in parts and top_rate:
            v = lat_med(top_rate, s, "p99Us")
            kept = all((x.get("result") or {}).get("keptUp") for x in lat.get((top_rate, s), [])) if lat.get((top_rate, s)) else None
            cells.append(num(v) + rel(v, lat_med(top_rate, "direct", "p99Us"), lat_med(top_rate, "off", "p99Us")) + ("" if kept in (True, None) else " **fell behind**"))
        if "idle" in parts:
            if s == "direct":
                cells.append("—")
            else:
                v = idle_med(s, "rssPerConnKB")
                o = idle_med("off", "rssPerConnKB")
                extra = f" (Off {'+' if v - o >= 0 else '−'} {abs(v - o):.1f} KiB)" if s not in ("off",) and v is not None and o is not None else ""
                cells.append(("—" if v is None else f"{v:.1f} KiB") + extra)
        if "churn" in parts:
            v = churn_med(s, "upgradesPerSec")
            cells.append(num(v) + rel(v, churn_med("direct", "upgradesPerSec"), churn_med("off", "upgradesPerSec")))
        p(f"| {names[s]} | " + " | ".join(cells) + " |")
    p()

    # ---- throughput detail ------------------------------------------------------------------------------
    if "throughput" in parts:
        p(f"### Closed-loop throughput (msg/s; median of {header.get('repeat')}, {header.get('duration')} s each after {header.get('warmup')} s warm-up)")
        p()
        p("| size | conns | " + " | ".join(names[s] for s in subjects) + " | machine busy % |")
        p("|---|---|" + "---|" * len(subjects) + "---|")
        for size in sizes:
            for k in conns:
                cells = []
                for s in subjects:
                    v = T.get((size, k, s))
                    bits = []
                    if s != "direct":
                        bits.append(f"{fx(ratio(v, T.get((size, k, 'direct'))))} direct")
                    if s not in ("direct", "off"):
                        bits.append(f"{fx(ratio(v, T.get((size, k, 'off'))))} Off")
                    cells.append(rate_fmt(v) + (f" ({', '.join(bits)})" if bits and v is not None else ""))
                p(f"| {size_fmt(size)} | {k} | " + " | ".join(cells) + f" | {num(median(tbusy.get((size, k), [])))} |")
        p()
        proxies = [s for s in subjects if s != "direct"]
        if proxies:
            p("### Proxy CPU per message (µs of utime+stime per round trip, all of the proxy's processes; median)")
            p()
            p("| size | conns | " + " | ".join(names[s] for s in proxies) + " |")
            p("|---|---|" + "---|" * len(proxies))
            for size in sizes:
                for k in conns:
                    cells = []
                    for s in proxies:
                        c = C.get((size, k, s))
                        cells.append(("—" if c is None else f"{c:.1f}") + (f" ({fx(ratio(c, C.get((size, k, 'off'))))} Off)" if s != "off" and c is not None and C.get((size, k, "off")) else ""))
                    p(f"| {size_fmt(size)} | {k} | " + " | ".join(cells) + " |")
            p()

    # ---- latency ----------------------------------------------------------------------------------------
    if "latency" in parts:
        p(f"### Latency at fixed open-loop rates ({header.get('rateConnections')} connections, {header.get('rateSize')} B, "
          f"{header.get('rateDuration')} s each; µs from each message's intended send time, HdrHistogram; median of {header.get('repeat')})")
        p()
        p("| rate msg/s | subject | achieved msg/s | kept up | p50 | p99 | p99.9 | max | p99 × direct | p99 × Off | p99 from the actual send | proxy CPU µs/msg | machine busy % |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for rate in rates:
            for s in subjects:
                recs = lat.get((rate, s), [])
                kept = sum(1 for x in recs if (x.get("result") or {}).get("keptUp"))
                cpu = median([proxy_cpu(x) for x in recs])
                p99 = lat_med(rate, s, "p99Us")
                p(f"| {rate:,} | {names[s]} | {num(lat_med(rate, s, 'achievedRate'))} | {kept}/{len(recs)} | {num(lat_med(rate, s, 'p50Us'))} | {num(p99)} "
                  f"| {num(lat_med(rate, s, 'p999Us'))} | {num(lat_med(rate, s, 'maxUs'))} | {fx(ratio(p99, lat_med(rate, 'direct', 'p99Us'))) if s != 'direct' else '—'} "
                  f"| {fx(ratio(p99, lat_med(rate, 'off', 'p99Us'))) if s not in ('direct', 'off') else '—'} | {num(lat_med(rate, s, 'uncorrectedP99Us'))} "
                  f"| {'—' if cpu is None else f'{cpu:.1f}'} | {num(median([x.get('machineBusyPct') for x in recs]))} |")
        p()
        for rate in rates:
            for s in subjects:
                for x in lat.get((rate, s), []):
                    res = x.get("result") or {}
                    if res and not res.get("keptUp"):
                        p(f"- {names[s]} at {rate:,} msg/s, repetition {x['repeat']}: {res.get('note')}")
        p()

    # ---- churn ------------------------------------------------------------------------------------------
    if "churn" in parts:
        p(f"### Connection churn ({header.get('churnConcurrency')} loops of connect + upgrade + one 64 B echo + close, "
          f"{float(header.get('abortFraction', 0)) * 100:.0f} % aborted; {header.get('churnDuration')} s each; median)")
        p()
        p("| subject | upgrades/s | × direct | × Off | connect+upgrade p50 µs | p99 µs | proxy CPU µs per upgrade | errors | machine busy % |")
        p("|---|---|---|---|---|---|---|---|---|")
        for s in subjects:
            recs = churn.get(s, [])
            v = churn_med(s, "upgradesPerSec")
            cpu = median([proxy_cpu(x) for x in recs])
            errs = sum((x.get("result") or {}).get("errors", 0) for x in recs)
            p(f"| {names[s]} | {num(v)} | {fx(ratio(v, churn_med('direct', 'upgradesPerSec'))) if s != 'direct' else '—'} "
              f"| {fx(ratio(v, churn_med('off', 'upgradesPerSec'))) if s not in ('direct', 'off') else '—'} | {num(churn_med(s, 'connectP50Us'))} "
              f"| {num(churn_med(s, 'connectP99Us'))} | {'—' if cpu is None else f'{cpu:.1f}'} | {errs} | {num(median([x.get('machineBusyPct') for x in recs]))} |")
        p()

    # ---- idle memory ------------------------------------------------------------------------------------
    if "idle" in parts:
        p(f"### Idle memory (fresh process each time, {header.get('idleCount'):,} idle live WebSockets, measured {header.get('idleSettle')} s after the last opened; median)")
        p()
        p("| subject | processes | RSS idle process MiB | RSS loaded MiB | RSS per connection KiB | × Off | − Off KiB | managed heap after full GC per connection KiB | failed / cut | machine busy % |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        off_kb = idle_med("off", "rssPerConnKB")
        for s in subjects:
            if s == "direct":
                continue
            recs = idle.get(s, [])
            v = idle_med(s, "rssPerConnKB")
            heap = heap_per_conn(s)
            p(f"| {names[s]} | {recs[0].get('processes') if recs else '—'} | {num((idle_med(s, 'baselineRssKB') or 0) / 1024, 1)} | {num((idle_med(s, 'rssKB') or 0) / 1024, 1)} "
              f"| {num(v, 1)} | {fx(ratio(v, off_kb)) if s != 'off' else '—'} | {num(v - off_kb, 1) if s != 'off' and v is not None and off_kb is not None else '—'} "
              f"| {num(heap, 1)} | {sum(x.get('clientsFailed', 0) for x in recs)} / {sum(x.get('clientsClosedEarly', 0) for x in recs)} "
              f"| {num(median([x.get('machineBusyPct') for x in recs]))} |")
        p()

    # ---- heartbeat --------------------------------------------------------------------------------------
    def per_ping(subject):
        cpu, off_cpu, pings = hb_med(subject, "cpuPctOfCore"), hb_med("off", "cpuPctOfCore"), hb_med(subject, "pingsPerSec")
        if cpu is None or off_cpu is None or not pings:
            return None
        return (cpu - off_cpu) / 100 * 1e6 / pings

    def hb_extra(subject):
        cpu, off_cpu = hb_med(subject, "cpuPctOfCore"), hb_med("off", "cpuPctOfCore")
        return None if cpu is None or off_cpu is None else cpu - off_cpu

    if "heartbeat" in parts:
        p(f"### Heartbeat CPU ({header.get('heartbeatCount'):,} idle live WebSockets answering pings, fresh process each time; "
          f"CPU over {header.get('heartbeatWindow')} s starting {header.get('heartbeatSettle')} s after the last opened; median)")
        p()
        p("| subject | proxy CPU % of one core | idle process % | over Off, % of one core | pings/s (both legs) | µs per ping (with its pong) | RSS per connection KiB | reaped | failed / cut | machine busy % |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        for s in ["off", "enforce", "short"]:
            recs = hb.get(s, [])
            if not recs:
                continue
            extra = hb_extra(s) if s != "off" else None
            pp = per_ping(s) if s != "off" else None
            p(f"| {names[s]} | {num(hb_med(s, 'cpuPctOfCore'), 2)} | {num(hb_med(s, 'baselineCpuPctOfCore'), 2)} | {num(extra, 2) if s != 'off' else '—'} "
              f"| {num(hb_med(s, 'pingsPerSec'))} | {num(pp, 1) if s != 'off' else '—'} | {num(hb_med(s, 'rssPerConnKB'), 1)} "
              f"| {sum(x.get('reapedTotal', 0) for x in recs)} | {sum(x.get('clientsFailed', 0) for x in recs)} / {sum(x.get('clientsClosedEarly', 0) for x in recs)} "
              f"| {num(median([x.get('machineBusyPct') for x in recs]))} |")
        p()
        p("µs per ping = (CPU under Enforce − CPU under Off) / pings sent per second (`reaper_pings_sent_total`, both legs); each ping includes its pong.")
        p()

    # ---- targets ----------------------------------------------------------------------------------------
    targets = []

    def target(name, measured, r, ok, needs):
        mark = "n/a" if ok is None else ("met" if ok else "short")
        targets.append((name, measured, r, mark, needs))

    for size in [x for x in (64, 65536) if x in sizes]:
        for k in conns:
            e, o = T.get((size, k, "enforce")), T.get((size, k, "off"))
            r = ratio(e, o)
            target(f"Enforce ≥ 0.95× Off throughput, {size_fmt(size)}, {k} conns", f"{rate_fmt(e)} vs {rate_fmt(o)} msg/s", fx(r),
                   None if r is None else r >= 0.95, "throughput")
    for rate in rates:
        e, o = lat_med(rate, "enforce", "p99Us"), lat_med(rate, "off", "p99Us")
        kept = all((x.get("result") or {}).get("keptUp") for x in lat.get((rate, "enforce"), [])) and bool(lat.get((rate, "enforce")))
        r = ratio(e, o)
        target(f"Enforce p99 ≤ 1.1× Off at {rate:,} msg/s ({header.get('rateConnections')} conns)", ("not measured" if not lat.get((rate, "enforce")) else f"{num(e)} vs {num(o)} µs" + ("" if kept else ", Enforce fell behind")),
               fx(r), None if r is None else (r <= 1.1 and kept), "latency")
    e, o = idle_med("enforce", "rssPerConnKB"), idle_med("off", "rssPerConnKB")
    target("Idle memory: Enforce ≤ Off + 2 KiB per connection", "—" if e is None or o is None else f"{e:.1f} vs {o:.1f} KiB (Off {'+' if e - o >= 0 else '−'} {abs(e - o):.1f} KiB)",
           fx(ratio(e, o)), None if e is None or o is None else e - o <= 2, "idle")
    pp = per_ping("short")
    target(f"Heartbeat ≤ 10 µs per ping with its pong (PingInterval {short_ping}, {header.get('heartbeatCount'):,} idle)", "—" if pp is None else f"{pp:.1f} µs",
           "—" if pp is None else f"{pp / 10:.2f}× the target", None if pp is None else pp <= 10, "heartbeat")
    ex = hb_extra("enforce")
    target(f"Heartbeat < 2 % of one core, {header.get('heartbeatCount'):,} idle, pinged every 15 s (Enforce − Off)", "—" if ex is None else f"{ex:.2f} % (Enforce {num(hb_med('enforce', 'cpuPctOfCore'), 2)} %, Off {num(hb_med('off', 'cpuPctOfCore'), 2)} %)",
           "—" if ex is None else f"{ex / 2:.2f}× the target", None if ex is None else ex < 2, "heartbeat")
    if small == 64 or 64 in sizes:
        ce, cn = C.get((64, headline_k, "enforce")), C.get((64, headline_k, "nginx"))
        r = ratio(cn, ce)  # messages per CPU-µs, Enforce over nginx
        target(f"Stretch: Enforce ≥ nginx on 64 B messages per proxy CPU-µs ({headline_k} conns)", "—" if ce is None or cn is None else f"{1 / ce:.3f} vs {1 / cn:.3f} msg/µs ({ce:.1f} vs {cn:.1f} µs/msg)",
               fx(r), None if r is None else r >= 1, "throughput")
    en, ng = idle_med("enforce", "rssPerConnKB"), idle_med("nginx", "rssPerConnKB")
    r = ratio(ng, en)
    target("Stretch: Enforce ≤ nginx on idle memory per connection", "—" if en is None or ng is None else f"{en:.1f} vs {ng:.1f} KiB", fx(r) + (" (nginx ÷ Enforce)" if r else ""),
           None if r is None else r >= 1, "idle")

    p("### Targets (issue 11)")
    p()
    p("| target | measured | ratio | mark |")
    p("|---|---|---|---|")
    for name, measured, r, mark, _ in targets:
        p(f"| {name} | {measured} | {r} | {mark} |")
    p()

    # ---- check ------------------------------------------------------------------------------------------
    if args.check:
        for part in parts:
            if part == "throughput":
                for size in sizes:
                    for k in conns:
                        for s in subjects:
                            if not T.get((size, k, s)):
                                problems.append(f"throughput table: no rate for {s} at {size} B, {k} conns")
            elif part == "latency":
                for rate in rates:
                    for s in subjects:
                        if not lat.get((rate, s)):
                            problems.append(f"latency table: no result for {s} at {rate} msg/s")
            elif part == "churn":
                for s in subjects:
                    if not churn_med(s, "upgradesPerSec"):
                        problems.append(f"churn table: no upgrades for {s}")
            elif part == "idle":
                for s in subjects:
                    if s != "direct" and idle_med(s, "rssPerConnKB") is None:
                        problems.append(f"idle table: no result for {s}")
            elif part == "heartbeat":
                wanted = (["off"] if "off" in subjects else []) + (["enforce", "short"] if "enforce" in subjects else [])
                for s in wanted:
                    if hb_med(s, "cpuPctOfCore") is None:
                        problems.append(f"heartbeat table: no result for {s}")
        everything = set(parts) >= {"throughput", "latency", "churn", "idle", "heartbeat"} and {"nginx", "off", "enforce"} <= set(subjects)
        for name, _, _, mark, needs in targets:
            if mark == "n/a" and (everything or (needs in parts and {"off", "enforce"} <= set(subjects) and "nginx" not in name)):
                problems.append(f"targets table: no figure for '{name}'")

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if problems:
        print("\nProblems:", file=sys.stderr)
        for x in problems:
            print(f"- {x}", file=sys.stderr)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
