#!/usr/bin/env node
// Offline checks of everything under deploy/: Kubernetes manifests against the API
// schemas (kubernetes-models, strict about unknown fields), the properties NetProbe's
// deployment relies on, the Prometheus rules (promtool), the Grafana dashboard, the
// kustomization and the Containerfile.
//
//   node validate.mjs                 run every check (tests/deploy/run.sh does this)
//   node validate.mjs --write-rules   regenerate deploy/prometheus/netprobe-rules.yml
//                                     from deploy/prometheus/rules.yaml
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

import YAML from "yaml";
import ts from "typescript";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const DEPLOY = join(ROOT, "deploy");
const P = {
  agent: join(DEPLOY, "agent.yaml"),
  namespace: join(DEPLOY, "namespace.yaml"),
  kustomization: join(DEPLOY, "kustomization.yaml"),
  serviceMonitor: join(DEPLOY, "prometheus/servicemonitor.yaml"),
  rules: join(DEPLOY, "prometheus/rules.yaml"),
  plainRules: join(DEPLOY, "prometheus/netprobe-rules.yml"),
  rulesTest: join(HERE, "rules_test.yml"),
  dashboard: join(DEPLOY, "grafana/netprobe-dashboard.json"),
  containerfile: join(DEPLOY, "Containerfile"),
  readme: join(DEPLOY, "README.md"),
  metricsDoc: join(ROOT, "docs/metrics.md"),
  options: join(ROOT, "cmd/netprobe-agent/options.cpp"),
  cmake: join(ROOT, "CMakeLists.txt"),
  setupDeps: join(ROOT, "scripts/setup-deps.sh"),
  agentBin: join(ROOT, "bin/netprobe-agent"),
};

const AGENT_LABEL = { app: "netprobe-agent" };
const METRICS_PORT = 8081;
const CAPS = ["BPF", "NET_ADMIN", "PERFMON"];
const SECURITY_METRICS = ["netprobe_security_events_total", "netprobe_security_active_attacks"];
// Series Prometheus makes itself, allowed in alert rules.
const PROMETHEUS_SERIES = ["up"];

// ---------------------------------------------------------------- tiny runner
class Skip extends Error {}
const skip = (why) => { throw new Skip(why); };
const results = { passed: 0, failed: 0, skipped: 0 };
function check(name, fn) {
  try {
    fn();
    results.passed++;
    console.log(`ok      ${name}`);
  } catch (e) {
    if (e instanceof Skip) {
      results.skipped++;
      console.log(`skipped ${name}: ${e.message}`);
    } else {
      results.failed++;
      console.log(`FAILED  ${name}\n        ${String(e && e.message ? e.message : e).replace(/\n/g, "\n        ")}`);
    }
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(actual, expected, what) {
  assert(isDeepStrictEqual(actual, expected), `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error) throw r.error;
  return r;
}

// ---------------------------------------------------------------- loading
function loadYamlDocs(file, text = readFileSync(file, "utf8")) {
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
    if (d.warnings.length) throw new Error(`${file}: ${d.warnings.map((e) => e.message).join("; ")}`);
    const v = d.toJS({ maxAliasCount: 0 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}
const docId = (d) => `${d.kind}/${d.metadata?.name}`;
const find = (docs, kind, name) => {
  const d = docs.find((x) => x.kind === kind && (name === undefined || x.metadata?.name === name));
  assert(d, `no ${kind}${name ? ` named ${name}` : ""}`);
  return d;
};

// ---------------------------------------------------------------- schemas
const MODELS = {
  v1: { mod: core, types: "kubernetes-models/v1" },
  "apps/v1": { mod: apps, types: "kubernetes-models/apps/v1" },
  "rbac.authorization.k8s.io/v1": { mod: rbac, types: "kubernetes-models/rbac.authorization.k8s.io/v1" },
  "monitoring.coreos.com/v1": { mod: monitoring, types: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1" },
};
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"]);

function modelFor(doc) {
  const m = MODELS[doc.apiVersion];
  assert(m, `${docId(doc)}: apiVersion ${doc.apiVersion} is not one this test knows`);
  const cls = m.mod[doc.kind];
  assert(cls && cls.kind === doc.kind && cls.apiVersion === doc.apiVersion, `${docId(doc)}: no model for ${doc.apiVersion} ${doc.kind}`);
  return { cls, typesModule: `${m.types}/${doc.kind}`, typeName: `I${doc.kind}` };
}

// JSON-schema validation (types, required fields, enums, patterns): kubernetes-models.
function schemaValidate(doc) {
  const { cls } = modelFor(doc);
  try {
    new cls(doc).validate();
  } catch (e) {
    throw new Error(`${docId(doc)}: ${e.message}`);
  }
}

// The Kubernetes OpenAPI schemas allow unknown fields, which the API server then
// rejects (kubectl's strict field validation) or drops: a misspelt
// `readOnlyRootFilesystm: true` would pass validate() above. The models' TypeScript
// declarations list every field, so walk each object along its declared type.
const strict = (() => {
  let checker, rootsType;
  const kinds = new Map(); // "apiVersion kind" -> root type
  function build(docs) {
    const wanted = new Map();
    for (const d of docs) {
      const m = modelFor(d);
      wanted.set(`${d.apiVersion} ${d.kind}`, m);
    }
    const entries = [...wanted.entries()];
    const virtual = join(HERE, "__strict_roots__.mts");
    const src = entries.map(([, m], i) => `import type { ${m.typeName} as T${i} } from "${m.typesModule}";`).join("\n")
      + `\nexport interface Roots {\n${entries.map(([k], i) => `  ${JSON.stringify(k)}: T${i};`).join("\n")}\n}\n`;
    const options = {
      strict: true, noEmit: true, skipLibCheck: true, types: [],
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (f, lang, ...rest) =>
      resolve(f) === virtual ? ts.createSourceFile(f, src, lang, true) : getSourceFile(f, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (f) => resolve(f) === virtual || fileExists(f);
    const readFile = host.readFile.bind(host);
    host.readFile = (f) => (resolve(f) === virtual ? src : readFile(f));
    const program = ts.createProgram([virtual], options, host);
    const sf = program.getSourceFile(virtual);
    const diags = ts.getPreEmitDiagnostics(program, sf);
    assert(!diags.length, `type declarations did not resolve: ${diags.map((d) => ts.flattenDiagnosticMessageText(d.messageText, " ")).join("; ")}`);
    checker = program.getTypeChecker();
    rootsType = checker.getDeclaredTypeOfSymbol(checker.getSymbolAtLocation(sf).exports.get("Roots"));
    for (const [k] of entries) {
      const t = checker.getTypeOfSymbol(checker.getPropertyOfType(rootsType, k));
      assert(checker.getPropertyOfType(t, "metadata"), `type of ${k} has no metadata field: declarations not understood`);
      kinds.set(k, t);
    }
  }
  const objectMembers = (t) => (t.isUnion() ? t.types : [t]).filter((m) => m.flags & ts.TypeFlags.Object);
  function walk(value, type, path, errs) {
    if (value === null || typeof value !== "object") return; // scalars: validate() checks them
    type = checker.getNonNullableType(type);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    const members = objectMembers(type);
    if (Array.isArray(value)) {
      const elems = members.filter((m) => checker.isArrayType(m)).map((m) => checker.getTypeArguments(m)[0]);
      if (elems.length) value.forEach((v, i) => walk(v, elems[0], `${path}[${i}]`, errs));
      return;
    }
    const objs = members.filter((m) => !checker.isArrayType(m));
    if (!objs.length) return;
    for (const [k, v] of Object.entries(value)) {
      let next;
      for (const t of objs) {
        const p = checker.getPropertyOfType(t, k);
        if (p) { next = checker.getTypeOfSymbol(p); break; }
        const idx = checker.getIndexTypeOfType(t, ts.IndexKind.String);
        if (idx) { next = idx; break; }
      }
      if (!next) errs.push(`${path}.${k}: unknown field`);
      else walk(v, next, `${path}.${k}`, errs);
    }
  }
  return {
    build,
    check(doc) {
      const t = kinds.get(`${doc.apiVersion} ${doc.kind}`);
      assert(t, `${docId(doc)}: strict checker not built for this kind`);
      const errs = [];
      walk(doc, t, docId(doc), errs);
      assert(!errs.length, errs.join("\n"));
    },
  };
})();

// ---------------------------------------------------------------- PromQL helpers
function docMetricNames() {
  const text = readFileSync(P.metricsDoc, "utf8");
  const names = new Set();
  for (const [, tok] of text.matchAll(/`(netprobe_[a-z0-9_{},]+)`/g)) {
    // netprobe_xdp_rx_{packets,bytes}_total -> both names
    const expand = (s) => {
      const m = s.match(/\{([^}]*)\}/);
      if (!m) return [s];
      return m[1].split(",").flatMap((alt) => expand(s.slice(0, m.index) + alt + s.slice(m.index + m[0].length)));
    };
    // A trailing {...} lists labels: `netprobe_interface_attached{interface,tc_mode,xdp_mode}`.
    for (const n of expand(tok.replace(/\{[^}]*\}$/, ""))) names.add(n);
  }
  return names;
}
const PROMQL_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2", "start", "end"]);
function stripGrafanaVars(expr) {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, "5m")
    .replace(/\$__interval|\$\{__interval\}/g, "1m")
    .replace(/\$__range|\$\{__range\}/g, "1h")
    .replace(/\$\{[A-Za-z_]\w*(:\w+)?\}|\$[A-Za-z_]\w*/g, ".*");
}
// Metric names an expression selects: identifiers outside strings, label matchers,
// ranges and grouping clauses that are neither functions nor keywords.
function metricNames(expr) {
  let s = stripGrafanaVars(expr)
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const out = new Set();
  for (const m of s.matchAll(/(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!PROMQL_KEYWORDS.has(m[1])) out.add(m[1]);
  }
  return [...out];
}
// Syntax check through promtool: every expression as a recording rule.
function promtoolCheckExprs(exprs) {
  const dir = mkdtempSync(join(tmpdir(), "netprobe-promql-"));
  try {
    const f = join(dir, "exprs.yml");
    writeFileSync(f, YAML.stringify({ groups: [{ name: "exprs", rules: exprs.map((e, i) => ({ record: `netprobe:check_expr_${i}`, expr: e })) }] }));
    const r = run("promtool", ["check", "rules", f]);
    assert(r.status === 0, `promtool rejected an expression:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- misc helpers
function quantity(q) {
  const m = String(q).match(/^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/);
  assert(m, `cannot parse quantity ${q}`);
  const mul = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }[m[2]] ?? 1;
  return parseFloat(m[1]) * mul;
}
function projectVersion() {
  const m = readFileSync(P.cmake, "utf8").match(/project\(\s*netprobe\s+VERSION\s+([0-9.]+)/);
  assert(m, "no project VERSION in CMakeLists.txt");
  return m[1];
}
function agentFlags() {
  const flags = new Set([...readFileSync(P.options, "utf8").matchAll(/add_option\("(--[a-z0-9-]+)"/g)].map((m) => m[1]));
  assert(flags.size >= 5, "could not read the agent's flags from options.cpp");
  return flags;
}
function findAll(obj, pred, path = "", out = []) {
  if (obj && typeof obj === "object") {
    for (const [k, v] of Object.entries(obj)) {
      const p = Array.isArray(obj) ? `${path}[${k}]` : `${path}.${k}`;
      if (pred(k, v)) out.push(p);
      findAll(v, pred, p, out);
    }
  }
  return out;
}
function rulesAsPlainFile(prometheusRule) {
  return "# Generated from deploy/prometheus/rules.yaml (the PrometheusRule's spec) by\n"
    + "#   node tests/deploy/validate.mjs --write-rules\n"
    + "# Do not edit: edit rules.yaml and regenerate. For Prometheus without the operator:\n"
    + "#   rule_files: [/etc/prometheus/netprobe-rules.yml]\n"
    + YAML.stringify({ groups: prometheusRule.spec.groups }, { lineWidth: 0 });
}

// ================================================================ main
if (process.argv.includes("--write-rules")) {
  const pr = find(loadYamlDocs(P.rules), "PrometheusRule");
  writeFileSync(P.plainRules, rulesAsPlainFile(pr));
  console.log(`wrote ${P.plainRules}`);
  process.exit(0);
}

let agentDocs = [], nsDocs = [], smDocs = [], ruleDocs = [];
check("YAML parses (agent.yaml, namespace.yaml, prometheus/*.yaml)", () => {
  agentDocs = loadYamlDocs(P.agent);
  nsDocs = loadYamlDocs(P.namespace);
  smDocs = loadYamlDocs(P.serviceMonitor);
  ruleDocs = loadYamlDocs(P.rules);
});
const manifestDocs = () => [...agentDocs, ...nsDocs, ...smDocs, ...ruleDocs];

check("every manifest validates against its API schema (kubernetes-models)", () => {
  const errs = [];
  for (const d of manifestDocs()) {
    try { schemaValidate(d); } catch (e) { errs.push(e.message); }
  }
  assert(manifestDocs().length > 0, "no manifests loaded");
  assert(!errs.length, errs.join("\n"));
});

check("no manifest has fields the API does not know (strict field validation)", () => {
  strict.build(manifestDocs());
  const errs = [];
  for (const d of manifestDocs()) {
    try { strict.check(d); } catch (e) { errs.push(e.message); }
  }
  assert(!errs.length, errs.join("\n"));
});

check("the strict field check catches a misspelt field (self-test)", () => {
  const ds = structuredClone(find(agentDocs, "DaemonSet"));
  ds.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystm = true;
  let caught = false;
  try { strict.check(ds); } catch (e) { caught = /readOnlyRootFilesystm: unknown field/.test(e.message); }
  assert(caught, "a misspelt securityContext field went unnoticed");
  const bad = structuredClone(ds);
  delete bad.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystm;
  bad.spec.template.spec.containers[0].ports[0].containerPort = "8081";
  let rejected = false;
  try { schemaValidate(bad); } catch { rejected = true; }
  assert(rejected, "schema validation accepted a string containerPort");
});

// ---------------------------------------------------------------- agent.yaml
check("agent.yaml: exactly the expected objects, no namespace hard-coded", () => {
  eq(agentDocs.map(docId).sort(), [
    "ClusterRole/netprobe-agent", "ClusterRoleBinding/netprobe-agent", "ConfigMap/netprobe-agent", "ConfigMap/netprobe-security",
    "DaemonSet/netprobe-agent", "Service/netprobe-metrics", "ServiceAccount/netprobe-agent",
  ], "objects");
  const withNs = [...agentDocs, ...smDocs, ...ruleDocs].filter((d) => d.metadata?.namespace !== undefined).map(docId);
  eq(withNs, [], "objects with metadata.namespace");
});

check("ClusterRole: get/list/watch on pods, services, nodes, endpointslices only", () => {
  const cr = find(agentDocs, "ClusterRole");
  const grants = [];
  for (const r of cr.rules) {
    assert(!r.nonResourceURLs && !r.resourceNames, "unexpected nonResourceURLs/resourceNames");
    for (const v of r.verbs) assert(["get", "list", "watch"].includes(v), `verb ${v} is not read-only`);
    eq([...r.verbs].sort(), ["get", "list", "watch"], "verbs");
    for (const g of r.apiGroups) for (const res of r.resources) grants.push(`${g}/${res}`);
  }
  eq(grants.sort(), ["/nodes", "/pods", "/services", "discovery.k8s.io/endpointslices"], "resources");
  assert(!findAll(cr, (k, v) => v === "*").length, "wildcard in ClusterRole");
});

check("ClusterRoleBinding binds the ClusterRole to the agent's ServiceAccount", () => {
  const crb = find(agentDocs, "ClusterRoleBinding");
  const sa = find(agentDocs, "ServiceAccount");
  const cr = find(agentDocs, "ClusterRole");
  eq(crb.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: cr.metadata.name }, "roleRef");
  eq(crb.subjects, [{ kind: "ServiceAccount", name: sa.metadata.name, namespace: "default" }], "subjects (namespace default, see agent.yaml's header)");
});

let ds, pod, ctr;
check("DaemonSet: label app=netprobe-agent, selector, hostNetwork, DNS policy, service account", () => {
  ds = find(agentDocs, "DaemonSet", "netprobe-agent");
  pod = ds.spec.template.spec;
  eq(pod.containers.length, 1, "containers");
  ctr = pod.containers[0];
  eq(ds.metadata.labels.app, AGENT_LABEL.app, "DaemonSet label app");
  eq(ds.spec.selector, { matchLabels: AGENT_LABEL }, "selector");
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) eq(ds.spec.template.metadata.labels[k], v, `pod label ${k}`);
  eq(pod.hostNetwork, true, "hostNetwork");
  eq(pod.dnsPolicy, "ClusterFirstWithHostNet", "dnsPolicy");
  assert(!pod.hostPID && !pod.hostIPC, "hostPID/hostIPC must stay off");
  eq(pod.serviceAccountName, find(agentDocs, "ServiceAccount").metadata.name, "serviceAccountName");
  eq(ds.spec.updateStrategy?.type, "RollingUpdate", "updateStrategy.type");
  eq(ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable, 1, "maxUnavailable");
  assert(!ds.spec.updateStrategy.rollingUpdate.maxSurge, "maxSurge must be 0 (host port, XDP attachment)");
  assert(pod.tolerations?.some((t) => t.operator === "Exists" && !t.key && !t.effect), "no toleration for every taint");
});

check("DaemonSet: least privilege (not privileged, caps drop ALL + BPF/NET_ADMIN/PERFMON, read-only root, no escalation, uid 0)", () => {
  assert(ds, "no DaemonSet");
  const priv = findAll(ds, (k, v) => k === "privileged" && v === true);
  eq(priv, [], "privileged: true at");
  const sc = ctr.securityContext;
  eq(sc.privileged, false, "privileged");
  eq(sc.allowPrivilegeEscalation, false, "allowPrivilegeEscalation");
  eq(sc.readOnlyRootFilesystem, true, "readOnlyRootFilesystem");
  eq(sc.capabilities.drop, ["ALL"], "capabilities.drop");
  eq([...sc.capabilities.add].sort(), [...CAPS].sort(), "capabilities.add");
  const uid = sc.runAsUser ?? pod.securityContext?.runAsUser;
  eq(uid, 0, "runAsUser (capabilities need uid 0)");
  assert((sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot) !== true, "runAsNonRoot: true contradicts uid 0");
  const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
  assert(seccomp === "RuntimeDefault", `seccompProfile ${seccomp}, expected RuntimeDefault`);
});

check("DaemonSet: port 8081, liveness /healthz, readiness /readyz", () => {
  assert(ctr, "no container");
  const port = ctr.ports.find((p) => p.containerPort === METRICS_PORT);
  assert(port && port.name && port.protocol === "TCP", "no named TCP containerPort 8081");
  const resolvePort = (p) => (typeof p === "number" ? p : ctr.ports.find((x) => x.name === p)?.containerPort);
  eq(ctr.livenessProbe?.httpGet?.path, "/healthz", "liveness path");
  eq(resolvePort(ctr.livenessProbe.httpGet.port), METRICS_PORT, "liveness port");
  eq(ctr.readinessProbe?.httpGet?.path, "/readyz", "readiness path");
  eq(resolvePort(ctr.readinessProbe.httpGet.port), METRICS_PORT, "readiness port");
  assert(ctr.args.includes(`--metrics-port=${METRICS_PORT}`), "args lack --metrics-port=8081");
});

check("DaemonSet: resources requested and limited (requests <= limits)", () => {
  const r = ctr.resources;
  for (const res of ["cpu", "memory"]) {
    assert(r.requests?.[res] && r.limits?.[res], `${res} request/limit missing`);
    assert(quantity(r.requests[res]) <= quantity(r.limits[res]), `${res}: request above limit`);
  }
  // docs/benchmarks.md: 55 MiB peak RSS at 100k flows, 85 MiB after a 10k-flow API answer.
  assert(quantity(r.limits.memory) >= 256 * 1024 ** 2, "memory limit below 256Mi");
});

check("DaemonSet: host mounts are BTF (ro), bpffs, cgroup fs (ro) and nothing else", () => {
  const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
  const mounts = Object.fromEntries(ctr.volumeMounts.map((m) => [m.name, m]));
  for (const m of ctr.volumeMounts) assert(vols[m.name], `mount ${m.name} has no volume`);
  const host = pod.volumes.filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
  eq(host, ["/sys/fs/bpf", "/sys/fs/cgroup", "/sys/kernel/btf/vmlinux"], "hostPath volumes");
  const byPath = (p) => { const v = pod.volumes.find((x) => x.hostPath?.path === p); assert(mounts[v.name], `${p} not mounted`); return mounts[v.name]; };
  eq(byPath("/sys/kernel/btf/vmlinux").readOnly, true, "BTF mount readOnly");
  eq(byPath("/sys/kernel/btf/vmlinux").mountPath, "/sys/kernel/btf/vmlinux", "BTF mountPath (libbpf looks there)");
  eq(byPath("/sys/fs/cgroup").readOnly, true, "cgroup mount readOnly");
  eq(byPath("/sys/fs/cgroup").mountPath, "/sys/fs/cgroup", "cgroup mountPath (the agent reads the first cgroup2 mount)");
  eq(byPath("/sys/fs/bpf").mountPath, "/sys/fs/bpf", "bpffs mountPath");
  assert(!ctr.volumeMounts.some((m) => m.mountPropagation === "Bidirectional"), "Bidirectional propagation needs privileged");
});

check("DaemonSet: NODE_NAME from spec.nodeName; every $(VAR) in args defined; every ConfigMap key used", () => {
  const node = ctr.env.find((e) => e.name === "NODE_NAME");
  eq(node?.valueFrom?.fieldRef?.fieldPath, "spec.nodeName", "NODE_NAME fieldRef");
  const cm = find(agentDocs, "ConfigMap", "netprobe-agent");
  const fromCm = ctr.envFrom?.some((e) => e.configMapRef?.name === cm.metadata.name);
  assert(fromCm, "container does not take its environment from the ConfigMap");
  const defined = new Set([...ctr.env.map((e) => e.name), ...Object.keys(cm.data)]);
  const used = new Set();
  for (const a of [...(ctr.command ?? []), ...ctr.args]) {
    for (const [, v] of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
      assert(defined.has(v), `args use $(${v}), which is defined nowhere`);
      used.add(v);
    }
  }
  for (const k of Object.keys(cm.data)) {
    assert(used.has(k) || k === "NETWORK_INTERFACE", `ConfigMap key ${k} is not used`);
    assert(typeof cm.data[k] === "string", `ConfigMap value ${k} must be a string`);
  }
  assert("NETWORK_INTERFACE" in cm.data, "ConfigMap lacks NETWORK_INTERFACE");
});

check("DaemonSet: every flag in args is one the agent accepts", () => {
  const flags = agentFlags();
  for (const a of ctr.args) {
    const f = a.split("=")[0];
    assert(flags.has(f), `agent has no flag ${f} (cmd/netprobe-agent/options.cpp)`);
  }
});

check("image tag and Containerfile version follow CMakeLists.txt's project VERSION", () => {
  const v = projectVersion();
  eq(ctr.image.split(":").pop(), v, "DaemonSet image tag");
  const k = YAML.parse(readFileSync(P.kustomization, "utf8"));
  eq(k.images?.find((i) => i.name === ctr.image.split(":")[0])?.newTag, v, "kustomization images newTag");
  const label = readFileSync(P.containerfile, "utf8").match(/org\.opencontainers\.image\.version="([^"]+)"/);
  eq(label?.[1], v, "Containerfile org.opencontainers.image.version");
});

check("Service netprobe-metrics: port 8081 -> the agent's port, selector matches the pods, scrape annotations", () => {
  const svc = find(agentDocs, "Service", "netprobe-metrics");
  eq(svc.spec.ports.length, 1, "ports");
  const sp = svc.spec.ports[0];
  eq(sp.port, METRICS_PORT, "port");
  const target = typeof sp.targetPort === "number" ? sp.targetPort : ctr.ports.find((p) => p.name === sp.targetPort)?.containerPort;
  eq(target, METRICS_PORT, "targetPort resolves to");
  assert(Object.keys(svc.spec.selector).length > 0, "empty selector");
  for (const [k, v] of Object.entries(svc.spec.selector)) eq(ds.spec.template.metadata.labels[k], v, `pod label ${k}`);
  eq(svc.metadata.annotations?.["prometheus.io/scrape"], "true", "prometheus.io/scrape");
  eq(svc.metadata.annotations?.["prometheus.io/port"], String(METRICS_PORT), "prometheus.io/port");
  eq(svc.metadata.annotations?.["prometheus.io/path"], "/metrics", "prometheus.io/path");
});

check("ServiceMonitor selects the Service and scrapes its metrics port at /metrics", () => {
  const sm = find(smDocs, "ServiceMonitor");
  const svc = find(agentDocs, "Service", "netprobe-metrics");
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) eq(svc.metadata.labels[k], v, `Service label ${k}`);
  assert(!sm.spec.namespaceSelector, "namespaceSelector set: the ServiceMonitor should follow its own namespace");
  eq(sm.spec.endpoints.length, 1, "endpoints");
  eq(sm.spec.endpoints[0].port, svc.spec.ports[0].name, "endpoint port name");
  eq(sm.spec.endpoints[0].path, "/metrics", "endpoint path");
});

// ---------------------------------------------------------------- rules
let groups;
check("PrometheusRule: groups, unique alert names, severity + summary/description on every alert", () => {
  const pr = find(ruleDocs, "PrometheusRule");
  groups = pr.spec.groups;
  const names = new Set();
  for (const g of groups) for (const r of g.rules) {
    assert(r.alert, `${g.name}: a rule without an alert name (recording rules not expected)`);
    assert(!names.has(r.alert), `duplicate alert ${r.alert}`);
    names.add(r.alert);
    assert(["info", "warning", "critical"].includes(r.labels?.severity), `${r.alert}: severity`);
    assert(r.annotations?.summary && r.annotations?.description, `${r.alert}: summary/description`);
  }
});

check("alerts cover agent down, collection errors, map update errors, map pressure, malformed packets, security", () => {
  const used = new Set(groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr))));
  for (const m of ["up", "netprobe_collect_errors_total", "netprobe_map_update_errors_total", "netprobe_map_fill_ratio",
    "netprobe_malformed_packets_total", ...SECURITY_METRICS]) assert(used.has(m), `no alert on ${m}`);
});

check("alert expressions only use documented metrics (docs/metrics.md, security metrics, up)", () => {
  const known = new Set([...docMetricNames(), ...SECURITY_METRICS, ...PROMETHEUS_SERIES]);
  const bad = groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr).filter((m) => !known.has(m)).map((m) => `${r.alert}: ${m}`)));
  eq(bad, [], "unknown metrics");
});

check("netprobe-rules.yml holds exactly the PrometheusRule's groups", () => {
  assert(existsSync(P.plainRules), "deploy/prometheus/netprobe-rules.yml missing (node tests/deploy/validate.mjs --write-rules)");
  const plain = YAML.parse(readFileSync(P.plainRules, "utf8"));
  assert(isDeepStrictEqual(plain, { groups }), "deploy/prometheus/netprobe-rules.yml differs from rules.yaml: run `node tests/deploy/validate.mjs --write-rules`");
});

check("promtool check rules: PrometheusRule spec and netprobe-rules.yml", () => {
  if (!has("promtool")) throw new Error("promtool not found (Debian package prometheus; scripts/setup-deps.sh installs it)");
  const dir = mkdtempSync(join(tmpdir(), "netprobe-rules-"));
  try {
    const extracted = join(dir, "prometheusrule-spec.yml");
    writeFileSync(extracted, YAML.stringify({ groups }));
    const r = run("promtool", ["check", "rules", extracted, P.plainRules]);
    assert(r.status === 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

check("promtool test rules: every alert fires on its symptom and stays quiet otherwise", () => {
  if (!has("promtool")) throw new Error("promtool not found");
  const tests = YAML.parse(readFileSync(P.rulesTest, "utf8"));
  const tested = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)));
  const alerts = groups.flatMap((g) => g.rules.map((r) => r.alert));
  eq(alerts.filter((a) => !tested.has(a)), [], "alerts without a unit test");
  const r = run("promtool", ["test", "rules", P.rulesTest], { cwd: HERE });
  assert(r.status === 0, r.stdout + r.stderr);
});

// ---------------------------------------------------------------- Grafana
let dash;
const dashPanels = () => dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");
const dashExprs = () => dashPanels().flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
check("Grafana dashboard: JSON parses; datasource, instance and interface variables", () => {
  dash = JSON.parse(readFileSync(P.dashboard, "utf8"));
  assert(dash.title && dash.uid, "title/uid");
  assert(!dash.__inputs, "__inputs makes file provisioning fail; use the datasource variable");
  const vars = Object.fromEntries(dash.templating.list.map((v) => [v.name, v]));
  eq(vars.datasource?.type, "datasource", "datasource variable type");
  eq(vars.datasource?.query, "prometheus", "datasource variable query");
  for (const n of ["instance", "interface"]) {
    eq(vars[n]?.type, "query", `${n} variable type`);
    assert(vars[n].multi && vars[n].includeAll, `${n}: multi + include All`);
    eq(vars[n].datasource?.uid, "${datasource}", `${n} datasource`);
  }
});

check("Grafana dashboard: panels use the datasource variable, have queries, unique ids, no overlaps", () => {
  const ids = new Set();
  const cells = new Map();
  for (const p of dash.panels.flatMap((x) => [x, ...(x.panels ?? [])])) {
    assert(!ids.has(p.id), `duplicate panel id ${p.id}`);
    ids.add(p.id);
    const g = p.gridPos;
    assert(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: gridPos`);
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      const k = `${x},${y}`;
      assert(!cells.has(k), `panels "${cells.get(k)}" and "${p.title}" overlap`);
      cells.set(k, p.title);
    }
    if (p.type === "row") continue;
    eq(p.datasource?.uid, "${datasource}", `${p.title}: datasource`);
    assert(p.targets?.length, `${p.title}: no queries`);
    for (const t of p.targets) {
      assert(t.expr && t.refId, `${p.title}: target without expr/refId`);
      assert(!t.datasource || t.datasource.uid === "${datasource}", `${p.title}: target datasource`);
    }
  }
});

check("Grafana dashboard: covers interface rates, protocols, malformed, map health, top flows, collection", () => {
  const used = new Set(dashExprs().flatMap((e) => metricNames(e.expr)));
  for (const m of ["netprobe_interface_rx_bytes_total", "netprobe_interface_tx_bytes_total", "netprobe_protocol_packets_total",
    "netprobe_malformed_packets_total", "netprobe_map_fill_ratio", "netprobe_map_update_errors_total",
    "netprobe_top_flow_bytes_rate", "netprobe_collect_duration_seconds"]) assert(used.has(m), `no panel shows ${m}`);
});

check("Grafana dashboard: every query only uses documented metrics", () => {
  const known = new Set([...docMetricNames(), ...SECURITY_METRICS]);
  const bad = [];
  for (const { panel, expr } of dashExprs()) for (const m of metricNames(expr)) if (!known.has(m)) bad.push(`${panel}: ${m}`);
  for (const v of dash.templating.list) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (v.type !== "query") continue;
    const m = q.match(/label_values\(\s*([^,{)\s]+)/);
    assert(m, `${v.name}: query is not label_values(metric, label)`);
    if (!known.has(m[1])) bad.push(`variable ${v.name}: ${m[1]}`);
  }
  eq(bad, [], "unknown metrics");
});

check("Grafana dashboard: every netprobe selector filters by $instance, interface-labelled ones by $interface", () => {
  const bad = [];
  const ifaceMetric = /^netprobe_(interface_|xdp_|top_flow_)/;
  for (const { panel, expr } of dashExprs()) {
    for (const m of expr.matchAll(/(netprobe_\w+)(\{[^}]*\})?/g)) {
      const sel = m[2] ?? "";
      if (!sel.includes('instance=~"$instance"')) bad.push(`${panel}: ${m[1]} without instance=~"$instance"`);
      if (ifaceMetric.test(m[1]) && m[1] !== "netprobe_interface_attached" && !sel.includes('interface=~"$interface"'))
        bad.push(`${panel}: ${m[1]} without interface=~"$interface"`);
    }
  }
  eq(bad, [], "selectors");
});

check("Grafana dashboard: every query is valid PromQL (promtool)", () => {
  if (!has("promtool")) throw new Error("promtool not found");
  const exprs = dashExprs().map((e) => stripGrafanaVars(e.expr));
  for (const v of dash.templating.list) if (v.type === "query") {
    const q = typeof v.query === "string" ? v.query : v.query.query;
    exprs.push(stripGrafanaVars(q.replace(/^label_values\(\s*(.*?)\s*,\s*\w+\s*\)$/, "$1")));
  }
  promtoolCheckExprs(exprs);
});

check("metric-name extraction finds what it must (self-test)", () => {
  eq(metricNames('sum by (instance, interface) (rate(netprobe_interface_rx_bytes_total{instance=~"$instance"}[$__rate_interval])) / on (instance) group_left netprobe_build_info > bool 0 and up{job="x"} offset 5m').sort(),
    ["netprobe_build_info", "netprobe_interface_rx_bytes_total", "up"], "names");
  assert(docMetricNames().has("netprobe_xdp_rx_bytes_total"), "brace expansion of docs/metrics.md names");
  assert(docMetricNames().has("netprobe_collections_total"), "docs/metrics.md table parsing");
  assert(docMetricNames().has("netprobe_interface_attached"), "trailing label list in docs/metrics.md names");
  eq(metricNames('label_replace(x:y, "a", "$1", "b", "(.*)") unless absent(foo) offset 1h'), ["x:y", "foo"], "names");
});

// ---------------------------------------------------------------- kustomize / kubectl
check("kubectl kustomize deploy/ renders; namespace applied to every object and to the ClusterRoleBinding subject", () => {
  if (!has("kubectl")) skip("kubectl not installed");
  const r = run("kubectl", ["kustomize", DEPLOY]);
  assert(r.status === 0, r.stderr);
  const docs = loadYamlDocs("kustomize output", r.stdout);
  const ns = YAML.parse(readFileSync(P.kustomization, "utf8")).namespace;
  assert(ns, "kustomization has no namespace");
  strict.build(docs);
  const errs = [];
  for (const d of docs) {
    try { schemaValidate(d); strict.check(d); } catch (e) { errs.push(e.message); }
    if (CLUSTER_SCOPED.has(d.kind)) assert(d.metadata.namespace === undefined, `${docId(d)} is cluster-scoped but got a namespace`);
    else eq(d.metadata.namespace, ns, `${docId(d)} namespace`);
  }
  assert(!errs.length, errs.join("\n"));
  eq(find(docs, "ClusterRoleBinding").subjects[0].namespace, ns, "ClusterRoleBinding subject namespace");
  const nsObj = find(docs, "Namespace");
  eq(nsObj.metadata.name, ns, "Namespace name");
  eq(nsObj.metadata.labels?.["pod-security.kubernetes.io/enforce"], "privileged", "Pod Security level of the namespace");
  for (const want of agentDocs.map(docId)) assert(docs.some((d) => docId(d) === want), `${want} missing from the kustomize output`);
});

check("kubectl apply --dry-run=client -f deploy/agent.yaml (needs an API server's discovery)", () => {
  if (!has("kubectl")) skip("kubectl not installed");
  // An empty kubeconfig: never talk to whatever cluster the user has configured.
  const dir = mkdtempSync(join(tmpdir(), "netprobe-kubeconfig-"));
  try {
    const kc = join(dir, "config");
    writeFileSync(kc, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n");
    const r = run("kubectl", ["apply", "--dry-run=client", "--validate=false", "-f", P.agent], {
      env: { ...process.env, KUBECONFIG: kc }, timeout: 60000,
    });
    if (r.status !== 0 && /connection refused|unable to recognize|no such host|dial tcp/.test(r.stderr))
      skip("kubectl needs API discovery to map kinds to resources even with --dry-run=client; there is no cluster here");
    assert(r.status === 0, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- Containerfile
let cf;
check("Containerfile: Debian 12 build stage via setup-deps.sh --build-only, tests/bench off, BTF path, debian:12-slim runtime, entrypoint", () => {
  cf = readFileSync(P.containerfile, "utf8").replace(/\\\n/g, " ");
  const froms = [...cf.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  eq(froms, ["debian:12", "debian:12-slim"], "FROM lines");
  assert(/setup-deps\.sh --build-only/.test(cf), "build stage does not install through scripts/setup-deps.sh --build-only");
  for (const d of ["-DNETPROBE_BUILD_TESTS=OFF", "-DNETPROBE_BUILD_BENCH=OFF", "-DNETPROBE_VMLINUX_BTF=", "-G Ninja"])
    assert(cf.includes(d), `cmake invocation lacks ${d}`);
  assert(/^ARG NETPROBE_VMLINUX_BTF=/m.test(cf), "no NETPROBE_VMLINUX_BTF build argument");
  const ep = cf.match(/^ENTRYPOINT\s+(.*)$/m);
  eq(ep && JSON.parse(ep[1]), ["/usr/local/bin/netprobe-agent"], "ENTRYPOINT");
  assert(/^EXPOSE\s+8081\b/m.test(cf), "EXPOSE 8081");
  assert(/^COPY --from=build \S*bin\/netprobe-agent \/usr\/local\/bin\/netprobe-agent$/m.test(cf), "agent binary not copied from the build stage");
});

check("Containerfile: every COPY source exists in the repository", () => {
  for (const m of cf.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
    const parts = m[1].trim().split(/\s+/);
    for (const src of parts.slice(0, -1)) assert(existsSync(join(ROOT, src)), `COPY source ${src} does not exist`);
  }
});

const runtimePackages = () => {
  const stage = cf.slice(cf.lastIndexOf("FROM "));
  const m = stage.match(/apt-get install\s+([^&]*)/);
  assert(m, "runtime stage installs no packages");
  return m[1].split(/\s+/).filter((w) => w && !w.startsWith("-"));
};

check("Containerfile: every runtime package exists in Debian 12 (apt-cache show)", () => {
  if (!has("apt-cache")) skip("apt-cache not available");
  if (run("apt-cache", ["show", "libc6"]).status !== 0) skip("no apt package lists (run apt-get update)");
  const pkgs = runtimePackages();
  eq(pkgs.filter((p) => run("apt-cache", ["show", p]).status !== 0), [], "unknown packages");
  // ...and that the build stage's list does too (scripts/setup-deps.sh's BUILD_PKGS).
  const build = readFileSync(P.setupDeps, "utf8").match(/BUILD_PKGS=\(([^)]*)\)/);
  assert(build, "no BUILD_PKGS in scripts/setup-deps.sh");
  const bp = build[1].split(/\s+/).filter(Boolean);
  eq(bp.filter((p) => run("apt-cache", ["show", p]).status !== 0), [], "unknown build packages");
});

check("Containerfile: runtime packages provide every library bin/netprobe-agent links", () => {
  if (!existsSync(P.agentBin)) skip("bin/netprobe-agent not built");
  if (!has("objdump") || !has("dpkg")) skip("objdump/dpkg not available");
  const needed = [...run("objdump", ["-p", P.agentBin]).stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
  assert(needed.length, "objdump found no NEEDED entries");
  // In debian:12-slim already (essential, or required by apt).
  const base = new Set(["libc6", "libgcc-s1", "libstdc++6"]);
  const pkgs = new Set(runtimePackages());
  const missing = [];
  for (const lib of needed) {
    const r = run("dpkg", ["-S", `*/${lib}`]);
    assert(r.status === 0, `no installed package ships ${lib}`);
    const owners = new Set(r.stdout.split("\n").filter(Boolean).map((l) => l.split(":")[0].trim()).filter((p) => !p.includes("-dev")));
    if (![...owners].some((p) => pkgs.has(p) || base.has(p))) missing.push(`${lib} (${[...owners].join(", ")})`);
  }
  eq(missing, [], "libraries without a runtime package");
});

check("deploy/README.md documents every capability and host mount", () => {
  const readme = readFileSync(P.readme, "utf8");
  for (const w of [...CAPS.map((c) => `CAP_${c}`), "/sys/kernel/btf/vmlinux", "/sys/fs/bpf", "/sys/fs/cgroup", "hostNetwork",
    "readOnlyRootFilesystem", "netprobe-metrics", "kubectl apply -k", "ClusterRoleBinding"])
    assert(readme.includes(w), `README does not mention ${w}`);
});

console.log(`\ndeploy: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
process.exit(results.failed ? 1 : 0);
