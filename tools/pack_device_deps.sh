#!/usr/bin/env bash
# The GPU machine lent for tools/device_check.sh has nvcc, CMake and PyTorch
# but cannot install anything. Our build dependencies that it lacks are
# header-only (Eigen, nlohmann/json, doctest), so this copies them, with
# their CMake package files, from this machine's /usr into .devdeps/ (git
# ignores it), mirroring /usr's layout so the package files' relative paths
# still resolve. Pass `.devdeps` in the device tool's `carry`;
# tools/device_check.sh points CMake at it when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/apt_install.sh libeigen3-dev nlohmann-json3-dev doctest-dev
rm -rf .devdeps
for d in include/eigen3 include/nlohmann include/doctest share/eigen3/cmake share/cmake/nlohmann_json lib/cmake/doctest; do
  mkdir -p ".devdeps/$(dirname "$d")"
  cp -r "/usr/$d" ".devdeps/$d"
done
du -sh .devdeps
