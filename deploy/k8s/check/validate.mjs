// Validates rendered Kubernetes manifests offline; run by deploy/k8s/check.sh, which installs the npm
// packages of package.json beside a copy of this file.
//
//   node validate.mjs OUTDIR NAME=RENDERED.yaml... [--adapter NAME=ADAPTER-RULES.yaml]...
//
// 1. Schema: every object is emitted as a typed TypeScript literal (`const o: IDeployment = {...}`,
//    types from kubernetes-models and @kubernetes-models/prometheus-operator) and `tsc --noEmit` checks
//    them: wrong types, missing required fields and unknown fields (`replica`, `intervall`) are errors.
//    The models' own validate() (their JSON schemas) runs too. A kind without a schema here is an error.
// 2. Cross-references inside each rendering: probes, ports, selectors, the HPA's target, the
//    ServiceMonitor's port, the grace period against the drain in reaper.json, memory against
//    MaxConnections (see the `check*` functions below for the exact rules).
// 3. Writes each ConfigMap's reaper.json to OUTDIR/configs/NAME--CONFIGMAP.json (listed in
//    OUTDIR/configs.txt) for check.sh to run through `ReaperProxy --check-config`.
// Exits 1 if anything fails, naming the rendering, the object and the field.

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

// The proxy's contract (README "Admin listener", "Reaper keys"; deploy/README.md "Sizing").
const CONTRACT = {
  configDir: "/etc/reaperproxy",
  configKey: "reaper.json",
  uid: 1654,
  readinessPath: "/readyz",
  livenessPath: "/healthz",
  metricsPath: "/metrics",
  adminPortName: "admin",
  publicPortName: "http",
  defaultDrainPeriodS: 10, // Reaper:Drain:Period
  defaultCloseTimeoutS: 5, // Reaper:Heartbeat:CloseTimeout
  exitMarginS: 5, // the proxy exits within Period + CloseTimeout + a small margin
  baseRssMiB: 90, // measured: idle proxy, VmRSS (deploy/README.md)
  perConnectionKiB: 35, // docs/performance.md: RSS per idle proxied WebSocket
  memoryHeadroom: 1.25, // the limit must cover at least 125% of base + MaxConnections x per-connection
  connectionsMetric: "reaper_connections_active",
};

const SCHEMAS = {
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "ConfigMap"],
  "v1/Service": ["kubernetes-models/v1/Service", "Service"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "PodDisruptionBudget"],
  "autoscaling/v2/HorizontalPodAutoscaler": ["kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler", "HorizontalPodAutoscaler"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
};

const errors = [];
const fail = (where, message) => errors.push(`${where}: ${message}`);
const idOf = (o) => `${o.kind}/${o.metadata?.name ?? "?"}`;

// ---- arguments -------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const outDir = args.length ? resolve(args.shift()) : undefined;
if (!outDir) {
  console.error("usage: node validate.mjs OUTDIR NAME=RENDERED.yaml... [--adapter NAME=RULES.yaml]...");
  process.exit(2);
}
const renderings = [];
const adapters = new Map();
for (let i = 0; i < args.length; i++) {
  const isAdapter = args[i] === "--adapter";
  const spec = isAdapter ? args[++i] : args[i];
  const eq = spec.indexOf("=");
  const [name, file] = [spec.slice(0, eq), spec.slice(eq + 1)];
  if (isAdapter) adapters.set(name, file);
  else renderings.push({ name, file });
}

function loadYaml(file, where) {
  const docs = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      for (const e of doc.errors) fail(where, `YAML: ${e.message}`);
      continue;
    }
    const value = doc.toJS();
    if (value !== null && value !== undefined) docs.push(value);
  }
  return docs;
}

for (const r of renderings) r.objects = loadYaml(r.file, r.name);

// ---- 1. schemas --------------------------------------------------------------------------------------

mkdirSync(join(outDir, "ts"), { recursive: true });
const tsFiles = [];
const lineOwners = new Map(); // ts file -> [{from, to, owner}]

async function checkSchemas(r) {
  const imports = new Map();
  const body = [];
  const owners = [];
  let line = 1;
  for (const [i, o] of r.objects.entries()) {
    const key = `${o.apiVersion}/${o.kind}`;
    const schema = SCHEMAS[key];
    if (!schema) {
      fail(`${r.name}: ${idOf(o)}`, `no schema for ${key} in deploy/k8s/check/validate.mjs (add it to SCHEMAS)`);
      continue;
    }
    const [module, cls] = schema;
    imports.set(`I${cls}`, module);
    const text = `export const o${i}: I${cls} = ${JSON.stringify(o, null, 2)};\n`;
    const from = line;
    line += text.split("\n").length - 1;
    owners.push({ from, to: line, owner: `${r.name}: ${idOf(o)}` });
    body.push(text);
    try {
      const Model = (await import(module))[cls];
      new Model(o).validate();
    } catch (e) {
      fail(`${r.name}: ${idOf(o)}`, `schema: ${String(e.message ?? e).split("\n").slice(0, 6).join(" | ")}`);
    }
  }
  const header = [...imports].map(([type, module]) => `import type { ${type} } from "${module}";\n`).join("");
  const offset = header.split("\n").length - 1;
  const file = join(outDir, "ts", `${r.name.replace(/[^A-Za-z0-9_-]/g, "_")}.ts`);
  writeFileSync(file, header + body.join(""));
  lineOwners.set(file, owners.map((x) => ({ ...x, from: x.from + offset, to: x.to + offset })));
  tsFiles.push(file);
}

// The Prometheus adapter has no published types; this is the part of its config.yaml the rule uses
// (kubernetes-sigs/prometheus-adapter docs/config.md), strict like the models: unknown fields are errors.
const ADAPTER_TYPES = `
export interface IGroupResource { group?: string; resource: string }
export interface IAdapterRule {
  seriesQuery: string;
  seriesFilters?: Array<{ is?: string; isNot?: string }>;
  resources?: { overrides?: { [label: string]: IGroupResource }; template?: string; namespaced?: boolean };
  name?: { matches?: string; as?: string };
  metricsQuery: string;
}
export interface IAdapterConfig {
  rules?: IAdapterRule[];
  resourceRules?: unknown;
  externalRules?: IAdapterRule[];
}
`;

function checkAdapterSchema(name, file) {
  const docs = loadYaml(file, `${name}: ${file}`);
  if (docs.length !== 1) {
    fail(`${name}: ${file}`, `expected one YAML document, found ${docs.length}`);
    return null;
  }
  const ts = join(outDir, "ts", `adapter_${name.replace(/[^A-Za-z0-9_-]/g, "_")}.ts`);
  writeFileSync(ts, `${ADAPTER_TYPES}\nexport const config: IAdapterConfig = ${JSON.stringify(docs[0], null, 2)};\n`);
  lineOwners.set(ts, [{ from: 1, to: 1e9, owner: `${name}: ${file}` }]);
  tsFiles.push(ts);
  return docs[0];
}

function runTsc() {
  const tsconfig = {
    compilerOptions: {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: "es2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      types: [],
    },
    files: tsFiles,
  };
  const tsconfigPath = join(outDir, "tsconfig.json");
  writeFileSync(tsconfigPath, JSON.stringify(tsconfig, null, 2));
  const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", tsconfigPath, "--pretty", "false"], { encoding: "utf8" });
  if (result.status === 0) return;
  const out = `${result.stdout}${result.stderr}`.trim();
  let mapped = 0;
  for (const text of out.split("\n")) {
    const m = /^(.*)\((\d+),\d+\): (error TS\d+: .*)$/.exec(text);
    if (!m) continue;
    const owner = (lineOwners.get(resolve(m[1])) ?? []).find((x) => +m[2] >= x.from && +m[2] < x.to)?.owner ?? m[1];
    fail(owner, `schema (tsc): ${m[3]}`);
    mapped++;
  }
  if (!mapped) fail("tsc", out || `exited ${result.status}`);
}

// ---- 2. cross-references -------------------------------------------------------------------------------

function seconds(value, where, fallback) {
  if (value === undefined || value === null) return fallback;
  const s = String(value).trim();
  let m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (m) return +m[1] * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
  m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(s);
  if (m) return (+(m[1] ?? 0)) * 86400 + +m[2] * 3600 + +m[3] * 60 + +m[4];
  fail(where, `cannot read duration '${s}'`);
  return fallback;
}

function bytes(quantity) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] ?? 1;
  return +m[1] * unit;
}

function matchesSelector(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels?.[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = labels && Object.hasOwn(labels, e.key);
    const ok = {
      In: () => has && e.values.includes(labels[e.key]),
      NotIn: () => !has || !e.values.includes(labels[e.key]),
      Exists: () => has,
      DoesNotExist: () => !has,
    }[e.operator];
    if (!ok || !ok()) return false;
  }
  return Object.keys(selector.matchLabels ?? {}).length + (selector.matchExpressions ?? []).length > 0;
}

const matchesMap = (map, labels) =>
  !!map && Object.keys(map).length > 0 && Object.entries(map).every(([k, v]) => labels?.[k] === v);

const isProxy = (c) => c.name === "reaperproxy" || /(^|\/)reaperproxy(:|@|$)/.test(c.image ?? "");

function urlPorts(value) {
  return String(value)
    .split(";")
    .filter(Boolean)
    .map((u) => {
      const m = /^https?:\/\/([^/]+):(\d+)\/?$/.exec(u.trim());
      return m ? { host: m[1], port: +m[2] } : { host: null, port: NaN, raw: u };
    });
}

function reaperConfigOf(objects, configMapName, where) {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === configMapName);
  if (!cm) {
    fail(where, `mounts ConfigMap '${configMapName}', which is not in this rendering`);
    return null;
  }
  const text = cm.data?.[CONTRACT.configKey];
  if (text === undefined) {
    fail(`${where} -> ${idOf(cm)}`, `has no key ${CONTRACT.configKey}`);
    return null;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${where} -> ${idOf(cm)}`, `${CONTRACT.configKey} is not JSON: ${e.message}`);
    return null;
  }
}

function checkProbe(container, probeName, expectedPaths, where) {
  const probe = container[probeName];
  if (!probe) {
    if (probeName !== "startupProbe") fail(where, `${probeName} missing`);
    return;
  }
  const get = probe.httpGet;
  if (!get) {
    fail(where, `${probeName} must be httpGet (the image has no shell or curl)`);
    return;
  }
  if (!expectedPaths.includes(get.path)) fail(where, `${probeName}.httpGet.path is '${get.path}', the proxy serves ${expectedPaths.join(" or ")}`);
  if (get.port !== CONTRACT.adminPortName)
    fail(where, `${probeName}.httpGet.port is '${get.port}', must be the admin port by name ('${CONTRACT.adminPortName}'): the public port proxies every path`);
  if (get.scheme && get.scheme !== "HTTP") fail(where, `${probeName}.httpGet.scheme is ${get.scheme}; the admin listener is plain HTTP`);
}

function checkDeployment(r, d) {
  const where = `${r.name}: ${idOf(d)}`;
  const pod = d.spec?.template ?? {};
  const podLabels = pod.metadata?.labels ?? {};
  if (!matchesSelector(d.spec?.selector, podLabels)) fail(where, "spec.selector does not match the pod template's labels");
  for (const t of pod.spec?.topologySpreadConstraints ?? [])
    if (!matchesSelector(t.labelSelector, podLabels)) fail(where, `topologySpreadConstraints (${t.topologyKey}) labelSelector does not match the pod's labels`);

  const proxies = (pod.spec?.containers ?? []).filter(isProxy);
  if (proxies.length === 0) return null;
  if (proxies.length > 1) fail(where, "more than one ReaperProxy container");
  const c = proxies[0];
  const cw = `${where} container ${c.name}`;
  const podSec = pod.spec?.securityContext ?? {};
  const sec = c.securityContext ?? {};

  // Ports, and the listeners bound to them through the environment.
  const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
  for (const [portName, envName] of [
    [CONTRACT.publicPortName, "ASPNETCORE_URLS"],
    [CONTRACT.adminPortName, "Reaper__AdminUrls"],
  ]) {
    if (!ports.has(portName)) {
      fail(cw, `no container port named '${portName}'`);
      continue;
    }
    if (!env.has(envName)) {
      fail(cw, `env ${envName} missing: the proxy would listen on 127.0.0.1, unreachable from the kubelet and other pods`);
      continue;
    }
    for (const u of urlPorts(env.get(envName))) {
      if (u.port !== ports.get(portName)) fail(cw, `env ${envName}=${env.get(envName)} does not listen on port '${portName}' (${ports.get(portName)})`);
      else if (!["0.0.0.0", "[::]", "*", "+"].includes(u.host)) fail(cw, `env ${envName}=${env.get(envName)} binds ${u.host}, not all interfaces`);
    }
  }

  checkProbe(c, "readinessProbe", [CONTRACT.readinessPath], cw);
  checkProbe(c, "livenessProbe", [CONTRACT.livenessPath], cw);
  checkProbe(c, "startupProbe", [CONTRACT.livenessPath, CONTRACT.readinessPath], cw);

  // Security context: container-level, or pod-level where Kubernetes inherits it.
  const eff = (k) => sec[k] ?? podSec[k];
  if (eff("runAsNonRoot") !== true) fail(cw, "securityContext.runAsNonRoot must be true");
  if (eff("runAsUser") !== CONTRACT.uid) fail(cw, `securityContext.runAsUser must be ${CONTRACT.uid} (the image's user)`);
  if (sec.readOnlyRootFilesystem !== true) fail(cw, "securityContext.readOnlyRootFilesystem must be true");
  if (sec.allowPrivilegeEscalation !== false) fail(cw, "securityContext.allowPrivilegeEscalation must be false");
  if (!(sec.capabilities?.drop ?? []).includes("ALL")) fail(cw, "securityContext.capabilities.drop must include ALL");
  if ((sec.capabilities?.add ?? []).length) fail(cw, "securityContext.capabilities.add must be empty");
  if (eff("seccompProfile")?.type !== "RuntimeDefault") fail(cw, "seccompProfile.type must be RuntimeDefault");

  // The config file: the whole ConfigMap at /etc/reaperproxy (no subPath: it would never be updated).
  const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === CONTRACT.configDir);
  let config = null;
  if (!mount) fail(cw, `nothing mounted at ${CONTRACT.configDir} (the image reads ${CONTRACT.configDir}/${CONTRACT.configKey})`);
  else {
    if (mount.subPath || mount.subPathExpr) fail(cw, `${CONTRACT.configDir} is a subPath mount: ConfigMap updates would never reach the proxy`);
    const volume = (pod.spec?.volumes ?? []).find((v) => v.name === mount.name);
    if (!volume?.configMap) fail(cw, `volume '${mount.name}' at ${CONTRACT.configDir} is not a ConfigMap volume`);
    else {
      const items = volume.configMap.items;
      if (items && !items.some((it) => it.path === CONTRACT.configKey)) fail(cw, `volume '${mount.name}' has items but none at path ${CONTRACT.configKey}`);
      config = reaperConfigOf(r.objects, volume.configMap.name, cw);
    }
  }
  for (const m of c.volumeMounts ?? [])
    if (m.mountPath !== CONTRACT.configDir) {
      const v = (pod.spec?.volumes ?? []).find((x) => x.name === m.name);
      if (v?.emptyDir) fail(cw, `emptyDir at ${m.mountPath}: the proxy writes nothing to disk, so it needs no writable volume`);
    }

  // preStop: nothing, or the kubelet's own sleep (no shell in the image for `exec: sleep`).
  const preStop = c.lifecycle?.preStop;
  let preStopS = 0;
  if (preStop) {
    if (preStop.sleep) preStopS = preStop.sleep.seconds;
    else fail(cw, "lifecycle.preStop must be a `sleep` action or absent: the image has no shell");
  }

  if (config) {
    const reaper = config.Reaper ?? {};
    const cmw = `${cw} (${CONTRACT.configKey})`;
    // Grace period > preStop + drain + the longest closing handshake + margin.
    const drain = seconds(reaper.Drain?.Period, `${cmw} Reaper:Drain:Period`, CONTRACT.defaultDrainPeriodS);
    // The longest closing handshake any policy may take (policies inherit Heartbeat's when unset).
    const close = Math.max(
      seconds(reaper.Heartbeat?.CloseTimeout, `${cmw} Reaper:Heartbeat:CloseTimeout`, CONTRACT.defaultCloseTimeoutS),
      ...Object.entries(reaper.Policies ?? {}).map(([n, p]) => seconds(p?.CloseTimeout, `${cmw} Reaper:Policies:${n}:CloseTimeout`, 0)),
    );
    const grace = pod.spec?.terminationGracePeriodSeconds ?? 30;
    const needed = preStopS + drain + close + CONTRACT.exitMarginS;
    if (!(grace > needed))
      fail(where, `terminationGracePeriodSeconds ${grace} must exceed preStop ${preStopS}s + Drain:Period ${drain}s + CloseTimeout ${close}s + margin ${CONTRACT.exitMarginS}s = ${needed}s`);
    r.notes.push(`${idOf(d)}: grace ${grace}s > preStop ${preStopS}s + drain ${drain}s + close ${close}s + margin ${CONTRACT.exitMarginS}s`);

    // Listeners come from the environment; a Kestrel:Endpoints section would silently override them.
    if (config.Kestrel?.Endpoints) fail(cmw, "Kestrel:Endpoints set: it overrides ASPNETCORE_URLS, so the ports above would not be the ones bound");
    if (reaper.AdminUrls) fail(cmw, "Reaper:AdminUrls set in the file: the Reaper__AdminUrls env wins; keep one source");

    // Memory against the connection cap. `auto` derives the cap from the container runtime's nofile
    // limit (often 1,048,576 -> 498,074 WebSockets), which no memory limit here would hold.
    const max = reaper.MaxConnections;
    const limit = bytes(c.resources?.limits?.memory);
    const request = bytes(c.resources?.requests?.memory);
    if (typeof max !== "number") fail(cmw, `Reaper:MaxConnections is ${JSON.stringify(max ?? "auto")}: set a number sized to the memory limit (deploy/README.md, Sizing)`);
    if (!(limit > 0)) fail(cw, "resources.limits.memory missing");
    if (!(request > 0)) fail(cw, "resources.requests.memory missing");
    if (typeof max === "number" && limit > 0) {
      const estimate = CONTRACT.baseRssMiB * 2 ** 20 + max * CONTRACT.perConnectionKiB * 2 ** 10;
      const neededBytes = estimate * CONTRACT.memoryHeadroom;
      const mib = (b) => `${Math.round(b / 2 ** 20)} MiB`;
      if (limit < neededBytes)
        fail(cw, `memory limit ${c.resources.limits.memory} < ${CONTRACT.memoryHeadroom} x (${CONTRACT.baseRssMiB} MiB + ${max} x ${CONTRACT.perConnectionKiB} KiB = ${mib(estimate)}) = ${mib(neededBytes)}`);
      r.notes.push(`${idOf(d)}: memory limit ${c.resources.limits.memory} >= ${CONTRACT.memoryHeadroom} x (${CONTRACT.baseRssMiB} MiB + ${max} x ${CONTRACT.perConnectionKiB} KiB) = ${mib(neededBytes)}`);
    }
  }
  return { deployment: d, podLabels, proxy: c, ports: pod.spec?.containers.flatMap((x) => (x.ports ?? []).map((p) => ({ ...p, container: x.name }))) };
}

function resolveTargetPort(pod, servicePort) {
  const target = servicePort.targetPort ?? servicePort.port;
  return pod.ports.find((p) => (typeof target === "number" ? p.containerPort === target : p.name === target));
}

function checkCrossReferences(r) {
  const objs = r.objects;
  const of = (kind) => objs.filter((o) => o.kind === kind);
  const pods = of("Deployment").map((d) => checkDeployment(r, d)).filter(Boolean);
  if (pods.length === 0) {
    fail(r.name, "no Deployment with a ReaperProxy container");
    return;
  }
  const selected = (sel, matcher) => pods.filter((p) => matcher(sel, p.podLabels));

  for (const s of of("Service")) {
    const where = `${r.name}: ${idOf(s)}`;
    const targets = selected(s.spec?.selector, matchesMap);
    if (targets.length === 0) {
      fail(where, "selector matches no ReaperProxy pod in this rendering");
      continue;
    }
    const external = ["LoadBalancer", "NodePort"].includes(s.spec?.type);
    for (const sp of s.spec?.ports ?? [])
      for (const p of targets) {
        const port = resolveTargetPort(p, sp);
        if (!port) fail(where, `port '${sp.name}' targets '${sp.targetPort}', which no container of ${idOf(p.deployment)} declares`);
        else if (port.container !== p.proxy.name)
          fail(where, `port '${sp.name}' targets container '${port.container}' (${sp.targetPort}), not the proxy: traffic would bypass ReaperProxy`);
        else if (external && port.name === CONTRACT.adminPortName) fail(where, `a ${s.spec.type} Service exposes the admin port (/connections lists client addresses)`);
      }
  }

  for (const pdb of of("PodDisruptionBudget"))
    if (selected(pdb.spec?.selector, matchesSelector).length === 0) fail(`${r.name}: ${idOf(pdb)}`, "selector matches no ReaperProxy pod's labels");

  for (const h of of("HorizontalPodAutoscaler")) {
    const where = `${r.name}: ${idOf(h)}`;
    const ref = h.spec?.scaleTargetRef ?? {};
    const target = pods.find((p) => p.deployment.metadata.name === ref.name);
    if (ref.kind !== "Deployment" || ref.apiVersion !== "apps/v1" || !target)
      fail(where, `scaleTargetRef ${ref.apiVersion}/${ref.kind}/${ref.name} is not a ReaperProxy Deployment of this rendering`);
    else if (target.deployment.spec.replicas !== undefined)
      fail(where, `${idOf(target.deployment)} sets spec.replicas (${target.deployment.spec.replicas}) while this HPA owns it: every apply would scale it back and close WebSockets`);
    if (!(h.spec.minReplicas >= 1 && h.spec.minReplicas <= h.spec.maxReplicas)) fail(where, `minReplicas ${h.spec.minReplicas} / maxReplicas ${h.spec.maxReplicas}`);
    for (const m of h.spec?.metrics ?? []) {
      if (m.type === "Resource") continue;
      const metric = m.pods?.metric?.name ?? m.object?.metric?.name ?? m.external?.metric?.name;
      const rules = r.adapter?.rules ?? [];
      if (!rules.some((rule) => adapterMetricName(rule) === metric))
        fail(where, `metric '${metric}' (${m.type}) is served by no Prometheus adapter rule of this overlay`);
      r.notes.push(`${idOf(h)}: ${m.type} metric ${metric} served by the adapter rule`);
    }
  }

  for (const sm of of("ServiceMonitor")) {
    const where = `${r.name}: ${idOf(sm)}`;
    const services = of("Service").filter((s) => matchesSelector(sm.spec?.selector, s.metadata?.labels));
    if (services.length === 0) fail(where, "selector matches no Service in this rendering");
    for (const ep of sm.spec?.endpoints ?? []) {
      const withPort = services.filter((s) => (s.spec?.ports ?? []).some((p) => p.name === ep.port));
      if (!withPort.length) {
        fail(where, `endpoint port '${ep.port}' is not a port name of the selected Service(s) ${services.map(idOf).join(", ")}`);
        continue;
      }
      for (const s of withPort) {
        const sp = s.spec.ports.find((p) => p.name === ep.port);
        for (const p of selected(s.spec.selector, matchesMap)) {
          const port = resolveTargetPort(p, sp);
          if (port?.container !== p.proxy.name || port?.name !== CONTRACT.adminPortName)
            fail(where, `endpoint port '${ep.port}' of ${idOf(s)} reaches ${port ? `${port.container}:${port.name}` : "nothing"}, not the proxy's admin port`);
        }
      }
      if ((ep.path ?? "/metrics") !== CONTRACT.metricsPath) fail(where, `endpoint path '${ep.path}', the proxy serves ${CONTRACT.metricsPath}`);
    }
  }
}

function adapterMetricName(rule) {
  const as = rule.name?.as;
  if (as) return as;
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(rule.seriesQuery ?? "");
  return m?.[1];
}

function checkAdapter(name, config) {
  const where = `${name}: Prometheus adapter rules`;
  const rules = config?.rules ?? [];
  if (!rules.length) fail(where, "no rules");
  for (const rule of rules) {
    if (!rule.seriesQuery?.includes(CONTRACT.connectionsMetric)) continue;
    for (const t of ["<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"])
      if (!rule.metricsQuery?.includes(t)) fail(where, `metricsQuery lacks ${t}`);
    const o = rule.resources?.overrides ?? {};
    if (o.pod?.resource !== "pod" || o.namespace?.resource !== "namespace")
      fail(where, "resources.overrides must map the namespace and pod labels (the HPA asks per pod)");
    if (rule.name?.matches && !new RegExp(rule.name.matches).test(CONTRACT.connectionsMetric)) fail(where, `name.matches '${rule.name.matches}' does not match ${CONTRACT.connectionsMetric}`);
  }
}

// ---- 3. the ConfigMaps' reaper.json, for --check-config ----------------------------------------------------

function writeConfigs() {
  mkdirSync(join(outDir, "configs"), { recursive: true });
  const lines = [];
  for (const r of renderings)
    for (const cm of r.objects.filter((o) => o.kind === "ConfigMap" && o.data?.[CONTRACT.configKey] !== undefined)) {
      const file = join(outDir, "configs", `${r.name}--${cm.metadata.name}.json`);
      writeFileSync(file, cm.data[CONTRACT.configKey]);
      lines.push(`${r.name}: ${idOf(cm)}\t${file}`);
    }
  writeFileSync(join(outDir, "configs.txt"), lines.join("\n") + (lines.length ? "\n" : ""));
  return lines.length;
}

// ---- main ----------------------------------------------------------------------------------------------

for (const r of renderings) {
  r.notes = [];
  // NAME#N (check.sh's self-test mutants) takes NAME's adapter rules.
  const adapterFile = adapters.get(r.name) ?? adapters.get(r.name.split("#")[0]);
  if (adapterFile) {
    r.adapter = checkAdapterSchema(r.name, adapterFile);
    if (r.adapter) checkAdapter(r.name, r.adapter);
  }
  await checkSchemas(r);
  checkCrossReferences(r);
}
runTsc();
const configs = writeConfigs();

for (const r of renderings) {
  const mine = errors.filter((e) => e.startsWith(`${r.name}:`));
  console.log(`  ${mine.length ? "FAIL" : "ok  "} ${r.name}: ${r.objects.length} objects (${r.objects.map(idOf).join(", ")})${r.adapter ? " + its Prometheus adapter rules" : ""}`);
  for (const n of r.notes) console.log(`         ${n}`);
}
if (errors.length) {
  console.log(`${errors.length} problem(s):`);
  for (const e of errors) console.log(`  error: ${e}`);
  process.exit(1);
}
console.log(`  schemas (tsc --noEmit, unknown fields rejected; models' validate()) and cross-references: ok; ${configs} reaper.json file(s) extracted`);
