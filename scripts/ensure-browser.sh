#!/usr/bin/env bash
# The browser test needs Debian's chromium and a CJK font (without one, Chinese renders as boxes).
# Never `playwright install`: it downloads a browser, which this network refuses.
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi 'wenquanyi\|wqy'; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "The browser test needs: apt-get install chromium fonts-wqy-zenhei (run as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei fontconfig >/dev/null
