/**
 * The Helm chart (deploy/helm/cortex) as an operator installs it, checked
 * offline: `helm lint` and `helm template` for the default values and the
 * multi-replica GPU example; every rendered object decoded strictly into the
 * real Kubernetes API types (deploy/helm/validate: a misspelled field or a
 * wrong nesting fails); each ConfigMap's cortex.toml read by cortex's own
 * config loader with the environment its pod gets; and what must hold
 * between objects (selectors, probes, grace periods, secrets).
 *
 * helm and the validator are built by `npm test`'s setup
 * (scripts/ensure-helm-tools.ts); without them this file skips and says so.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Glob } from "bun";
import { ConfigError } from "../../src/core/config/config-error.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { HELM_BIN, helmToolsReady, VALIDATE_BIN } from "../../scripts/ensure-helm-tools.ts";

const ROOT = join(import.meta.dir, "../..");
const CHART = join(ROOT, "deploy/helm/cortex");
const GPU_EXAMPLE = join(ROOT, "deploy/helm/examples/gpu-fleet.values.yaml");
const NAMESPACE = "cortex";

/**
 * Config keys and environment variables the chart sets for parts of issue 23 built in other
 * branches (DNS discovery, Redis state, node identity). While cortex's config
 * does not know a key yet, the loader's "unknown key" for it is tolerated (and printed); once
 * it lands, the key is checked like any other, so a name that landed differently fails here.
 * An environment variable is tolerated while its key is pending and no source file names it.
 */
const PENDING_KEYS = ["discovery", "state"];
const PENDING_ENV: Record<string, string> = {
  CORTEX_DISCOVERY_TOKEN: "discovery",
  CORTEX_REDIS_URL: "state",
  // The neuron's identity in /health (`node`): not a config key; it comes with discovery.
  CORTEX_NODE_NAME: "discovery",
};

const ready = helmToolsReady();
if (!ready)
  console.warn(
    "helm-chart.test: SKIPPED: helm or cortex-helm-validate is not built in .cache/bin; run `bun scripts/ensure-helm-tools.ts` (needs Go and the Go module proxy)",
  );

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are checked by the Go validator; here they are read loosely.
type K8sObject = any;

function run(cmd: string[], stdin?: string): { code: number; stdout: string; stderr: string } {
  const proc = Bun.spawnSync(cmd, {
    cwd: ROOT,
    stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: proc.exitCode ?? -1, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}

function template(args: string[] = []): { code: number; stdout: string; stderr: string } {
  return run([HELM_BIN, "template", "cortex", CHART, "--namespace", NAMESPACE, ...args]);
}

function render(args: string[] = []): { text: string; objects: K8sObject[] } {
  const result = template(args);
  if (result.code !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  const objects = (Bun.YAML.parse(result.stdout) as K8sObject[]).filter((doc) => doc !== null);
  return { text: result.stdout, objects };
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found)
    throw new Error(`no ${kind}/${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`)}`);
  return found;
}

function validate(text: string): { code: number; stdout: string } {
  const result = run([VALIDATE_BIN], text);
  return { code: result.code, stdout: result.stdout + result.stderr };
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** The environment a container gets, with a placeholder for every value a Secret holds. */
function containerEnv(container: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = String(entry.value);
    else if (entry.valueFrom?.secretKeyRef) {
      const key: string = entry.valueFrom.secretKeyRef.key;
      // A URL from a Secret (an external Redis) must still look like one to the config's checks.
      env[entry.name] = key.endsWith("url") ? `redis://${key}.example:6379` : `secret-${key}`;
    } else if (entry.valueFrom?.fieldRef) env[entry.name] = "node-1";
  }
  return env;
}

/**
 * Loads a ConfigMap's cortex.toml with cortex's own loader, as the container would (its
 * environment applied). Returns the pending keys it had to tolerate; any other problem throws.
 */
function loadRenderedConfig(toml: string, env: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), "cortex-chart-"));
  try {
    const path = join(dir, "cortex.toml");
    writeFileSync(path, toml);
    try {
      loadConfig({ path, env, cwd: dir });
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const pending = error.problems.filter((problem) =>
        PENDING_KEYS.some((key) => problem.startsWith(`cortex.toml: ${key}: unknown key`)),
      );
      const others = error.problems.filter((problem) => !pending.includes(problem));
      if (others.length > 0) throw new Error(`cortex refuses the rendered config:\n${others.join("\n")}`);
      // Everything else checked: the file without the pending keys must load.
      const keys = pending.map((problem) => problem.split(": ")[1] ?? "");
      const table = Bun.TOML.parse(toml) as Record<string, Record<string, unknown>>;
      for (const key of keys) {
        const [section, name] = key.split(".");
        if (section === undefined) continue;
        if (name === undefined) delete table[section];
        else delete table[section]?.[name];
      }
      writeFileSync(path, tomlOf(table));
      loadConfig({ path, env, cwd: dir });
      return keys;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Enough TOML for the tables the chart renders: scalars, arrays of scalars, arrays of tables. */
function tomlOf(table: Record<string, unknown>): string {
  const value = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(value).join(", ")}]`;
    if (typeof v === "object" && v !== null)
      return `{ ${Object.entries(v)
        .map(([k, inner]) => `${JSON.stringify(k)} = ${value(inner)}`)
        .join(", ")} }`;
    return JSON.stringify(v);
  };
  const body = (t: Record<string, unknown>) =>
    Object.entries(t)
      .map(([k, v]) => `${k} = ${value(v)}\n`)
      .join("");
  let out = "";
  for (const [name, section] of Object.entries(table)) {
    if (Array.isArray(section)) for (const item of section) out += `[[${name}]]\n${body(item)}`;
    else out += `[${name}]\n${body(section as Record<string, unknown>)}`;
  }
  return out;
}

const sources = [...new Glob("src/**/*.ts").scanSync({ cwd: ROOT })]
  .map((file) => readFileSync(join(ROOT, file), "utf8"))
  .join("\n");

/** Every environment variable the chart sets must be one cortex reads (or one still pending). */
function unknownEnv(env: Record<string, string>, tolerated: string[]): string[] {
  return Object.keys(env).filter((name) => {
    if (sources.includes(`"${name}"`)) return false;
    const pendingOn = PENDING_ENV[name];
    return pendingOn === undefined || !tolerated.includes(pendingOn);
  });
}

describe.skipIf(!ready)("helm chart deploy/helm/cortex", () => {
  const defaults = ready ? render() : { text: "", objects: [] };
  const gpu = ready
    ? render(["-f", GPU_EXAMPLE, "--api-versions", "monitoring.coreos.com/v1"])
    : { text: "", objects: [] };

  test("helm lint passes for the default values and the GPU example", () => {
    for (const args of [[], ["-f", GPU_EXAMPLE]]) {
      const result = run([HELM_BIN, "lint", "--strict", CHART, ...args]);
      expect(result.stdout + result.stderr).toContain("0 chart(s) failed");
      expect(result.code).toBe(0);
    }
  });

  test("every rendered object decodes strictly into its Kubernetes type", () => {
    for (const rendered of [defaults, gpu]) {
      const result = validate(rendered.text);
      expect(result.stdout).toContain(`${rendered.objects.length} objects, 0 invalid`);
      expect(result.code).toBe(0);
    }
  });

  test("the validator rejects a misspelled field, a wrong nesting and an unknown kind", () => {
    const misspelled = defaults.text.replace(
      "terminationGracePeriodSeconds:",
      "terminationGracePeriodSecond:",
    );
    const result = validate(misspelled);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('unknown field "terminationGracePeriodSecond"');
    // readinessProbe one level too deep: inside httpGet.
    const nested = defaults.text.replace(
      /( +)readinessProbe:\n\1 {2}httpGet:\n/,
      (_m, indent: string) =>
        `${indent}readinessProbe:\n${indent}  httpGet:\n${indent}    periodSeconds: 5\n`,
    );
    expect(nested).not.toBe(defaults.text);
    const nestedResult = validate(nested);
    expect(nestedResult.code).toBe(1);
    expect(nestedResult.stdout).toContain('unknown field "periodSeconds"');
    const unknownKind = validate("apiVersion: v1\nkind: ConfigMapp\nmetadata:\n  name: x\n");
    expect(unknownKind.code).toBe(1);
    expect(unknownKind.stdout).toContain("unknown kind");
  });

  test("values.schema.json refuses a misspelled value before anything renders", () => {
    const result = template(["--set", "neuron.gpu=2"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("values don't meet the specifications of the schema");
    expect(result.stderr).toContain("gpu");
  });

  test("the default install: neuron DaemonSet, headless Service, gateway Deployment, Service, PDB, NetworkPolicy, config, credentials, dashboard; no ServiceMonitor without the Prometheus Operator", () => {
    const kinds = defaults.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        "ConfigMap/cortex-dashboard",
        "ConfigMap/cortex-gateway",
        "ConfigMap/cortex-neuron",
        "DaemonSet/cortex-neuron",
        "Deployment/cortex-gateway",
        "NetworkPolicy/cortex-neuron",
        "PodDisruptionBudget/cortex-gateway",
        "Secret/cortex-auth",
        "Service/cortex-gateway",
        "Service/cortex-neuron",
      ].sort(),
    );
    const monitors = gpu.objects.filter((o) => o.kind === "ServiceMonitor").map((o) => o.metadata.name);
    expect(monitors.sort()).toEqual(["cortex-gateway", "cortex-neuron"]);
  });

  test("neurons: GPU nodes, every GPU, the node's name, probes that survive loads and recoveries, a grace period past shutdown_grace_s", () => {
    for (const [rendered, gpus] of [
      [defaults, 1],
      [gpu, 8],
    ] as const) {
      const ds = find(rendered.objects, "DaemonSet", "cortex-neuron");
      const pod = ds.spec.template.spec;
      const container = pod.containers[0];
      expect(pod.nodeSelector["nvidia.com/gpu.present"]).toBe("true");
      expect(pod.tolerations).toContainEqual({
        key: "nvidia.com/gpu",
        operator: "Exists",
        effect: "NoSchedule",
      });
      expect(container.resources.limits["nvidia.com/gpu"]).toBe(gpus);
      expect(container.env).toContainEqual({
        name: "CORTEX_NODE_NAME",
        valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } },
      });
      expect(container.livenessProbe.httpGet.path).toBe("/live");
      expect(container.startupProbe.httpGet.path).toBe("/live");
      expect(container.readinessProbe.httpGet.path).toBe("/ready");
      const config = Bun.TOML.parse(
        find(rendered.objects, "ConfigMap", "cortex-neuron").data["cortex.toml"],
      ) as {
        neuron: { shutdown_grace_s: number; models_dir: string };
      };
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(config.neuron.shutdown_grace_s);
      const models = container.volumeMounts.find((m: K8sObject) => m.name === "models");
      expect(models.mountPath).toBe(config.neuron.models_dir);
    }
    // CPU nodes: no GPU asked for, the CPU image.
    const cpu = find(
      render(["--set", "neuron.gpus=0", "--set", "neuron.image.tagSuffix="]).objects,
      "DaemonSet",
      "cortex-neuron",
    ).spec.template.spec.containers[0];
    expect(cpu.resources.limits ?? {}).toEqual({});
    expect(cpu.image).toBe("cortex:0.1.0");
    expect(find(defaults.objects, "DaemonSet", "cortex-neuron").spec.template.spec.containers[0].image).toBe(
      "cortex:0.1.0-cuda",
    );
    const hostPath = find(defaults.objects, "DaemonSet", "cortex-neuron").spec.template.spec.volumes;
    expect(hostPath.find((v: K8sObject) => v.name === "models").hostPath.path).toBe("/var/lib/cortex/models");
    const claim = find(gpu.objects, "DaemonSet", "cortex-neuron").spec.template.spec.volumes;
    expect(claim.find((v: K8sObject) => v.name === "models").persistentVolumeClaim).toEqual({
      claimName: "cortex-models",
      readOnly: true,
    });
  });

  test("the gateway finds the neurons through the headless Service, and only gateway pods may reach them", () => {
    for (const rendered of [defaults, gpu]) {
      const ds = find(rendered.objects, "DaemonSet", "cortex-neuron");
      const gateway = find(rendered.objects, "Deployment", "cortex-gateway");
      const service = find(rendered.objects, "Service", "cortex-neuron");
      expect(service.spec.clusterIP).toBe("None");
      expect(matches(service.spec.selector, ds.spec.template.metadata.labels)).toBe(true);
      expect(matches(service.spec.selector, gateway.spec.template.metadata.labels)).toBe(false);
      const config = Bun.TOML.parse(
        find(rendered.objects, "ConfigMap", "cortex-gateway").data["cortex.toml"],
      ) as {
        discovery: { dns: string };
      };
      expect(config.discovery.dns).toBe(`cortex-neuron.${NAMESPACE}.svc.cluster.local:13131`);
      const policy = find(rendered.objects, "NetworkPolicy", "cortex-neuron");
      expect(matches(policy.spec.podSelector.matchLabels, ds.spec.template.metadata.labels)).toBe(true);
      const from = policy.spec.ingress[0].from[0].podSelector.matchLabels;
      expect(matches(from, gateway.spec.template.metadata.labels)).toBe(true);
      expect(matches(from, ds.spec.template.metadata.labels)).toBe(false);
      const gatewayService = find(rendered.objects, "Service", "cortex-gateway");
      expect(matches(gatewayService.spec.selector, gateway.spec.template.metadata.labels)).toBe(true);
      const pdb = find(rendered.objects, "PodDisruptionBudget", "cortex-gateway");
      expect(matches(pdb.spec.selector.matchLabels, gateway.spec.template.metadata.labels)).toBe(true);
    }
  });

  test("each ConfigMap's cortex.toml loads in cortex with its pod's environment; every variable set is one cortex reads", () => {
    const tolerated = new Set<string>();
    // The third: an external Redis whose URL (password and all) comes from a Secret.
    const external = render(["--set", "gateway.replicas=2", "--set", "redis.existingSecret=redis-creds"]);
    for (const rendered of [defaults, gpu, external]) {
      const envs: Array<Record<string, string>> = [];
      for (const [configMap, kind, name] of [
        ["cortex-gateway", "Deployment", "cortex-gateway"],
        ["cortex-neuron", "DaemonSet", "cortex-neuron"],
      ] as const) {
        const toml = find(rendered.objects, "ConfigMap", configMap).data["cortex.toml"];
        const container = find(rendered.objects, kind, name).spec.template.spec.containers[0];
        expect(container.args).toEqual([
          kind === "Deployment" ? "serve" : "neuron",
          "--config",
          "/etc/cortex/cortex.toml",
        ]);
        const env = containerEnv(container);
        for (const key of loadRenderedConfig(toml, env)) tolerated.add(key);
        envs.push(env);
      }
      for (const env of envs) expect(unknownEnv(env, [...tolerated])).toEqual([]);
    }
    if (tolerated.size > 0)
      console.warn(
        `helm-chart.test: keys cortex's config does not know yet (issue 23, other branches), tolerated: ${[...tolerated].join(", ")}`,
      );
  });

  test("a config cortex would refuse fails the check (a misspelled key from values)", () => {
    const bad = render(["--set", "config.gateway.request_timeout=5"]);
    const toml = find(bad.objects, "ConfigMap", "cortex-gateway").data["cortex.toml"];
    expect(() => loadRenderedConfig(toml, {})).toThrow(
      'gateway.request_timeout: unknown key "request_timeout"',
    );
  });

  test("credentials come from Secrets, never from values or the ConfigMaps", () => {
    for (const rendered of [defaults, gpu]) {
      for (const name of ["cortex-gateway", "cortex-neuron"]) {
        const toml = find(rendered.objects, "ConfigMap", name).data["cortex.toml"];
        expect(toml).not.toMatch(/api_keys|auth_token|admin_token|token/);
      }
      const gateway = containerEnv(
        find(rendered.objects, "Deployment", "cortex-gateway").spec.template.spec.containers[0],
      );
      const neuron = containerEnv(
        find(rendered.objects, "DaemonSet", "cortex-neuron").spec.template.spec.containers[0],
      );
      expect(gateway.CORTEX_API_KEYS).toBe("secret-api-keys");
      expect(gateway.CORTEX_ADMIN_TOKEN).toBe("secret-admin-token");
      // The token the neurons ask for is the one the gateway sends.
      expect(gateway.CORTEX_DISCOVERY_TOKEN).toBe(neuron.CORTEX_NEURON_TOKEN);
      expect(neuron.CORTEX_NEURON_TOKEN).toBe("secret-neuron-token");
    }
    const values = readFileSync(join(CHART, "values.yaml"), "utf8");
    expect(values).not.toMatch(/^\s*(api_keys|auth_token|admin_token|apiKeys|password):/m);
    // The generated Secret holds random values (different on every fresh render) ...
    const secret = find(defaults.objects, "Secret", "cortex-auth");
    expect(Object.keys(secret.data).sort()).toEqual(["admin-token", "api-keys", "neuron-token"]);
    expect(find(render().objects, "Secret", "cortex-auth").data["api-keys"]).not.toBe(
      secret.data["api-keys"],
    );
    // ... and with existingSecret there is none: the pods read the operator's.
    const refs = gpu.objects.filter((o) => o.kind === "Secret");
    expect(refs).toEqual([]);
    const env = find(gpu.objects, "Deployment", "cortex-gateway").spec.template.spec.containers[0].env;
    expect(env.find((e: K8sObject) => e.name === "CORTEX_API_KEYS").valueFrom.secretKeyRef.name).toBe(
      "cortex-credentials",
    );
  });

  test("several gateways need Redis: the chart refuses to render without it, and shares the chart's Redis with them", () => {
    const refused = template(["--set", "gateway.replicas=3"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("gateway.replicas is 3 but no Redis is configured");
    const gateway = Bun.TOML.parse(find(gpu.objects, "ConfigMap", "cortex-gateway").data["cortex.toml"]) as {
      state: { redis_url: string };
    };
    expect(find(gpu.objects, "Deployment", "cortex-gateway").spec.replicas).toBe(3);
    expect(gateway.state.redis_url).toBe("redis://cortex-redis:6379");
    const redis = find(gpu.objects, "Service", "cortex-redis");
    expect(
      matches(
        redis.spec.selector,
        find(gpu.objects, "Deployment", "cortex-redis").spec.template.metadata.labels,
      ),
    ).toBe(true);
    // An external Redis whose URL is a secret: no Redis in the release, the URL from the Secret.
    const external = render(["--set", "gateway.replicas=2", "--set", "redis.existingSecret=redis-creds"]);
    expect(external.objects.filter((o) => o.metadata.name === "cortex-redis")).toEqual([]);
    const env = find(external.objects, "Deployment", "cortex-gateway").spec.template.spec.containers[0].env;
    expect(env).toContainEqual({
      name: "CORTEX_REDIS_URL",
      valueFrom: { secretKeyRef: { name: "redis-creds", key: "redis-url" } },
    });
  });

  test("an autoscaled gateway: the HPA drives the Deployment, and needs Redis as soon as it may scale past one", () => {
    const refused = template(["--set", "gateway.autoscaling.enabled=true"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("gateway.autoscaling.maxReplicas is 10 but no Redis is configured");
    const scaled = render(["--set", "gateway.autoscaling.enabled=true", "--set", "redis.enabled=true"]);
    expect(validate(scaled.text).code).toBe(0);
    const hpa = find(scaled.objects, "HorizontalPodAutoscaler", "cortex-gateway");
    const deployment = find(scaled.objects, "Deployment", "cortex-gateway");
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "cortex-gateway",
    });
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 10]);
    // The HPA owns the count: a replicas field would fight it on every upgrade.
    expect(deployment.spec.replicas).toBeUndefined();
    expect(defaults.objects.filter((o) => o.kind === "HorizontalPodAutoscaler")).toEqual([]);
  });

  test("a termination grace period at or below shutdown_grace_s is refused", () => {
    const neuron = template(["--set", "neuron.terminationGracePeriodSeconds=30"]);
    expect(neuron.code).not.toBe(0);
    expect(neuron.stderr).toContain(
      "neuron.terminationGracePeriodSeconds (30) must exceed config.neuron.shutdown_grace_s (30)",
    );
    const gateway = template(["--set", "gateway.terminationGracePeriodSeconds=35"]);
    expect(gateway.code).not.toBe(0);
    expect(gateway.stderr).toContain("must exceed config.gateway.drain_delay_s + shutdown_grace_s (35)");
  });

  test("the dashboard ConfigMap carries deploy/grafana/cortex-dashboard.json as it is", () => {
    const dashboard = find(defaults.objects, "ConfigMap", "cortex-dashboard");
    expect(dashboard.metadata.labels.grafana_dashboard).toBe("1");
    expect(JSON.parse(dashboard.data["cortex-dashboard.json"])).toEqual(
      JSON.parse(readFileSync(join(ROOT, "deploy/grafana/cortex-dashboard.json"), "utf8")),
    );
  });
});
