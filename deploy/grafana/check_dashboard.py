#!/usr/bin/env python3
"""Helper of deploy/grafana/check.sh (run that, not this).

  lint  DASHBOARD EXPRS_OUT   structure of the dashboard (datasource input, variables, panels),
                              and its PromQL expressions written to EXPRS_OUT (JSON)
  synth OPENMETRICS_OUT END   synthetic series for every metric the dashboard reads, following the
                              metric contract in deploy/OBSERVABILITY.md, 40 minutes up to END
                              (unix seconds), one sample every 15s, in OpenMetrics for promtool's backfill
  query BASE_URL EXPRS END    every expression through /api/v1/query at END: it must parse and
                              evaluate, return data, and carry the labels its legend names; every
                              variable's label_values() selector through /api/v1/series

Only standard library; talks to BASE_URL only (check.sh passes a loopback address) and ignores
proxy settings from the environment.
"""
import json
import re
import sys
import urllib.parse
import urllib.request

DS_UID = "${DS_PROMETHEUS}"
ALL = ".*"
# Grafana's built-in and dashboard variables, as Grafana would expand them: once with every
# multi-value variable on "All", once with an explicit multi-selection.
SUBSTITUTIONS = [
    {"job": "reaperproxy", "instance": ALL, "route": ALL},
    {"job": "reaperproxy", "instance": "(proxy-a:9464|proxy-b:9464)", "route": "(chat|quotes)"},
]
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "30m"}


def fail(message):
    print(f"  FAILED: {message}")
    sys.exit(1)


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def lint(dashboard_path, exprs_out):
    with open(dashboard_path) as f:
        dash = json.load(f)

    inputs = {i.get("name"): i for i in dash.get("__inputs", [])}
    if inputs.get("DS_PROMETHEUS", {}).get("pluginId") != "prometheus" or inputs["DS_PROMETHEUS"].get("type") != "datasource":
        fail("__inputs has no Prometheus datasource input named DS_PROMETHEUS")
    if dash.get("id") is not None:
        fail("top-level id must be null in an importable dashboard")

    # No datasource may be hard-wired: everything goes through ${DS_PROMETHEUS}.
    def check_ds(where, ds):
        if ds != {"type": "prometheus", "uid": DS_UID}:
            fail(f"{where}: datasource is {json.dumps(ds)}, expected the ${{DS_PROMETHEUS}} input")

    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    for name in ("job", "instance", "route"):
        if name not in variables:
            fail(f"templating variable '{name}' missing")
    var_queries = []
    for name, v in variables.items():
        check_ds(f"variable {name}", v.get("datasource"))
        query = v.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query or "")
        if v.get("type") != "query" or not m:
            fail(f"variable {name}: expected a label_values(selector, label) query, got {query!r}")
        if m.group(2) != name:
            fail(f"variable {name} reads label {m.group(2)}")
        var_queries.append({"where": f"variable {name}", "selector": m.group(1), "label": name})
    for name in ("instance", "route"):
        if not (variables[name].get("multi") and variables[name].get("includeAll")):
            fail(f"variable {name} should be multi-value with an All option")

    ids, exprs = set(), []
    for panel in walk_panels(dash.get("panels", [])):
        pid = panel.get("id")
        if pid in ids:
            fail(f"duplicate panel id {pid}")
        ids.add(pid)
        if "gridPos" not in panel:
            fail(f"panel {pid} has no gridPos")
        if panel.get("type") == "row":
            continue
        where = f"panel {pid} '{panel.get('title')}'"
        check_ds(where, panel.get("datasource"))
        targets = panel.get("targets") or fail(f"{where} has no targets")
        for t in targets:
            check_ds(f"{where} target {t.get('refId')}", t.get("datasource"))
            if not t.get("expr"):
                fail(f"{where} target {t.get('refId')} has no expr")
            if panel["type"] == "heatmap" and t.get("format") != "heatmap":
                fail(f"{where}: a heatmap's target must have format 'heatmap'")
            exprs.append({"where": f"{where} [{t['refId']}]", "expr": t["expr"],
                          "legend": t.get("legendFormat", ""), "heatmap": panel["type"] == "heatmap"})

    with open(exprs_out, "w") as f:
        json.dump({"panels": exprs, "variables": var_queries}, f)
    print(f"  SUCCESS: {len(ids)} panels, {len(exprs)} expressions, variables {', '.join(variables)}")


def expand(text, values):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in values:
            return values[name]
        fail(f"unknown variable ${name} in {text!r}")
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, text)
    if "$" in expanded:
        fail(f"unexpanded '$' in {expanded!r}")
    return expanded


def synth(out_path, end):
    end = int(end)
    times = list(range(end - 40 * 60, end + 1, 15))
    base = {"job": "reaperproxy", "otel_scope_name": "ReaperProxy"}
    instances = ["proxy-a:9464", "proxy-b:9464"]
    routes = {"chat": "chat", "quotes": "trading"}
    legs = ["client", "backend"]
    lines = []

    def labels(**kv):
        return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}"

    def series(name, lbl, value_at):
        for i, ts in enumerate(times):
            lines.append(f"{name}{labels(**lbl)} {value_at(i):g} {ts}")

    def counter(rate_per_step):
        return lambda i: rate_per_step * i

    def histogram(family, lbl, buckets, weights, per_step):
        # weights: share of observations in each finite bucket (the rest lands in +Inf).
        cumulative, acc = [], 0.0
        for w in weights:
            acc += w
            cumulative.append(acc)
        for le, share in list(zip(buckets, cumulative)) + [("+Inf", 1.0)]:
            series(f"{family}_bucket", dict(lbl, le=le), lambda i, s=share: per_step * s * i)
        series(f"{family}_sum", lbl, lambda i: per_step * i * 0.05)
        series(f"{family}_count", lbl, lambda i: per_step * i)

    lines.append("# TYPE reaper_connections_active gauge")
    for inst in instances:
        for route, cluster in routes.items():
            series("reaper_connections_active", dict(base, instance=inst, route=route, cluster=cluster), lambda i: 100 + i % 7)

    lines.append("# TYPE reaper_connections_opened counter")
    for inst in instances:
        for route, cluster in routes.items():
            for protocol in ("http/1.1", "h2"):
                series("reaper_connections_opened_total", dict(base, instance=inst, route=route, cluster=cluster, protocol=protocol), counter(3))

    lines.append("# TYPE reaper_connections_closed counter")
    for inst in instances:
        for route, cluster in routes.items():
            for reason in ("client_close", "backend_close", "client_dead", "backend_dead", "close_timeout", "idle_timeout", "shutdown"):
                series("reaper_connections_closed_total", dict(base, instance=inst, route=route, cluster=cluster, reason=reason), counter(1))

    lines.append("# TYPE reaper_connections_reaped counter")
    for inst in instances:
        for route, cluster in routes.items():
            for leg in legs:
                for reason in ("pong_timeout", "close_timeout", "idle_timeout"):
                    series("reaper_connections_reaped_total", dict(base, instance=inst, route=route, cluster=cluster, leg=leg, reason=reason), counter(0.5))

    lines.append("# TYPE reaper_zombies_observed counter")
    for inst in instances:
        for leg in legs:
            series("reaper_zombies_observed_total", dict(base, instance=inst, route="chat", cluster="chat", leg=leg), counter(0.2))

    lines.append("# TYPE reaper_connections_refused counter")
    for inst in instances:
        series("reaper_connections_refused_total", dict(base, instance=inst, route="chat", cluster="chat", reason="limit"), counter(0.5))

    lines.append("# TYPE reaper_pings_sent counter")
    for inst in instances:
        for route in routes:
            for leg in legs:
                series("reaper_pings_sent_total", dict(base, instance=inst, route=route, leg=leg), counter(100))

    lines.append("# TYPE reaper_pong_rtt_seconds histogram")
    rtt_buckets = ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30"]
    for inst in instances:
        for route in routes:
            for leg in legs:
                histogram("reaper_pong_rtt_seconds", dict(base, instance=inst, route=route, leg=leg), rtt_buckets,
                          [0.05, 0.2, 0.3, 0.2, 0.1, 0.08, 0.04, 0.02, 0.005, 0.003, 0.001, 0.0005, 0.0005], 100)

    lines.append("# TYPE reaper_connection_duration_seconds histogram")
    duration_buckets = ["1", "5", "15", "30", "60", "300", "900", "3600", "21600", "86400"]
    for inst in instances:
        for route in routes:
            for reason in ("client_close", "client_dead", "idle_timeout"):
                histogram("reaper_connection_duration_seconds", dict(base, instance=inst, route=route, reason=reason), duration_buckets,
                          [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1, 0.05, 0.04], 2)

    kestrel = {"job": "reaperproxy", "otel_scope_name": "Microsoft.AspNetCore.Server.Kestrel",
               "network_transport": "tcp", "network_type": "ipv4", "server_address": "127.0.0.1"}
    lines.append("# TYPE kestrel_active_connections gauge")
    for inst in instances:
        for port in ("8080", "9464"):
            series("kestrel_active_connections", dict(kestrel, instance=inst, server_port=port), lambda i: 200 + i % 5)
    lines.append("# TYPE kestrel_upgraded_connections gauge")
    for inst in instances:
        series("kestrel_upgraded_connections", dict(kestrel, instance=inst, server_port="8080"), lambda i: 150 + i % 5)

    hosting = {"job": "reaperproxy", "otel_scope_name": "Microsoft.AspNetCore.Hosting", "http_request_method": "GET",
               "network_protocol_version": "1.1", "url_scheme": "http"}
    lines.append("# TYPE http_server_request_duration_seconds histogram")
    for inst in instances:
        for route, status in (("{**catch-all}", "101"), ("{**catch-all}", "502"), ("/metrics", "200")):
            histogram("http_server_request_duration_seconds",
                      dict(hosting, instance=inst, http_route=route, http_response_status_code=status), ["0.1"], [0.9], 5)

    lines.append("# EOF")
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"  wrote {len(lines)} samples/lines of synthetic series ending at {end}")


def get(base_url, path, params):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{base_url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with opener.open(url, timeout=20) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:  # 400/422 carry the parse or evaluation error
        return json.load(e)


def query(base_url, exprs_path, end):
    with open(exprs_path) as f:
        todo = json.load(f)
    failures = 0
    for values in SUBSTITUTIONS:
        print(f"  variables: {values}")
        for item in todo["panels"]:
            expr = expand(item["expr"], values)
            answer = get(base_url, "/api/v1/query", {"query": expr, "time": end})
            if answer.get("status") != "success":
                print(f"  FAILED {item['where']}: {answer.get('errorType')}: {answer.get('error')}\n         {expr}")
                failures += 1
                continue
            result = answer["data"]["result"]
            if not result:
                print(f"  FAILED {item['where']}: no data on the synthetic series (a metric or label outside the contract?)\n         {expr}")
                failures += 1
                continue
            wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", item["legend"]))
            missing = [w for w in sorted(wanted) if any(w not in r["metric"] for r in result)]
            if missing:
                print(f"  FAILED {item['where']}: legend uses {missing}, which the result does not carry\n         {expr}")
                failures += 1
                continue
            print(f"  ok   {item['where']}: {len(result)} series")
        for item in todo["variables"]:
            selector = expand(item["selector"], values)
            answer = get(base_url, "/api/v1/series", {"match[]": selector, "start": int(end) - 3600, "end": end})
            if answer.get("status") != "success":
                print(f"  FAILED {item['where']}: {answer.get('errorType')}: {answer.get('error')}\n         {selector}")
                failures += 1
                continue
            found = sorted({s[item["label"]] for s in answer["data"] if item["label"] in s})
            if not found:
                print(f"  FAILED {item['where']}: no '{item['label']}' values for {selector}")
                failures += 1
                continue
            print(f"  ok   {item['where']}: {found}")
    if failures:
        fail(f"{failures} expression(s) failed")
    print("  SUCCESS: every expression parses, evaluates and returns labelled data")


if __name__ == "__main__":
    commands = {"lint": lint, "synth": synth, "query": query}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    commands[sys.argv[1]](*sys.argv[2:])
