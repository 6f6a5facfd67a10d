#!/usr/bin/env node
// Offline checks of everything under deploy/: Kubernetes manifests against the API
// schemas (kubernetes-models, strict about unknown fields), the properties NetProbe's
// deployment relies on, the Prometheus rules (promtool), the Grafana dashboard, the
// kustomization, the Containerfile, and TLS + basic auth of the endpoints (web.yml.example,
// the README's openssl/htpasswd/kubectl commands run as written, bin/netprobe-agent
// loading the resulting web config).
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
  webExample: join(DEPLOY, "web.yml.example"),
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
// TLS + basic auth (deploy/README.md, "Securing the endpoints"): the agent's web config
// comes from this Secret; Prometheus' CA and credentials from the other.
const WEB_SECRET = "netprobe-web";
const WEB_SECRET_KEYS = ["tls.crt", "tls.key", "web.yml"];
const SCRAPE_SECRET = "netprobe-scrape";
const SERVER_NAME = "netprobe-metrics"; // the certificate's SAN, the ServiceMonitor's serverName
// The exporter-toolkit web config format (as far as the agent implements it,
// src/http/web_config.cpp): the keys allowed at each level.
const WEB_CONFIG_KEYS = {
  "": ["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"],
  tls_server_config: ["cert_file", "key_file", "cert", "key", "client_auth_type", "client_ca_file", "min_version",
    "max_version", "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"],
  http_server_config: ["headers", "http2"],
  "http_server_config.headers": ["Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
    "X-XSS-Protection", "Strict-Transport-Security"],
  rate_limit: ["interval", "burst"],
};
const CLIENT_AUTH_TYPES = ["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert"];
const TLS_VERSIONS = ["TLS10", "TLS11", "TLS12", "TLS13"];

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
// Scratch space of the checks below, removed at exit.
const WORK = mkdtempSync(join(tmpdir(), "netprobe-deploy-"));
process.on("exit", () => rmSync(WORK, { recursive: true, force: true }));

// What does not fit the exporter-toolkit web config format: unknown keys, wrong types,
// unknown enum values, users without a bcrypt hash.
function webConfigErrors(cfg) {
  const errs = [];
  const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const walk = (v, path) => {
    const known = WEB_CONFIG_KEYS[path];
    if (!isMap(v)) { errs.push(`${path || "(top)"}: expected a mapping`); return; }
    for (const [k, x] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      if (!known.includes(k)) errs.push(`${p}: unknown key (known: ${known.join(", ")})`);
      else if (WEB_CONFIG_KEYS[p]) walk(x, p);
    }
  };
  walk(cfg, "");
  const tls = cfg?.tls_server_config;
  if (tls) {
    if (!tls.cert_file === !tls.cert) errs.push("tls_server_config: exactly one of cert_file, cert");
    if (!tls.key_file === !tls.key) errs.push("tls_server_config: exactly one of key_file, key");
    if (tls.client_auth_type !== undefined && !CLIENT_AUTH_TYPES.includes(tls.client_auth_type))
      errs.push(`tls_server_config.client_auth_type: ${tls.client_auth_type}`);
    if (/VerifyClientCert/.test(tls.client_auth_type ?? "") && !tls.client_ca_file)
      errs.push("tls_server_config.client_ca_file: required with " + tls.client_auth_type);
    for (const k of ["min_version", "max_version"])
      if (tls[k] !== undefined && !TLS_VERSIONS.includes(tls[k])) errs.push(`tls_server_config.${k}: ${tls[k]}`);
  }
  const users = cfg?.basic_auth_users;
  if (users !== undefined && users !== null) {
    if (!isMap(users)) errs.push("basic_auth_users: expected a mapping of users to bcrypt hashes");
    else for (const [u, h] of Object.entries(users))
      if (typeof h !== "string" || !/^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/.test(h))
        errs.push(`basic_auth_users.${u}: not a bcrypt hash`);
  }
  for (const [k, v] of Object.entries(cfg?.http_server_config?.headers ?? {}))
    if (typeof v !== "string" || /[\r\n]/.test(v)) errs.push(`http_server_config.headers.${k}: expected a one-line string`);
  return errs;
}
// Does the bcrypt hash match user/password? htpasswd -vb (apache2-utils): 0 match, 3 mismatch.
function bcryptMatches(user, hash, password) {
  if (!has("htpasswd")) throw new Error("htpasswd not found (Debian package apache2-utils; scripts/setup-deps.sh installs it)");
  const dir = mkdtempSync(join(WORK, "htpasswd-"));
  const f = join(dir, "htpasswd");
  writeFileSync(f, `${user}:${hash}\n`);
  const r = run("htpasswd", ["-vb", f, user, password]);
  rmSync(dir, { recursive: true, force: true });
  assert(r.status === 0 || r.status === 3, `htpasswd -vb: exit ${r.status}: ${r.stderr}`);
  return r.status === 0;
}
// deploy/README.md: the text of a "## title" or "### title" section, and its fenced blocks.
function readmeSection(title) {
  const text = readFileSync(P.readme, "utf8");
  const m = text.match(new RegExp(`^(#{2,3}) ${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`, "m"));
  assert(m, `deploy/README.md has no section "${title}"`);
  const rest = text.slice(m.index + m[0].length);
  const end = rest.search(new RegExp(`^#{2,${m[1].length}} `, "m"));
  return end < 0 ? rest : rest.slice(0, end);
}
function codeBlock(text, lang, needle) {
  const blocks = [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((b) => b[1] === lang).map((b) => b[2]);
  const hits = blocks.filter((b) => b.includes(needle));
  assert(hits.length === 1, `expected one \`\`\`${lang} block with "${needle}", found ${hits.length}`);
  return hits[0];
}
function runScript(script, cwd, env = {}) {
  const r = run("bash", ["-euo", "pipefail", "-c", script], { cwd, env: { ...process.env, ...env }, timeout: 120000 });
  assert(r.status === 0, `script failed (exit ${r.status}):\n${script}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}
function openssl(args, cwd) {
  const r = run("openssl", args, { cwd });
  assert(r.status === 0, `openssl ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
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

check("ClusterRole: get/list/watch on pods, services, nodes, namespaces, endpointslices, networkpolicies only", () => {
  const cr = find(agentDocs, "ClusterRole");
  const grants = [];
  for (const r of cr.rules) {
    assert(!r.nonResourceURLs && !r.resourceNames, "unexpected nonResourceURLs/resourceNames");
    for (const v of r.verbs) assert(["get", "list", "watch"].includes(v), `verb ${v} is not read-only`);
    eq([...r.verbs].sort(), ["get", "list", "watch"], "verbs");
    for (const g of r.apiGroups) for (const res of r.resources) grants.push(`${g}/${res}`);
  }
  eq(grants.sort(), ["/namespaces", "/nodes", "/pods", "/services", "discovery.k8s.io/endpointslices",
                     "networking.k8s.io/networkpolicies"], "resources");
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

check("DaemonSet: port 8081, liveness /healthz, readiness /readyz, both over HTTPS", () => {
  assert(ctr, "no container");
  const port = ctr.ports.find((p) => p.containerPort === METRICS_PORT);
  assert(port && port.name && port.protocol === "TCP", "no named TCP containerPort 8081");
  const resolvePort = (p) => (typeof p === "number" ? p : ctr.ports.find((x) => x.name === p)?.containerPort);
  eq(ctr.livenessProbe?.httpGet?.path, "/healthz", "liveness path");
  eq(resolvePort(ctr.livenessProbe.httpGet.port), METRICS_PORT, "liveness port");
  eq(ctr.readinessProbe?.httpGet?.path, "/readyz", "readiness path");
  eq(resolvePort(ctr.readinessProbe.httpGet.port), METRICS_PORT, "readiness port");
  // The web config turns TLS on for every path; kubelet does not verify the certificate.
  eq(ctr.livenessProbe.httpGet.scheme, "HTTPS", "liveness scheme");
  eq(ctr.readinessProbe.httpGet.scheme, "HTTPS", "readiness scheme");
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

check("DaemonSet: host mounts are BTF (ro), bpffs, cgroup fs (ro), the state dir (--state-dir: the history store) and nothing else", () => {
  const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
  const mounts = Object.fromEntries(ctr.volumeMounts.map((m) => [m.name, m]));
  for (const m of ctr.volumeMounts) assert(vols[m.name], `mount ${m.name} has no volume`);
  const host = pod.volumes.filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
  eq(host, ["/sys/fs/bpf", "/sys/fs/cgroup", "/sys/kernel/btf/vmlinux", "/sys/kernel/tracing", "/var/lib/netprobe"], "hostPath volumes");
  const byPath = (p) => { const v = pod.volumes.find((x) => x.hostPath?.path === p); assert(mounts[v.name], `${p} not mounted`); return mounts[v.name]; };
  eq(byPath("/sys/kernel/btf/vmlinux").readOnly, true, "BTF mount readOnly");
  eq(byPath("/sys/kernel/btf/vmlinux").mountPath, "/sys/kernel/btf/vmlinux", "BTF mountPath (libbpf looks there)");
  eq(byPath("/sys/fs/cgroup").readOnly, true, "cgroup mount readOnly");
  eq(byPath("/sys/fs/cgroup").mountPath, "/sys/fs/cgroup", "cgroup mountPath (the agent reads the first cgroup2 mount)");
  eq(byPath("/sys/fs/bpf").mountPath, "/sys/fs/bpf", "bpffs mountPath");
  eq(byPath("/sys/kernel/tracing").mountPath, "/sys/kernel/tracing", "tracefs mountPath (the agent reads tracepoint ids there)");
  eq(byPath("/sys/kernel/tracing").readOnly, true, "tracefs mounted read-only");
  // the agent's default --state-dir, read-write (the history store, spools), created if missing
  eq(byPath("/var/lib/netprobe").mountPath, "/var/lib/netprobe", "state dir mountPath (the default --state-dir)");
  assert(!byPath("/var/lib/netprobe").readOnly, "the state dir must be writable");
  eq(pod.volumes.find((x) => x.hostPath?.path === "/var/lib/netprobe").hostPath.type, "DirectoryOrCreate", "state dir hostPath type");
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

check("DaemonSet: Secret netprobe-web mounted read-only as a whole directory (not optional, no subPath, no nesting); --web-config-file in it", () => {
  const vols = pod.volumes.filter((v) => v.secret?.secretName === WEB_SECRET);
  eq(vols.length, 1, `volumes of Secret ${WEB_SECRET}`);
  const vol = vols[0];
  assert(vol.secret.optional !== true, "the Secret volume is optional: the agent would start without TLS and auth");
  assert(!vol.secret.items, "items: set, the agent gets only some keys (it needs web.yml and the files web.yml names)");
  const mode = vol.secret.defaultMode ?? 0o644;
  assert((mode & 0o077) === 0, `defaultMode ${mode.toString(8)}: the private key is readable by other users than root`);
  const mounts = ctr.volumeMounts.filter((m) => m.name === vol.name);
  eq(mounts.length, 1, `mounts of volume ${vol.name}`);
  const webMount = mounts[0];
  eq(webMount.readOnly, true, `${vol.name} mount readOnly`);
  // subPath mounts are not updated when the Secret changes, and the agent relies on that.
  assert(!webMount.subPath && !webMount.subPathExpr, `${vol.name} is mounted with subPath: Secret updates would never reach the agent`);
  const inside = (a, b) => a === b || a.startsWith(b.endsWith("/") ? b : `${b}/`);
  for (const m of ctr.volumeMounts) if (m !== webMount)
    assert(!inside(webMount.mountPath, m.mountPath) && !inside(m.mountPath, webMount.mountPath),
      `${vol.name} at ${webMount.mountPath} and ${m.name} at ${m.mountPath} overlap`);
  const args = ctr.args.filter((a) => a.startsWith("--web-config-file="));
  eq(args.length, 1, "--web-config-file args");
  const file = args[0].slice("--web-config-file=".length);
  eq(dirname(file), webMount.mountPath, "directory of --web-config-file (must be the Secret's mount)");
  assert(WEB_SECRET_KEYS.includes(file.slice(file.lastIndexOf("/") + 1)), `${file}: not one of the Secret's keys ${WEB_SECRET_KEYS}`);
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
  eq(svc.metadata.annotations?.["prometheus.io/scheme"], "https", "prometheus.io/scheme");
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

check("ServiceMonitor: https, CA and serverName netprobe-metrics in tlsConfig, basicAuth, all from the Secret netprobe-scrape", () => {
  const ep = find(smDocs, "ServiceMonitor").spec.endpoints[0];
  eq(ep.scheme, "https", "scheme");
  const tls = ep.tlsConfig ?? {};
  assert(tls.insecureSkipVerify !== true, "insecureSkipVerify: the agents' certificate would not be checked");
  eq(tls.ca?.secret, { name: SCRAPE_SECRET, key: "ca.crt" }, "tlsConfig.ca.secret");
  // Targets are node IPs (hostNetwork): the certificate is checked for this name instead.
  eq(tls.serverName, SERVER_NAME, "tlsConfig.serverName");
  assert(!tls.caFile, "tlsConfig.caFile: a path in the Prometheus pod; take the CA from the Secret");
  eq(ep.basicAuth?.username, { name: SCRAPE_SECRET, key: "username" }, "basicAuth.username");
  eq(ep.basicAuth?.password, { name: SCRAPE_SECRET, key: "password" }, "basicAuth.password");
  assert(!ep.bearerTokenSecret && !ep.authorization && !ep.oauth2, "another authentication besides basicAuth");
});

// ---------------------------------------------------------------- web config (TLS, basic auth)
let webExample;
check("deploy/web.yml.example: exporter-toolkit keys only; TLS (NoClientCert) from the Secret's tls.crt/tls.key; security headers", () => {
  [webExample] = loadYamlDocs(P.webExample);
  eq(webConfigErrors(webExample), [], "web config errors");
  const tls = webExample.tls_server_config;
  assert(tls, "no tls_server_config: the endpoints would be plain HTTP");
  // kubelet's httpGet probes present no client certificate (deploy/README.md, mTLS).
  eq(tls.client_auth_type, "NoClientCert", "client_auth_type");
  for (const k of ["cert_file", "key_file"])
    assert(WEB_SECRET_KEYS.includes(tls[k]), `${k} ${tls[k]} is not a key of the Secret ${WEB_SECRET} (${WEB_SECRET_KEYS})`);
  assert(!["TLS10", "TLS11"].includes(tls.min_version), `min_version ${tls.min_version}`);
  assert(Object.keys(webExample.basic_auth_users ?? {}).length >= 1, "no basic_auth_users");
  const h = webExample.http_server_config?.headers ?? {};
  eq(h["X-Content-Type-Options"], "nosniff", "X-Content-Type-Options");
  assert(["DENY", "SAMEORIGIN"].includes(h["X-Frame-Options"]), `X-Frame-Options ${h["X-Frame-Options"]}`);
  assert(/^max-age=\d+/.test(h["Strict-Transport-Security"] ?? ""), "Strict-Transport-Security");
});

check("deploy/web.yml.example: every user's hash is the bcrypt of the example password its comment states (htpasswd -vb)", () => {
  const m = readFileSync(P.webExample, "utf8").match(/hash is of the password "([^"]+)"/);
  assert(m, 'no comment stating the example password (hash is of the password "...")');
  for (const [user, hash] of Object.entries(webExample.basic_auth_users)) {
    assert(bcryptMatches(user, hash, m[1]), `${user}: the hash does not match "${m[1]}"`);
    assert(!bcryptMatches(user, hash, `${m[1]}x`), `${user}: the hash also matches a wrong password: the verification is broken`);
  }
});

check("the web config check catches an unknown key, a bad enum and a non-bcrypt hash (self-test)", () => {
  const bad = structuredClone(webExample);
  bad.tls_server_config.client_auth = "NoClientCert";
  bad.tls_server_config.min_version = "TLS9";
  bad.basic_auth_users = { prometheus: "plaintext" };
  bad.http_server_config.headers["X-Powered-By"] = "netprobe";
  const errs = webConfigErrors(bad).join("\n");
  for (const want of ["tls_server_config.client_auth: unknown key", "min_version: TLS9",
    "basic_auth_users.prometheus: not a bcrypt hash", "headers.X-Powered-By: unknown key"])
    assert(errs.includes(want), `not caught: ${want}\n${errs}`);
});

// The README's commands, run as written: certificate, hash, web.yml, Secrets.
const readmeDir = join(WORK, "readme");
let readmeWeb, readmePassword, webSecretDir;
check("README \"Securing the endpoints\": its openssl/htpasswd commands make a CA-signed certificate for serverName netprobe-metrics and a web.yml like the example with the password's hash", () => {
  for (const t of ["openssl", "htpasswd"]) if (!has(t)) throw new Error(`${t} not found (scripts/setup-deps.sh installs openssl and apache2-utils)`);
  const script = codeBlock(readmeSection("1. Certificate, password, web.yml"), "bash", "openssl req");
  rmSync(readmeDir, { recursive: true, force: true });
  execFileSync("mkdir", ["-p", readmeDir]);
  runScript(`${script}\nprintf '%s' "$PASSWORD" > password.txt\n`, readmeDir);
  readmePassword = readFileSync(join(readmeDir, "password.txt"), "utf8");
  assert(readmePassword.length >= 16, "the password is shorter than 16 characters");
  assert(/: OK$/m.test(openssl(["verify", "-CAfile", "ca.crt", "tls.crt"], readmeDir)), "tls.crt does not verify against ca.crt");
  const san = openssl(["x509", "-in", "tls.crt", "-noout", "-ext", "subjectAltName"], readmeDir);
  assert(san.includes(`DNS:${SERVER_NAME}`), `tls.crt SAN lacks DNS:${SERVER_NAME}: ${san}`);
  openssl(["x509", "-in", "tls.crt", "-noout", "-checkend", String(30 * 86400)], readmeDir);
  eq(openssl(["pkey", "-in", "tls.key", "-pubout"], readmeDir), openssl(["x509", "-in", "tls.crt", "-noout", "-pubkey"], readmeDir),
    "public key of tls.key vs tls.crt");
  [readmeWeb] = loadYamlDocs(join(readmeDir, "web.yml"));
  eq(webConfigErrors(readmeWeb), [], "web config errors");
  // The same settings as web.yml.example, users and their hashes aside.
  const strip = (c) => ({ ...c, basic_auth_users: Object.keys(c.basic_auth_users ?? {}) });
  eq(strip(readmeWeb), strip(webExample), "web.yml (users' hashes aside) vs web.yml.example");
  for (const [user, hash] of Object.entries(readmeWeb.basic_auth_users))
    assert(bcryptMatches(user, hash, readmePassword), `${user}: the hash does not match the password`);
  for (const k of ["cert_file", "key_file"]) assert(existsSync(join(readmeDir, readmeWeb.tls_server_config[k])), `${k} not made`);
});

check("README: the python3 bcrypt alternative makes a hash htpasswd verifies", () => {
  if (run("python3", ["-c", "import bcrypt"]).status !== 0) skip("python3 bcrypt module not installed (Debian package python3-bcrypt)");
  const line = codeBlock(readmeSection("1. Certificate, password, web.yml"), "bash", "import bcrypt");
  const out = runScript(`PASSWORD='pa$$ word'\n${line}\nprintf '%s' "$HASH"`, WORK);
  eq(webConfigErrors({ basic_auth_users: { prometheus: out } }), [], "hash");
  assert(bcryptMatches("prometheus", out, "pa$$ word"), "the hash does not match its password");
});

check("README: its kubectl commands make the Secrets the DaemonSet, web.yml and the ServiceMonitor refer to", () => {
  assert(readmeWeb, "the README's certificate commands did not run");
  if (!has("kubectl")) skip("kubectl not installed");
  const kc = join(WORK, "kubeconfig");
  writeFileSync(kc, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n");
  // Every kubectl command of the block, as a client-side dry run printing the object.
  const block = codeBlock(readmeSection("2. The Secrets"), "bash", "create secret generic");
  const out = runScript(`kubectl() { command kubectl "$@" --dry-run=client -o yaml; echo ---; }\n`
    + `PASSWORD=$(cat password.txt)\n${block}`, readmeDir, { KUBECONFIG: kc });
  const secrets = loadYamlDocs("kubectl output", out);
  const data = (name) => {
    const s = find(secrets, "Secret", name);
    return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
  };
  eq(new Set(secrets.map((s) => s.metadata.namespace)).size, 1, "the Secrets' namespaces");
  const web = data(WEB_SECRET);
  eq(Object.keys(web).sort(), WEB_SECRET_KEYS, `keys of ${WEB_SECRET}`);
  for (const k of WEB_SECRET_KEYS) eq(web[k], readFileSync(join(readmeDir, k), "utf8"), `${WEB_SECRET} ${k}`);
  const vol = pod.volumes.find((v) => v.secret?.secretName === WEB_SECRET);
  assert(vol, `the DaemonSet mounts no Secret ${WEB_SECRET}`);
  const mount = ctr.volumeMounts.find((m) => m.name === vol.name);
  assert(mount, `volume ${vol.name} is not mounted`);
  const arg = ctr.args.find((a) => a.startsWith("--web-config-file=")).split("=")[1];
  assert(arg.slice(arg.lastIndexOf("/") + 1) in web, `--web-config-file ${arg} names no key of ${WEB_SECRET}`);
  for (const k of ["cert_file", "key_file"]) assert(readmeWeb.tls_server_config[k] in web, `web.yml ${k} is not in ${WEB_SECRET}`);
  // What the ServiceMonitor reads from netprobe-scrape, and that it matches.
  const ep = find(smDocs, "ServiceMonitor").spec.endpoints[0];
  const refs = [ep.tlsConfig.ca.secret, ep.basicAuth.username, ep.basicAuth.password];
  for (const r of refs) eq(r.name, SCRAPE_SECRET, "ServiceMonitor secret name");
  const scrape = data(SCRAPE_SECRET);
  for (const r of refs) assert(r.key in scrape, `${SCRAPE_SECRET} has no key ${r.key}`);
  eq(scrape[ep.tlsConfig.ca.secret.key], readFileSync(join(readmeDir, "ca.crt"), "utf8"), "the CA in netprobe-scrape");
  eq(scrape[ep.basicAuth.password.key], readmePassword, "the password in netprobe-scrape");
  assert(scrape[ep.basicAuth.username.key] in readmeWeb.basic_auth_users, "the user in netprobe-scrape is not in web.yml");
  // The Secret as kubelet mounts it, for the agent check below.
  webSecretDir = join(WORK, "mount", mount.mountPath);
  execFileSync("mkdir", ["-p", webSecretDir]);
  for (const [k, v] of Object.entries(web)) writeFileSync(join(webSecretDir, k), v, { mode: vol.secret.defaultMode ?? 0o644 });
});

check("bin/netprobe-agent accepts web.yml.example and the README's Secret as mounted, and refuses broken ones", () => {
  if (!existsSync(P.agentBin)) skip("bin/netprobe-agent not built");
  assert(webSecretDir && readmeWeb, "the README's Secret was not made (see the checks above)");
  // The agent checks the web config (and loads the certificate and key) after its
  // capability and interface checks, and reads --security-config right after: a
  // missing one stops it there, before any BPF program is loaded or port opened.
  const noSecurity = join(WORK, "no-such-security.yaml");
  const agent = (webFile) => {
    const env = { ...process.env };
    delete env.NETWORK_INTERFACE;
    delete env.KUBERNETES_SERVICE_HOST;
    const r = spawnSync(P.agentBin, ["--k8s=off", "--log-level=error", `--web-config-file=${webFile}`, `--security-config=${noSecurity}`],
      { encoding: "utf8", env, timeout: 30000, killSignal: "SIGKILL" });
    assert(r.signal === null, `the agent did not stop by itself (${r.signal}; it should stop at --security-config)\n${r.stderr}`);
    if (r.error) throw r.error;
    if (/missing capability/.test(r.stderr)) skip(`needs root with CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON: ${r.stderr.trim()}`);
    assert(r.status !== 0, "the agent exited 0");
    return r.stderr.trim();
  };
  const accepted = (webFile) => {
    const err = agent(webFile);
    assert(!err.includes("--web-config-file"), `${webFile} refused: ${err}`);
    assert(err.includes(`--security-config: `) && err.includes(noSecurity), `the agent stopped before reading --security-config: ${err}`);
  };
  const refused = (webFile, why) => {
    const err = agent(webFile);
    assert(err.includes("--web-config-file") && why.test(err), `${webFile} not refused for ${why}: ${err}`);
  };
  const ex = join(WORK, "example");
  execFileSync("mkdir", ["-p", ex]);
  for (const f of ["tls.crt", "tls.key", "ca.key"]) writeFileSync(join(ex, f), readFileSync(join(readmeDir, f)));
  const exampleText = readFileSync(P.webExample, "utf8");
  writeFileSync(join(ex, "web.yml"), exampleText);
  accepted(join(ex, "web.yml"));
  accepted(join(webSecretDir, "web.yml"));
  writeFileSync(join(ex, "wrong-key.yml"), exampleText.replace(/key_file: \S+/, "key_file: ca.key"));
  refused(join(ex, "wrong-key.yml"), /key values mismatch/);
  writeFileSync(join(ex, "typo.yml"), exampleText.replace("client_auth_type:", "client_auth:"));
  refused(join(ex, "typo.yml"), /client_auth: unknown key/);
});

check("README: the plain-Prometheus scrape config is https with ca_file, server_name netprobe-metrics and basic_auth (promtool check config)", () => {
  const text = codeBlock(readmeSection("Prometheus without the operator"), "yaml", "scrape_configs:");
  const cfg = YAML.parse(text);
  eq(cfg.scrape_configs.length, 1, "scrape configs");
  const job = cfg.scrape_configs[0];
  eq(job.job_name, "netprobe-metrics", "job_name (the alerts expect it)");
  eq(job.scheme, "https", "scheme");
  assert(job.tls_config?.ca_file && !job.tls_config.insecure_skip_verify, "tls_config: ca_file, no insecure_skip_verify");
  eq(job.tls_config.server_name, SERVER_NAME, "tls_config.server_name");
  assert(job.basic_auth?.username && (job.basic_auth.password_file || job.basic_auth.password), "basic_auth");
  if (!has("promtool")) throw new Error("promtool not found");
  // Debian's promtool is built without Kubernetes service discovery: check the rest
  // with static targets in its place.
  const f = join(WORK, "prometheus.yml");
  writeFileSync(f, text);
  let r = run("promtool", ["check", "config", "--syntax-only", f]);
  if (r.status !== 0 && /field kubernetes_sd_configs not found/.test(r.stdout + r.stderr)) {
    for (const j of cfg.scrape_configs) { delete j.kubernetes_sd_configs; j.static_configs = [{ targets: ["node-a:8081"] }]; }
    writeFileSync(f, YAML.stringify(cfg));
    r = run("promtool", ["check", "config", "--syntax-only", f]);
  }
  assert(r.status === 0, r.stdout + r.stderr);
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

check("Grafana dashboard: covers interface rates, protocols, malformed, map health, top talkers, collection", () => {
  const used = new Set(dashExprs().flatMap((e) => metricNames(e.expr)));
  for (const m of ["netprobe_interface_rx_bytes_total", "netprobe_interface_tx_bytes_total", "netprobe_protocol_packets_total",
    "netprobe_malformed_packets_total", "netprobe_map_fill_ratio", "netprobe_map_update_errors_total",
    "netprobe_top_talker_bytes_rate", "netprobe_collect_duration_seconds"]) assert(used.has(m), `no panel shows ${m}`);
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
  const ifaceMetric = /^netprobe_(interface_|xdp_|top_talker_(bytes|packets)_)/;
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

check("deploy/clickhouse component: renders with the base; the ClickHouse objects validate; the agent gets --clickhouse, --history-source=clickhouse and a hostPath --state-dir", () => {
  const dir = join(DEPLOY, "clickhouse");
  const comp = YAML.parse(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  eq(comp.kind, "Component", "deploy/clickhouse/kustomization.yaml kind");
  assert(/^#\s+components:\n#\s+- clickhouse$/m.test(readFileSync(P.kustomization, "utf8")),
         "deploy/kustomization.yaml does not show how to enable the component");
  const chDocs = loadYamlDocs(join(dir, "clickhouse.yaml"));
  eq(chDocs.map(docId).sort(), ["ConfigMap/netprobe-clickhouse", "Service/netprobe-clickhouse",
                                "StatefulSet/netprobe-clickhouse"], "objects");
  strict.build(chDocs);
  for (const d of chDocs) { schemaValidate(d); strict.check(d); }
  const cfg = find(chDocs, "ConfigMap").data["netprobe.xml"];
  const xml = run("python3", ["-c", "import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.read())"], { input: cfg });
  assert(xml.status === 0, `ClickHouse config is not XML: ${xml.stderr}`);
  const sts = find(chDocs, "StatefulSet"), svc = find(chDocs, "Service");
  eq(svc.spec.selector, sts.spec.template.metadata.labels, "Service selector");
  if (!has("kubectl")) skip("kubectl not installed");
  const tmp = mkdtempSync(join(tmpdir(), "np-kust-"));
  try {
    execFileSync("cp", ["-r", ...readdirSync(DEPLOY).map((f) => join(DEPLOY, f)), tmp]);
    const k = readFileSync(join(tmp, "kustomization.yaml"), "utf8").replace(/^# components:\n#   - clickhouse$/m, "components:\n  - clickhouse");
    writeFileSync(join(tmp, "kustomization.yaml"), k);
    const r = run("kubectl", ["kustomize", tmp]);
    assert(r.status === 0, r.stderr);
    const docs = loadYamlDocs("kustomize output", r.stdout);
    strict.build(docs);
    for (const d of docs) { schemaValidate(d); strict.check(d); }
    for (const want of chDocs.map(docId)) assert(docs.some((d) => docId(d) === want), `${want} missing`);
    const ds = find(docs, "DaemonSet"), c = ds.spec.template.spec.containers[0];
    const flags = agentFlags();
    for (const a of c.args) assert(flags.has(a.split("=")[0]), `agent has no flag ${a.split("=")[0]}`);
    const ch = c.args.find((a) => a.startsWith("--clickhouse="));
    assert(ch && ch.includes(`http://${svc.metadata.name}:${svc.spec.ports[0].port}`), `--clickhouse does not name the Service: ${ch}`);
    assert(c.args.includes("--history-source=clickhouse"), "the agents do not read the cluster's history (--history-source=clickhouse)");
    const sd = c.args.find((a) => a.startsWith("--state-dir="))?.split("=")[1];
    const mount = c.volumeMounts.find((m) => m.mountPath === sd);
    assert(mount && !mount.readOnly, `--state-dir ${sd} is not a writable mount`);
    const vol = ds.spec.template.spec.volumes.find((v) => v.name === mount.name);
    eq(vol.hostPath?.path, sd, "state volume hostPath");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
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

check("deploy/README.md documents every capability and host mount, and how the endpoints are secured", () => {
  const readme = readFileSync(P.readme, "utf8");
  for (const w of [...CAPS.map((c) => `CAP_${c}`), "/sys/kernel/btf/vmlinux", "/sys/fs/bpf", "/sys/fs/cgroup", "hostNetwork",
    "readOnlyRootFilesystem", "netprobe-metrics", "kubectl apply -k", "ClusterRoleBinding",
    "## Securing the endpoints", WEB_SECRET, SCRAPE_SECRET, "scheme: HTTPS", "--api-address", "NETPROBE_API_ADDRESS",
    "RequireAndVerifyClientCert", "tcpSocket", "apache2-utils", "python3-bcrypt", "web.yml.example"])
    assert(readme.includes(w), `README does not mention ${w}`);
});

console.log(`\ndeploy: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
process.exit(results.failed ? 1 : 0);
