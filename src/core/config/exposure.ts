/**
 * Secure defaults: a server that listens beyond loopback with no credential
 * is refused at start unless the config says so on purpose. LiteLLM's proxy
 * will not start without a master key; llama-server and Ollama bind to
 * loopback. An open port on a cluster network is found within hours, and an
 * open LLM API is free compute for whoever finds it.
 */
import { basename } from "node:path";
import type { LoadedConfig } from "./load-config.ts";
import type { ListenAddress } from "./parse-listen.ts";

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost" || host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  if (host.startsWith("::ffff:")) return isLoopback(host.slice("::ffff:".length));
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export type ServerRole = "gateway" | "neuron";

interface Exposure {
  listenKey: string;
  listen: ListenAddress;
  credentialKey: string;
  credentialEnv: string;
  hasCredential: boolean;
  allowed: boolean;
}

function exposureOf(config: LoadedConfig, role: ServerRole): Exposure {
  if (role === "gateway")
    return {
      listenKey: "gateway.listen",
      listen: config.gatewayListen,
      credentialKey: "gateway.api_keys",
      credentialEnv: "CORTEX_API_KEYS",
      hasCredential: config.file.gateway.api_keys.length > 0,
      allowed: config.file.gateway.allow_unauthenticated,
    };
  return {
    listenKey: "neuron.listen",
    listen: config.neuronListen,
    credentialKey: "neuron.auth_token",
    credentialEnv: "CORTEX_NEURON_TOKEN",
    hasCredential: config.file.neuron.auth_token !== "",
    allowed: config.file.neuron.allow_unauthenticated,
  };
}

/**
 * The problem with serving `role` as configured, as one config-error line
 * (where the listen address came from, what is wrong, the three ways out),
 * or undefined when it may start.
 */
export function exposureProblem(config: LoadedConfig, role: ServerRole): string | undefined {
  const exposure = exposureOf(config, role);
  if (exposure.hasCredential || exposure.allowed || isLoopback(exposure.listen.hostname)) return undefined;
  const env = config.envSources.get(exposure.listenKey);
  const file = config.path === undefined ? "(defaults)" : basename(config.path);
  const where = env === undefined ? `${file}: ${exposure.listenKey}` : `environment ${env}`;
  const section = exposure.listenKey.split(".")[0];
  const host = exposure.listen.hostname.includes(":")
    ? `[${exposure.listen.hostname}]`
    : exposure.listen.hostname;
  return (
    `${where}: ${host}:${exposure.listen.port} is reachable from other machines and ` +
    `${exposure.credentialKey} is empty, so anyone who reaches it could use it; set ` +
    `${exposure.credentialKey} (env ${exposure.credentialEnv}), listen on 127.0.0.1, or set ` +
    `${section}.allow_unauthenticated = true to serve it open on purpose`
  );
}
