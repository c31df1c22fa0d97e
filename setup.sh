#!/usr/bin/env bash
# Install what iomt-testbed needs on Debian or Raspberry Pi OS: Mosquitto (and, with
# --test, the servers the tests use) from Debian packages where we may, and a virtual
# environment in .venv with the Python dependencies.  Safe to run again: it skips
# what is already in place.
set -euo pipefail
cd "$(dirname "$0")"

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

packages=(mosquitto)
[ "$want_test" = 1 ] && packages+=(victoria-metrics tshark tcpreplay iproute2 chromium)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo_cmd=(sudo -n); else sudo_cmd=(); fi
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ ${#sudo_cmd[@]} -gt 0 ]; }; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || echo "setup: warning: could not install ${missing[*]}; features that need them fall back or are skipped"
  else
    echo "setup: cannot install ${missing[*]} (not root, no sudo); without mosquitto runs use the embedded broker"
  fi
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/pip ]; then
  echo "setup: creating .venv"  # again if an interrupted creation left it without pip
  "$py" -m venv --clear .venv
fi
stamp=.venv/.iomt-installed
sig=$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig$want_test" ]; then
  echo "setup: installing Python packages (first time takes a few minutes)"
  # torch first and pinned: a bare range could pull a multi-GB CUDA build
  .venv/bin/pip install -q "torch==2.13.0"
  extra=""
  [ "$want_test" = 1 ] && extra="[test]"
  .venv/bin/pip install -q -e ".${extra}"
  echo "$sig$want_test" > "$stamp"
fi
