#!/usr/bin/env bash
# Runs Rempart's whole test suite on a fresh machine.
# As root it installs the Debian packages the tests need (scripts/system-packages.txt);
# otherwise it names what to install and runs what it can.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/system-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    echo "(tests that need them are skipped, or fail when REMPART_REQUIRE_* is set)" >&2
  fi
fi
python3 -m pip install -q -e '.[test]'
python3 -m ruff check src tests benchmarks
python3 -m mypy  # configured in pyproject.toml: strict on engine/, state/, model.py, config.py
python3 -m pytest -q -p no:cacheprovider "$@"
