/**
 * Puts a real `redis-server` (Debian's package) under `.cache/redis/` for
 * the tests of the Redis-backed conversation store, without root: `apt-get
 * download` fetches the .debs (the server and the two libraries it links
 * that a base system lacks) and `dpkg -x` unpacks them. Once; a later run
 * finds it in place. Where apt is missing or offline, tests that need Redis
 * skip and say why (tests/integration/helpers/redis-server.ts).
 *
 *   bun scripts/fetch-redis.ts     # prints the binary's path
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { aptUnpack } from "./debian-tools.ts";

export const REDIS_DIR = join(import.meta.dir, "..", ".cache", "redis");
export const REDIS_SERVER = join(REDIS_DIR, "usr", "bin", "redis-server");
export const REDIS_LIBS = join(REDIS_DIR, "usr", "lib", "x86_64-linux-gnu");

const PACKAGES = ["redis-server", "redis-tools", "liblzf1", "libjemalloc2"];

/** True when the unpacked server runs. */
function works(): boolean {
  if (!existsSync(REDIS_SERVER)) return false;
  const proc = Bun.spawnSync([REDIS_SERVER, "--version"], {
    env: { ...process.env, LD_LIBRARY_PATH: REDIS_LIBS },
    stdout: "pipe",
    stderr: "pipe",
  });
  return proc.exitCode === 0 && proc.stdout.toString().startsWith("Redis server");
}

/** The path of a working redis-server under .cache/redis, fetched if it is not there yet. */
export function ensureRedis(): string {
  if (works()) return REDIS_SERVER;
  // Beside the target, so the final rename stays on one file system.
  mkdirSync(join(REDIS_DIR, ".."), { recursive: true });
  const work = mkdtempSync(join(REDIS_DIR, "..", ".redis-fetch-"));
  try {
    const unpacked = join(work, "root");
    aptUnpack(PACKAGES, unpacked);
    rmSync(REDIS_DIR, { recursive: true, force: true });
    renameSync(unpacked, REDIS_DIR);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!works()) throw new Error(`${REDIS_SERVER} was unpacked but does not run`);
  return REDIS_SERVER;
}

if (import.meta.main) console.log(ensureRedis());
