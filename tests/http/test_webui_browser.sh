#!/usr/bin/env bash
# test_webui_browser.sh — the web page in a real browser: Debian's chromium,
# headless, driven by puppeteer-core (tests/http/setup_puppeteer.sh installs
# it from the npm registry into a cache folder) through
# tests/http/webui_browser.js, against `sdserve serve` with the demo model.
# Without keys: / lands on /ui/, no console errors, no request to another
# origin, a 64x64 txt2img through the form whose progress bar shows an
# intermediate value and the live preview <img> appears (then goes), the
# gallery's <img> is the job's 64x64 image with its
# seed, "copy as curl" makes the same image, img2img by upload, cancel, an
# API error shown with its field; the model picker (GET / and GET /models
# intercepted: the endpoint may not be on this server) sends `model`;
# screenshot in $SD_BUILD/tests/artifacts/.
# With a key: the 401 message, then the key entered works and survives a
# reload.  Without keys also: "copy as curl" for an upload named with ; ,
# " and ' runs as pasted; one job at a time (a double submit sends one;
# Cancel while it is sent), a reload mid-job follows the job on, a seed
# over 2^53 - 1 refused by the form, no sideways scroll at 320 px.  With --rate-limit 60: a job
# followed past its 429s still shows its image.
# With --lora-dir (tiny-sd1): the LoRA picker adds a <lora:...> tag
# that the image's parameters show applied.  Missing chromium or npm is a FAIL (scripts/setup.sh installs them).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

CHROMIUM=${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}
if [ ! -x "$CHROMIUM" ]; then fail "browser test" "chromium not found (scripts/setup.sh installs it)"; exit 0; fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail "browser test" "node and npm not found (scripts/setup.sh installs them)"; exit 0
fi
if ! PUPPETEER=$(bash tests/http/setup_puppeteer.sh); then fail "browser test" "puppeteer-core could not be installed"; exit 0; fi
ART=$BUILD/tests/artifacts
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
MODEL=$(demo_model)
export PUPPETEER CHROMIUM

# --preview-every 1: the page's live preview shows during the job
start_server --model "$MODEL" --preview-every 1 || exit 1
(cd "$TMP" && node "$OLDPWD/tests/http/webui_browser.js" open "$BASE" "$ART")
stop_server
check "server exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

KEY=webui-browser-key-0123456789
SDSERVE_API_KEYS=$KEY start_server --model "$MODEL" || exit 1
(cd "$TMP" && node "$OLDPWD/tests/http/webui_browser.js" key "$BASE" "$ART" "$KEY")
stop_server
check "server with keys exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
# the page under a rate limit: 429s while following a job are waited out
start_server --model "$MODEL" --preview-every 1 --rate-limit 60 || exit 1
(cd "$TMP" && node "$OLDPWD/tests/http/webui_browser.js" rate "$BASE" "$ART")
stop_server
check "server with a rate limit exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
# the LoRA picker, on tiny-sd1 with the reference LoRAs (as test_loras.sh)
REF=${SD_REF:-../shared/reference}
start_server --model "$REF/models/tiny-sd1" --lora-dir "$REF/goldens/lora-tiny-sd1/lora" || exit 1
(cd "$TMP" && node "$OLDPWD/tests/http/webui_browser.js" lora "$BASE" "$ART")
stop_server
check "server with LoRAs exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
echo "# screenshots: $ART/webui.png $ART/webui-key.png"
