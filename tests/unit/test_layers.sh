#!/usr/bin/env bash
# test_layers.sh — the layer rule of docs/ARCHITECTURE.md ("Layers"): every
# #include between src/ layers is one the rule allows, and the table in the
# document is the real include graph (scripts/layers.py --check).
set -u
cd "$(dirname "$0")/../.."
python3 scripts/layers.py --check || echo "FAIL - scripts/layers.py ran"
