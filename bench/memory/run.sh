#!/usr/bin/env bash
# Peak memory of the worker's classification path without its host (bench/memory/Program.cs): builds Release, then loads
# models/default and runs batches of waste-v1 images two at a time, printing VmHWM, VmRSS, the managed heap and glibc's
# heap per phase. Arguments pass through: [batches per phase (60)] [model-only]. About 1 s per batch of 16 on 2 quiet cores.
#   bash bench/memory/run.sh 30
#   MEMORY_BENCH_CAMERA_BATCHES=8 bash bench/memory/run.sh 10     # plus 1920×1080 JPEGs
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build bench/memory/WasteClassifier.MemoryBench.csproj -c Release -v q -nologo >&2
# As the Dockerfiles deploy the worker (GLIBC_TUNABLES= measures without).
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}"
exec dotnet bench/memory/bin/Release/net10.0/WasteClassifier.MemoryBench.dll "$@"
