#!/usr/bin/env bash
# test_engine_headers.sh — the engine's header rule (docs/ARCHITECTURE.md):
# outside src/engine, code includes only engine/sd.h, except the tools that
# may use the engine's tools/tests headers (pipeline.h, models/*.h, ops/ops.h,
# loader/st_write.h): src/cli/bench.c and src/cli/make_model.c.  One line per
# src/ file outside the engine; a file that breaks the rule fails naming the
# header.
set -u
cd "$(dirname "$0")/../.."
TOOLS="src/cli/bench.c src/cli/make_model.c"
n=0; nbad=0
for f in $(find src -name '*.[ch]' ! -path 'src/engine/*' | sort); do
  bad=$(grep -oE '^#include "[^"]*engine/[^"]+"' "$f" | sed 's/^#include //' | grep -vE '"([.][.]/)?engine/sd[.]h"$' | tr '\n' ' ')
  case " $TOOLS " in
    *" $f "*) [ -n "$bad" ] && echo "# $f (a tool) includes $bad";;
    *) if [ -n "$bad" ]; then echo "FAIL - $f includes only engine/sd.h from the engine: also $bad"; nbad=$((nbad + 1)); else n=$((n + 1)); fi;;
  esac
done
[ "$nbad" -eq 0 ] && echo "ok - all $n files outside src/engine and its tools include only engine/sd.h from the engine"
[ "$n" -gt 0 ] || echo "FAIL - found files to check under src/ (run from the repository)"
