#!/usr/bin/env bash
# The device check of issue 17: one prepared run on a GPU machine with no
# network that proves cortex computes on the GPU, and that the NCCL abort
# works against the real driver and library.
#
#   scripts/gpu-check.sh pack          here, with network: fills .gpu-check/ (Bun, the runtime
#                                      node_modules and a trimmed llama.cpp source, all xz) and
#                                      checks that it and the tracked tree fit the 64 MiB carry limit
#   scripts/gpu-check.sh run [--cpu]   on the device machine (carry [".gpu-check"]): builds libllama
#                                      with CUDA for sm_90 (and llama-bench), starts `cortex neuron` on
#                                      the GPU with a generated ~100M model, runs a chat and a streamed
#                                      chat, llama-bench, then scripts/gpu-nccl-abort.ts; everything
#                                      lands as JSON in $OUT (default .gpu-check/out).
#                                      --cpu runs the same steps without CUDA (checks the script on a
#                                      machine without a GPU; the NCCL step runs against no library).
#
# GPU_CHECK_BUILD_TIMEOUT_S (default 420) bounds the build; GPU_CHECK_WORK=DIR keeps the
# work folder and its CMake build for a rerun.
#
# Exit 0 when every step passed. $OUT/gpu-check.json has one entry per step
# (ok, seconds, the log file), the figures (decode tok/s of cortex beside
# llama-bench's tg), the devices and the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=.gpu-check
LIMIT=$((64 * 1024 * 1024))

find_bun() {
  for b in node_modules/bun/bin/bun.exe node_modules/bun/bin/bun "$(command -v bun || true)"; do
    if [ -n "$b" ] && [ -x "$b" ]; then echo "$b"; return; fi
  done
  echo "gpu-check: no bun binary found (npm ci first)" >&2
  exit 2
}

# The llama.cpp tree minus what a libllama + CUDA + llama-bench build does not read
# (other backends, tools, tests, docs, models, Python), with tools/ reduced to llama-bench.
trim_llama_src() {
  local src=$1 dest=$2
  mkdir -p "$dest"
  tar -C "$src" --exclude=.git --exclude=./docs --exclude=./media --exclude=./models --exclude=./tests \
    --exclude=./examples --exclude=./pocs --exclude=./gguf-py --exclude=./app --exclude=./conversion \
    --exclude=./scripts --exclude=./benches --exclude=./skills --exclude=./requirements --exclude=./tools \
    --exclude=./ggml/src/ggml-cann --exclude=./ggml/src/ggml-et --exclude=./ggml/src/ggml-hexagon \
    --exclude=./ggml/src/ggml-hip --exclude=./ggml/src/ggml-metal --exclude=./ggml/src/ggml-musa \
    --exclude=./ggml/src/ggml-opencl --exclude=./ggml/src/ggml-openvino --exclude=./ggml/src/ggml-rpc \
    --exclude=./ggml/src/ggml-sycl --exclude=./ggml/src/ggml-virtgpu --exclude=./ggml/src/ggml-vulkan \
    --exclude=./ggml/src/ggml-webgpu --exclude=./ggml/src/ggml-zdnn --exclude=./ggml/src/ggml-zendnn \
    -cf - . | tar -C "$dest" -xf -
  mkdir -p "$dest/tools"
  cp -r "$src/tools/llama-bench" "$dest/tools/"
  printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n' \
    >"$dest/tools/CMakeLists.txt"
}

pack() {
  local bun
  bun=$(find_bun)
  mkdir -p "$CARRY"
  if [ ! -s "$CARRY/bun.xz" ] || [ "$bun" -nt "$CARRY/bun.xz" ]; then
    echo "gpu-check: compressing $bun (a few minutes)"
    xz -T0 -6 -c "$bun" >"$CARRY/bun.xz.tmp" && mv "$CARRY/bun.xz.tmp" "$CARRY/bun.xz"
  fi
  # The production dependency tree, without Bun itself and the prebuilt llama binaries (built on the device).
  npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$ROOT/##" | grep '^node_modules/' |
    grep -v -e '^node_modules/bun$' -e '^node_modules/@node-llama-cpp' -e '^node_modules/@oven' |
    sort -u >"$CARRY/deps.txt"
  tar -cf - -T "$CARRY/deps.txt" | xz -T0 -6 >"$CARRY/node_modules.tar.xz"
  local work src
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  if [ -n "${LLAMA_SRC:-}" ]; then
    src=$LLAMA_SRC
  else
    local version
    version=$(node -p "require('./ffi/include/VERSION.json').nodeLlamaCpp")
    (cd "$work" && npm pack --silent "node-llama-cpp@$version" >/dev/null && tar xzf "node-llama-cpp-$version.tgz")
    git -c advice.detachedHead=false clone -q "$work/package/llama/gitRelease.bundle" "$work/llama.cpp"
    src=$work/llama.cpp
  fi
  trim_llama_src "$src" "$work/trimmed"
  tar -C "$work/trimmed" -cf - . | xz -T0 -6 >"$CARRY/llama-src.tar.xz"
  rm -f "$CARRY/deps.txt"
  local carry tracked total
  carry=$(du -cb "$CARRY"/*.xz | tail -1 | cut -f1)
  tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  total=$((carry + tracked))
  ls -l "$CARRY"
  echo "gpu-check: carry $((carry / 1048576)) MiB + tracked tree $((tracked / 1048576)) MiB = $((total / 1048576)) MiB of 64 MiB"
  if [ "$total" -ge "$LIMIT" ]; then
    echo "gpu-check: over the 64 MiB carry limit" >&2
    exit 1
  fi
}

# --- run ------------------------------------------------------------------

STEPS=()
step() { # step NAME TIMEOUT_S COMMAND...: runs it with its output in $OUT/NAME.log, records ok and seconds
  local name=$1 limit=$2
  shift 2
  local started rc=0
  started=$(date +%s.%N)
  echo "gpu-check: $name"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  local s
  s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  STEPS+=("{\"step\":\"$name\",\"ok\":$([ "$rc" -eq 0 ] && echo true || echo false),\"exit\":$rc,\"seconds\":$s,\"log\":\"$name.log\"}")
  [ "$rc" -eq 0 ] || { echo "gpu-check: $name failed (exit $rc); last lines:"; tail -n 20 "$OUT/$name.log"; }
  return "$rc"
}

write_summary() {
  local IFS=,
  printf '[%s]\n' "${STEPS[*]}" >"$OUT/steps.json"
  "$BUN" -e '
    const { readFileSync, existsSync } = require("node:fs");
    const out = process.argv[1], mode = process.argv[2];
    const read = (f) => { try { return JSON.parse(readFileSync(`${out}/${f}`, "utf8")); } catch { return undefined; } };
    const steps = read("steps.json") ?? [];
    const chat = read("chat.json");
    const bench = read("llama-bench.json");
    const tg = Array.isArray(bench) ? bench.find((r) => r.n_gen > 0 && r.n_prompt === 0) : undefined;
    const pp = Array.isArray(bench) ? bench.find((r) => r.n_prompt > 0 && r.n_gen === 0) : undefined;
    const summary = {
      mode,
      ok: steps.length > 0 && steps.every((s) => s.ok),
      steps,
      figures: {
        cortexDecodeTokensPerS: chat?.chat?.decodeTokensPerS,
        cortexStreamedChunksPerS: chat?.streamedChat?.decodeChunksPerS,
        cortexStreamedTtftMs: chat?.streamedChat?.ttftMs,
        llamaBenchTgTokensPerS: tg?.avg_ts,
        llamaBenchPpTokensPerS: pp?.avg_ts,
      },
      devices: chat?.healthBefore?.health?.devices,
      memoryAfterLoad: chat?.healthAfter?.health?.devices?.map((d) => ({ id: d.id, free: d.memoryFree, total: d.memoryTotal })),
      environment: read("environment.json"),
      ncclAbort: read("gpu-nccl-abort.json"),
    };
    require("node:fs").writeFileSync(`${out}/gpu-check.json`, JSON.stringify(summary, null, 2) + "\n");
    console.log(JSON.stringify({ ok: summary.ok, figures: summary.figures, steps: steps.map((s) => `${s.step}:${s.ok ? "ok" : "FAILED"}:${s.seconds}s`) }));
  ' "$OUT" "$MODE"
}

run() {
  MODE=cuda
  [ "${1:-}" = "--cpu" ] && MODE=cpu
  OUT=${OUT:-$ROOT/$CARRY/out}
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  # GPU_CHECK_WORK keeps the work folder (and the CMake build in it) for a rerun; default: a fresh one, removed.
  W=${GPU_CHECK_WORK:-$(mktemp -d)}
  mkdir -p "$W"
  for f in bun.xz node_modules.tar.xz llama-src.tar.xz; do
    [ -s "$CARRY/$f" ] || { echo "gpu-check: $CARRY/$f missing: run scripts/gpu-check.sh pack first" >&2; exit 2; }
  done

  # 1. Unpack: Bun, the runtime node_modules (unless a full install is already here), the source.
  mkdir -p "$W/bin" "$W/models" "$W/llama.cpp"
  xz -dc "$CARRY/bun.xz" >"$W/bin/bun" && chmod +x "$W/bin/bun"
  BUN=$W/bin/bun
  [ -d node_modules/zod ] || xz -dc "$CARRY/node_modules.tar.xz" | tar -xf -
  xz -dc "$CARRY/llama-src.tar.xz" | tar -C "$W/llama.cpp" -xf -

  # 2. The machine: GPUs, driver, toolkit, the Python wheels' libraries.
  local nvcc cuda_home="" site
  nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  [ -n "$nvcc" ] && cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  site=$(python3 -c 'import sys; print(sys.prefix)' 2>/dev/null || true)
  export CUDA_HOME=${CUDA_HOME:-$cuda_home}
  # gpu-nccl-abort.ts and the cudart/cublas lookup read the default Python's wheels through VIRTUAL_ENV.
  [ -n "$site" ] && export VIRTUAL_ENV=${VIRTUAL_ENV:-$site}
  {
    echo "{"
    echo "\"mode\": \"$MODE\","
    echo "\"nvcc\": $("$BUN" -e 'console.log(JSON.stringify(process.argv[1]))' "$( [ -n "$nvcc" ] && "$nvcc" --version | tail -n 2 | tr '\n' ' ')"),"
    echo "\"nvidiaSmi\": $("$BUN" -e 'console.log(JSON.stringify(process.argv[1]))' "$(nvidia-smi --query-gpu=name,uuid,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 || true)"),"
    echo "\"python\": \"$site\","
    echo "\"cmake\": \"$(cmake --version | head -n 1)\","
    echo "\"cores\": $(nproc)"
    echo "}"
  } >"$OUT/environment.json"

  local ok=0
  # 3. Build: libllama + ggml (+ CUDA for sm_90) + llama-bench, from the same source.
  local build_args=(--src "$W/llama.cpp" --out "$W/native" --bench)
  if [ "$MODE" = cuda ]; then build_args+=(--arch 90); else build_args+=(--cpu); fi
  step build "${GPU_CHECK_BUILD_TIMEOUT_S:-420}" env CORTEX_KEEP_NATIVE_BUILD=${GPU_CHECK_WORK:+1} "$BUN" scripts/build-native.ts "${build_args[@]}" || ok=1
  step model 120 "$BUN" scripts/make-model.ts --out "$W/models/rand-100m.gguf" --size 100M || ok=1

  # 4. cortex neuron on the built set, JSON logs; a GPU node that would compute on the CPU refuses to start.
  if [ "$ok" -eq 0 ]; then
    printf '[log]\nlevel = "info"\nformat = "json"\n[neuron]\nlisten = "127.0.0.1:0"\nmodels_dir = "%s"\n' \
      "$W/models" >"$W/cortex.toml"
    CORTEX_NATIVE_DIR=$W/native "$BUN" src/cli/main.ts neuron --config "$W/cortex.toml" >"$OUT/neuron.log" 2>&1 &
    local neuron=$! url=""
    for _ in $(seq 1 240); do
      url=$(grep -so 'listening on [0-9.]*:[0-9]*' "$OUT/neuron.log" | head -n 1 | sed 's/listening on /http:\/\//' || true)
      [ -n "$url" ] && break
      kill -0 "$neuron" 2>/dev/null || break
      sleep 0.5
    done
    if [ -n "$url" ]; then
      step chat 240 "$BUN" scripts/gpu-check-client.ts --url "$url" --file rand-100m.gguf --out "$OUT/chat.json" || ok=1
    else
      STEPS+=("{\"step\":\"neuron\",\"ok\":false,\"log\":\"neuron.log\"}")
      echo "gpu-check: the neuron did not start; last lines:" && tail -n 20 "$OUT/neuron.log"
      ok=1
    fi
    kill -TERM "$neuron" 2>/dev/null || true
    wait "$neuron" || true
    # 5. llama-bench on the same model and build: prompt 512, generation 128, 3 repetitions, with the
    # neuron's thread count (GPU: 2 per device Worker; CPU: all cores but one).
    local bench_args="-ngl 99 -t 2"
    [ "$MODE" = cuda ] || bench_args="-t $(($(nproc) > 1 ? $(nproc) - 1 : 1))"
    step llama-bench 120 sh -c "'$W/native/llama-bench' -m '$W/models/rand-100m.gguf' -p 512 -n 128 -r 3 \
      $bench_args -o json >'$OUT/llama-bench.json'" || ok=1
  fi

  # 6. The NCCL abort path on the real driver and library (host mode without a GPU).
  if [ "$MODE" = cuda ]; then
    step gpu-nccl-abort 120 env OUT="$OUT" "$BUN" scripts/gpu-nccl-abort.ts --out "$OUT" --timeout-s 60 || ok=1
  fi
  write_summary
  [ -n "${GPU_CHECK_WORK:-}" ] || rm -rf "$W"
  return "$ok"
}

case "${1:-}" in
pack) pack ;;
run)
  shift
  run "$@"
  ;;
*)
  sed -n '2,20p' "$0"
  exit 2
  ;;
esac
