/**
 * Environment variables that override config keys. Applied to the raw TOML
 * table before validation, so an env value is checked like a file value and
 * its errors name the variable instead of the file.
 */

export interface EnvOverride {
  env: string;
  path: readonly string[];
  kind: "string" | "number" | "list" | "size";
}

export const ENV_OVERRIDES: readonly EnvOverride[] = [
  { env: "CORTEX_LOG_LEVEL", path: ["log", "level"], kind: "string" },
  { env: "CORTEX_LOG_FORMAT", path: ["log", "format"], kind: "string" },
  { env: "CORTEX_GATEWAY_LISTEN", path: ["gateway", "listen"], kind: "string" },
  { env: "CORTEX_METRICS_LISTEN", path: ["gateway", "metrics_listen"], kind: "string" },
  { env: "CORTEX_API_KEYS", path: ["gateway", "api_keys"], kind: "list" },
  { env: "CORTEX_ADMIN_TOKEN", path: ["gateway", "admin_token"], kind: "string" },
  { env: "CORTEX_NEURON_LISTEN", path: ["neuron", "listen"], kind: "string" },
  { env: "CORTEX_MODELS_DIR", path: ["neuron", "models_dir"], kind: "string" },
  { env: "CORTEX_NEURON_TOKEN", path: ["neuron", "auth_token"], kind: "string" },
  { env: "CORTEX_NODE_NAME", path: ["neuron", "node_name"], kind: "string" },
  { env: "CORTEX_DISCOVERY_DNS", path: ["discovery", "dns"], kind: "string" },
  { env: "CORTEX_DISCOVERY_TOKEN", path: ["discovery", "token"], kind: "string" },
  { env: "CORTEX_REDIS_URL", path: ["state", "redis_url"], kind: "string" },
  { env: "CORTEX_MEMORY_LIMIT", path: ["neuron", "memory_limit"], kind: "size" },
  { env: "NEURON_TP_STEP_TIMEOUT_S", path: ["neuron", "step_timeout_s"], kind: "number" },
  { env: "NEURON_TP_RECOVERY_GRACE_S", path: ["neuron", "stage2_grace_s"], kind: "number" },
  { env: "NEURON_TP_ABORT_TIMEOUT_S", path: ["neuron", "abort_timeout_s"], kind: "number" },
  { env: "CORTEX_CPU_DEVICES", path: ["neuron", "cpu_devices"], kind: "number" },
  { env: "HF_ENDPOINT", path: ["neuron", "hf_endpoint"], kind: "string" },
  { env: "HF_TOKEN", path: ["neuron", "hf_token"], kind: "string" },
];

type Table = Record<string, unknown>;

/**
 * Returns a copy of `raw` with overrides applied, and which key paths came
 * from which variable (for error messages).
 */
export function applyEnvOverrides(
  raw: Table,
  env: Record<string, string | undefined>,
): { table: Table; sources: Map<string, string> } {
  const table = structuredClone(raw);
  const sources = new Map<string, string>();
  for (const override of ENV_OVERRIDES) {
    const text = env[override.env];
    if (text === undefined || text === "") continue;
    let value: unknown = text;
    if (override.kind === "number") value = /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : text;
    // Empty items are kept for the schema to refuse: CORTEX_API_KEYS="," must not mean "no keys, open".
    if (override.kind === "list") value = text.split(",").map((part) => part.trim());
    setPath(table, override.path, value);
    sources.set(override.path.join("."), override.env);
  }
  return { table, sources };
}

function setPath(table: Table, path: readonly string[], value: unknown): void {
  let node: Table = table;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Table;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}
