#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed for the UI browser test.
# Idempotent: does nothing when the binary is already there. Set CHROMIUM to use another one.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  # Not Debian (a Mac, say): the browser test skips itself there unless CHROMIUM is set.
  echo "ensure-chromium: $CHROMIUM is missing and apt-get is unavailable;" \
    "set CHROMIUM=/path/to/chromium (or Chrome) to run the browser test" >&2
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure-chromium: not root and no sudo; run: apt-get install -y chromium" >&2
    exit 1
  fi
  SUDO="sudo"
fi

echo "ensure-chromium: installing Debian's chromium (once)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$CHROMIUM" --version
