#!/usr/bin/env python3
"""Markdown table from run-idle.sh result files: tools/load/idle-table.py DIR_OR_FILES..."""
import glob, json, os, sys

files = []
for a in sys.argv[1:] or ["."]:
    files += sorted(glob.glob(os.path.join(a, "idle-*.json"))) if os.path.isdir(a) else [a]
print("| run | proxy build | policy | conns | proxy CPU (% of a core) | pings/s (client + backend legs) | RSS MiB (idle proxy) | RSS KB/conn | heap after full GC MiB (idle proxy) | heap KB/conn | gc committed MiB | reaped / cut | machine busy % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in files:
    d = json.load(open(f))
    pol = f'{d["mode"]} {d.get("legs", "Both")} {d["pingInterval"]}/{d["pongTimeout"]}' if d["mode"] != "Off" else "Off"
    print(f'| {os.path.basename(f)[:-5]} | {d.get("proxy", "?")} | {pol} | {d["connected"]}/{d["requested"]} | {d["proxyCpuPctOfCore"]} (idle {d["baselineCpuPctOfCore"]}) '
          f'| {d["pingsPerSecClientLeg"]:.0f} + {d["pingsPerSecBackendLeg"]:.0f} | {d["rssKB"]/1024:.0f} ({d["baselineRssKB"]/1024:.0f}) | {d["rssPerConnKB"]:.1f} '
          f'| {d["heapAfterGcKB"]/1024:.0f} ({d["baselineHeapAfterGcKB"]/1024:.1f}) | {d["heapPerConnKB"]:.1f} | {d["gcCommittedMB"]:.0f} '
          f'| {d["reapedTotalAtEnd"]} / {d["clientsClosedEarly"]} | {d["machineBusyPct"]} |')
