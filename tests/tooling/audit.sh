#!/usr/bin/env bash
# Dependency audit: every project's packages, transitive ones included, against NuGet's vulnerability data.
# Fails on any High or Critical advisory (Low/Moderate are printed). WASTE_AUDIT=skip turns it off (offline machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${WASTE_AUDIT:-}" = skip ]; then echo "[audit] skipped (WASTE_AUDIT=skip)" >&2; exit 0; fi
out="$(dotnet list WasteClassifier.sln package --vulnerable --include-transitive 2>&1)" || { echo "$out" >&2; echo "[audit] dotnet list package --vulnerable failed" >&2; exit 1; }
echo "$out" | grep -E '^\s*>|has the following vulnerable' >&2 || true
if echo "$out" | grep -E '^\s*>' | grep -qE '\b(High|Critical)\b'; then
  echo "[audit] High or Critical vulnerabilities above: update those packages (Directory.Packages.props)" >&2
  exit 1
fi
echo "[audit] no High or Critical vulnerabilities" >&2
