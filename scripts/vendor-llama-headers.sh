#!/usr/bin/env bash
# Refresh ffi/include from the llama.cpp source bundled in node-llama-cpp's
# tarball, at the exact version of the @node-llama-cpp/linux-x64 binaries we
# depend on. Run by hand when bumping that version; the headers are committed
# so neither install nor run time needs the 35 MB bundle.
set -euo pipefail
version="$(node -p "require('./package.json').dependencies['@node-llama-cpp/linux-x64']")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "node-llama-cpp@${version}" >/dev/null 2>&1 && tar xzf "node-llama-cpp-${version}.tgz")
git -c advice.detachedHead=false clone -q "$work/package/llama/gitRelease.bundle" "$work/llama.cpp"
tag="$(node -p "require('$work/package/llama/llama.cpp.info.json').tag")"
mkdir -p ffi/include
cp "$work/llama.cpp/include/llama.h" ffi/include/
for h in ggml.h ggml-alloc.h ggml-backend.h ggml-cpu.h ggml-opt.h gguf.h; do
  cp "$work/llama.cpp/ggml/include/$h" ffi/include/
done
printf '{ "nodeLlamaCpp": "%s", "llamaCppTag": "%s" }\n' "$version" "$tag" > ffi/include/VERSION.json
echo "ffi/include refreshed from node-llama-cpp@${version} (llama.cpp ${tag})"
