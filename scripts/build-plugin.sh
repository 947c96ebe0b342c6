#!/usr/bin/env bash
# Configures and builds the Sideman plugin (VST3, LV2, Standalone; AU too on macOS) in Release
# into build/plugin, reusing that folder on later runs, and prints where the bundles are.
# Needs cmake, g++ and JUCE 7.0.5 (Debian: juce-modules-source and its -dev dependencies).
#   SIDEMAN_BUILD_JOBS  parallel compile jobs (default 2: build machines are shared)
#   BUILD_DIR           build folder (default build/plugin)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build/plugin}"
JOBS="${SIDEMAN_BUILD_JOBS:-2}"

if ! command -v cmake >/dev/null; then
  echo "build-plugin: cmake is not installed (apt-get install cmake g++ juce-modules-source)" >&2
  exit 1
fi

export CCACHE_BASEDIR="$PWD"  # paths inside the clone are hashed relatively: clones share the cache
start=$(date +%s)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  launcher=()
  # ccache, when installed, makes a rebuild in a fresh clone (CI) nearly free.
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
  cmake -S shim/plugin -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
fi
cmake --build "$BUILD_DIR" --config Release --parallel "$JOBS"
echo "build-plugin: built in $(( $(date +%s) - start )) s"

artefacts="$BUILD_DIR/SidemanPlugin_artefacts/Release"
[ -d "$artefacts" ] || artefacts="$BUILD_DIR/SidemanPlugin_artefacts"
for path in "$artefacts/VST3/Sideman.vst3" "$artefacts/LV2/Sideman.lv2" "$artefacts/Standalone/Sideman" \
            "$artefacts/AU/Sideman.component"; do
  if [ -e "$path" ]; then
    echo "  $(basename "$(dirname "$path")"): $(cd "$(dirname "$path")" && pwd)/$(basename "$path")"
  fi
done
