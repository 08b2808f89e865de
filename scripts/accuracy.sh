#!/usr/bin/env bash
# scripts/accuracy.sh — writes docs/ACCURACY.md: runs the parity tests, takes
# every "metric <stage/case> <name> <value> tol <tol>" line they print, and
# tabulates them per stage and sampler, then appends the hand-written notes
# (docs/accuracy-notes.md).  Usage: scripts/accuracy.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export SD_REF=${SD_REF:-$PWD/../shared/reference}
make -s -j2 BUILD="$BUILD" tests >/dev/null
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for t in unit/test_philox parity/test_schedules parity/test_samplers unit/test_tokenizer \
         parity/test_clip parity/test_unet parity/test_sdxl_unet parity/test_vae parity/test_sdxl_vae \
         parity/test_pipeline parity/test_sdxl_pipe parity/test_precision \
         parity/test_lora parity/test_vae_tiled \
         parity/test_sdxl_text; do
  "$BUILD/tests/$t" 2>/dev/null | grep '^metric ' >>"$tmp" || true
done
out=docs/ACCURACY.md
{
  echo "# Accuracy"
  echo
  echo "Written by \`scripts/accuracy.sh\` on $(date -u +%Y-%m-%d) from the metric lines the parity tests print"
  echo "(reference: diffusers v0.25.1 / transformers 4.30 / PyTorch 1.13.1, fp32 CPU, in \`../shared/reference\`)."
  echo "Errors are max |ours − reference| unless the name says otherwise (\`_rel\`: divided by max |reference|;"
  echo "\`image_maxabs_01\`: decoded image in [0,1] units; \`png_max_level_diff\`: 8-bit levels). Every row is also"
  echo "asserted by its test, so \`make test\` fails if one goes over its tolerance."
  echo
  echo "## Summary: worst case per stage"
  echo
  echo "| stage | metrics | worst metric | value | tolerance |"
  echo "|---|---|---|---|---|"
  awk '
    function num(s) { if (s ~ /\//) { split(s, a, "/"); return a[2] > 0 ? 1 - a[1] / a[2] : 0 } return s + 0 }
    { split($2, p, "/"); st = p[1]; n[st]++
      r = ($3 ~ /matched/) ? num($4) : ($3 ~ /psnr/) ? (num($4) > 0 ? num($6) / num($4) : 9) : (num($6) > 0 ? num($4) / num($6) : 0)
      if (!(st in w) || r > w[st]) { w[st] = r; wm[st] = $2 " " $3; wv[st] = $4; wt[st] = $6 }
      if (!(st in ord)) ord[st] = ++k }
    END { for (s in ord) o[ord[s]] = s
          for (i = 1; i <= k; i++) { s = o[i]; printf "| %s | %d | `%s` | %s | %s |\n", s, n[s], wm[s], wv[s], wt[s] } }' "$tmp"
  echo
  echo "## Whole pipeline per sampler (prompt to pixels, replaying the reference noise)"
  echo
  echo "Final latent max error (tolerance 1e-4 × max|latent|) and decoded image max error in [0,1] units"
  echo "(tolerance 1/255 ≈ 0.00392), for each model and layout."
  echo
  echo "| run | model | layout | final latent | tol | image | tol | PNG levels |"
  echo "|---|---|---|---|---|---|---|---|"
  awk '$2 ~ /^pipeline\// { split($2, p, "/"); key = p[4] "|" p[2] "|" p[3]
         if (!(key in seen)) { seen[key] = ++k; keys[k] = key }
         if ($3 == "final_latent_maxabs") { fl[key] = $4; ft[key] = $6 }
         if ($3 == "image_maxabs_01") { im[key] = $4; it[key] = $6 }
         if ($3 == "png_max_level_diff") pl[key] = $4 }
       END { for (i = 1; i <= k; i++) { key = keys[i]; split(key, q, "|")
               printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", q[1], q[2], q[3], fl[key], ft[key], im[key], it[key], pl[key] } }' "$tmp" | sort
  echo
  echo "## The bf16 precisions, whole pipeline (tests/parity/test_precision.c)"
  echo
  echo "The same runs at \`bf16x2\`, at \`bf16x2\` with the VAE at \`bf16\` (\`bf16x2-vae-bf16\`: the default on CPUs"
  echo "with AMX before the per-layer rule), at \`bf16\`, and with the per-layer rule (\`bf16x2-rule-vae-bf16\`: the"
  echo "default on CPUs with AMX; \`fp32-rule\`: docs \"Precision per layer\"), RGB8 output against diffusers' fp32 image.png: largest difference in 8-bit"
  echo "levels, mean difference, PSNR (tiny-sd1 from its folder, tiny-sd2 from its fp16 single file; tiny-sdxl-s at bf16x2 from its folder, with the VAE at bf16 from its single file)."
  echo "Notes: \"Precision\" below."
  echo
  echo "| run | model | precision | max levels | tol | mean levels | PSNR dB | tol |"
  echo "|---|---|---|---|---|---|---|---|"
  awk '$2 ~ /^precision\// { split($2, p, "/"); key = p[4] "|" p[3] "|" p[2]
         if (!(key in seen)) { seen[key] = ++k; keys[k] = key }
         if ($3 == "png_max_level_diff") { ml[key] = $4; mt[key] = $6 }
         if ($3 == "png_mean_level_diff") mn[key] = $4
         if ($3 == "psnr_db") { ps[key] = $4; pt[key] = $6 } }
       END { for (i = 1; i <= k; i++) { key = keys[i]; split(key, q, "|")
               printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", q[1], q[2], q[3], ml[key], mt[key], mn[key], ps[key], pt[key] } }' "$tmp" | sort
  echo
  echo "## Every metric"
  echo
  current=""
  while read -r _ key name value _ tol; do
    stage=${key%%/*}
    if [ "$stage" != "$current" ]; then
      current=$stage
      printf '\n### %s\n\n| case | metric | value | tolerance |\n|---|---|---|---|\n' "$stage"
    fi
    printf '| %s | %s | %s | %s |\n' "${key#*/}" "$name" "$value" "$tol"
  done <"$tmp"
  echo
  echo "# Notes"
  echo
  sed '1{/^# /d}' docs/accuracy-notes.md
} >"$out"
echo "wrote $out ($(wc -l <"$tmp") metrics)"
