// validate.mjs: validate Kubernetes manifests (multi-document YAML) offline.
//
// Schemas: kubernetes-models bundles the Kubernetes OpenAPI schemas and the
// KEDA and Prometheus Operator CRD schemas as precompiled (ajv) validators,
// so nothing is fetched at validation time. Every document must have a
// known apiVersion/kind (unknown ones fail: better than silently passing).
// Like kubeconform without --strict, fields the schema does not name are
// not rejected; the project checks below cover what matters to us.
//
// Usage: node validate.mjs --docs DIR FILE...   (FILE "-" = stdin)
import { readFileSync, existsSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const GROUPS = {
  "": "kubernetes-models/v1",
  "keda.sh": "@kubernetes-models/keda/keda.sh",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
};

function modulePath(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  if (slash < 0) return `${GROUPS[""]}/${kind}`;
  const group = apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  if (GROUPS[group]) return `${GROUPS[group]}/${version}/${kind}`;
  // Built-in groups: apps, policy, networking.k8s.io, autoscaling, ...
  return `kubernetes-models/${group}/${version}/${kind}`;
}

function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-");
}

let docAnchors = null;
function anchors(docsDir) {
  if (docAnchors) return docAnchors;
  docAnchors = new Set();
  const file = `${docsDir}/operations.md`;
  if (!existsSync(file)) return docAnchors;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const h = line.match(/^#+\s+(.*)$/);
    if (h) docAnchors.add(slug(h[1]));
    for (const a of line.matchAll(/<a id="([^"]+)"/g)) docAnchors.add(a[1]);
  }
  return docAnchors;
}

// Project rules the schemas cannot express.
function projectChecks(obj, docsDir) {
  const errs = [];
  if (obj.kind === "PrometheusRule") {
    for (const g of obj.spec?.groups ?? []) {
      for (const r of g.rules ?? []) {
        if (!r.alert) continue;
        for (const k of ["summary", "description", "runbook_url"]) {
          if (!r.annotations?.[k]) errs.push(`alert ${r.alert}: missing annotation ${k}`);
        }
        const url = r.annotations?.runbook_url ?? "";
        if (!/^https:\/\/[^/\s]+\//.test(url))
          errs.push(`alert ${r.alert}: runbook_url must be an absolute https:// URL (set runbookBaseUrl in settings.yaml)`);
        const m = url.match(/operations\.md#(.+)$/);
        if (!m) errs.push(`alert ${r.alert}: runbook_url must point at operations.md#anchor`);
        else if (!anchors(docsDir).has(m[1]))
          errs.push(`alert ${r.alert}: anchor #${m[1]} not found in ${docsDir}/operations.md`);
      }
    }
  }
  if (obj.kind === "ScaledObject") {
    for (const t of obj.spec?.triggers ?? []) {
      if (t.type === "kafka" && !t.authenticationRef?.name)
        errs.push("kafka trigger: needs authenticationRef (the worker's Kafka credentials, or autoscaling stops on a secured cluster)");
    }
  }
  if (obj.kind === "Deployment") {
    const pod = obj.spec?.template?.spec ?? {};
    for (const c of pod.containers ?? []) {
      const sc = c.securityContext ?? {};
      if (sc.readOnlyRootFilesystem !== true) errs.push(`container ${c.name}: readOnlyRootFilesystem must be true`);
      if (sc.allowPrivilegeEscalation !== false) errs.push(`container ${c.name}: allowPrivilegeEscalation must be false`);
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) errs.push(`container ${c.name}: must drop ALL capabilities`);
      if (!c.livenessProbe || !c.readinessProbe) errs.push(`container ${c.name}: needs liveness and readiness probes`);
    }
    if (pod.securityContext?.runAsNonRoot !== true) errs.push("pod: runAsNonRoot must be true");
  }
  return errs;
}

// Rules across the documents of one rendered tree: one source of truth
// for the brokers, and every TriggerAuthentication a trigger names present.
function crossChecks(objs) {
  const errs = [];
  const settings = objs.find((o) => o.kind === "ConfigMap" && o.metadata?.name === "pruvan-bridge-settings");
  const auths = new Set(objs.filter((o) => o.kind === "TriggerAuthentication").map((o) => o.metadata?.name));
  for (const so of objs.filter((o) => o.kind === "ScaledObject")) {
    for (const t of so.spec?.triggers ?? []) {
      if (t.type !== "kafka") continue;
      const want = settings?.data?.kafkaBootstrapServers;
      if (settings && t.metadata?.bootstrapServers !== want)
        errs.push(`ScaledObject/${so.metadata?.name}: bootstrapServers ${t.metadata?.bootstrapServers} differs from pruvan-bridge-settings' ${want}`);
      const ref = t.authenticationRef?.name;
      if (settings && ref && !auths.has(ref))
        errs.push(`ScaledObject/${so.metadata?.name}: TriggerAuthentication ${ref} is not in the tree`);
    }
  }
  return errs;
}

async function main() {
  const args = process.argv.slice(2);
  let docsDir = "docs";
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--docs") docsDir = args[++i];
    else files.push(args[i]);
  }
  let failures = 0, checked = 0;
  for (const file of files) {
    const text = readFileSync(file === "-" ? 0 : file, "utf8");
    const docs = parseAllDocuments(text);
    for (const e of crossChecks(docs.filter((d) => !d.errors.length).map((d) => d.toJS()).filter(Boolean))) {
      console.error(`FAIL ${file}: ${e}`);
      failures++;
    }
    for (const doc of docs) {
      const where = `${file === "-" ? "<stdin>" : file}`;
      if (doc.errors.length) {
        console.error(`FAIL ${where}: YAML: ${doc.errors[0].message}`);
        failures++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;
      const name = `${where}: ${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
      if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
        console.error(`FAIL ${name}: apiVersion and kind are required`);
        failures++;
        continue;
      }
      if (obj.apiVersion.startsWith("kustomize.config.k8s.io/")) continue;
      let Model;
      try {
        const mod = await import(modulePath(obj.apiVersion, obj.kind));
        Model = mod[obj.kind];
      } catch {
        Model = undefined;
      }
      if (!Model) {
        console.error(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind}`);
        failures++;
        continue;
      }
      const errs = [];
      try {
        new Model(obj).validate();
      } catch (e) {
        errs.push(String(e.message ?? e));
      }
      errs.push(...projectChecks(obj, docsDir));
      checked++;
      if (errs.length) {
        failures++;
        for (const e of errs) console.error(`FAIL ${name}: ${e}`);
      } else {
        console.log(`ok   ${name}`);
      }
    }
  }
  console.log(`${checked} document(s) checked, ${failures} invalid`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
