#!/usr/bin/env bash
# Downloads (here, where PyPI is reachable) the wheels of jgen's dependencies that the lent GPU
# machines' image lacks, into .whl/ (git-ignored through .git/info/exclude), at the versions of
# constraints.txt, for that image's Python 3.12 on x86-64. benchmarks/device_run.sh installs
# them there. See benchmarks/README.md, "Accelerators".
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
packages=(ml-collections distrax tfp-nightly dm-tree gast decorator flowjax paramax ott-jax jaxopt)
pins=()
for name in "${packages[@]}"; do
  pins+=("$(grep -i "^${name}==" constraints.txt)")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${pins[@]}"
du -sh .whl
