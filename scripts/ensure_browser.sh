#!/usr/bin/env bash
# Make sure a Chromium is available for the browser tests (tests/browser/), without downloading one by hand:
#   - already there (FREEINIT_CHROMIUM, or chromium / chromium-browser / google-chrome on PATH): print it, done;
#   - running as root with apt-get: install Debian's `chromium` package;
#   - otherwise: print how to install one and exit 0 (the browser tests then skip, saying the same).
# Never runs `playwright install`: Playwright drives this system Chromium through executable_path.
# Set FREEINIT_SKIP_BROWSER_INSTALL=1 to never install anything.
set -euo pipefail

find_chromium() {
    if [[ -n "${FREEINIT_CHROMIUM:-}" && -x "${FREEINIT_CHROMIUM}" ]]; then echo "$FREEINIT_CHROMIUM"; return 0; fi
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    return 1
}

if path=$(find_chromium); then
    echo "ensure_browser: using $path"
    exit 0
fi

how="install Debian's chromium (as root: apt-get install -y chromium), or set FREEINIT_CHROMIUM=/path/to/chromium"
if [[ "${FREEINIT_SKIP_BROWSER_INSTALL:-0}" != "0" ]]; then
    echo "ensure_browser: no Chromium and FREEINIT_SKIP_BROWSER_INSTALL is set; browser tests will skip. To run them: $how"
    exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_browser: installing Debian's chromium with apt-get (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; then
        if path=$(find_chromium); then
            echo "ensure_browser: using $path"
            exit 0
        fi
        echo "ensure_browser: apt-get installed chromium but it is not on PATH; browser tests will skip. To run them: $how" >&2
        exit 0
    fi
    echo "ensure_browser: apt-get install chromium failed; browser tests will skip. To run them: $how" >&2
    exit 0
fi
echo "ensure_browser: no Chromium found and not root with apt-get; browser tests will skip. To run them: $how"
exit 0
