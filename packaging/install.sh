#!/bin/sh
# Install companion for this user with pipx, and start it. Works where the system Python is "externally managed"
# (PEP 668: Debian 12, Ubuntu 23.04+, Fedora 38+, Homebrew), where `pip install --user` is refused: pipx is taken
# from the PATH (the distribution's own package, e.g. `apt install pipx`), else installed with `pip --user` where
# that is allowed, else into a virtual environment of its own (~/.local/share/companion-pipx), which touches
# nothing of the system's. Run from the source folder: sh packaging/install.sh
set -eu
cd "$(dirname "$0")/.."
bin="$HOME/.local/bin"
if command -v pipx >/dev/null 2>&1; then
    pipx=$(command -v pipx)
elif python3 -m pip install --user --quiet pipx >/dev/null 2>&1; then
    pipx="python3 -m pipx"
else
    echo "This Python is managed by the system (PEP 668): installing pipx into its own environment." >&2
    boot="$HOME/.local/share/companion-pipx"
    python3 -m venv "$boot"
    "$boot/bin/python" -m pip install --quiet pipx
    mkdir -p "$bin"
    ln -sf "$boot/bin/pipx" "$bin/pipx"
    pipx="$bin/pipx"
fi
$pipx ensurepath >/dev/null
$pipx install --force --preinstall "torch==2.13.0" .
[ "${1:-}" = "--no-start" ] || exec "$bin/companion"
