#!/bin/sh
# Start Patroni with every PostgreSQL bin dir of the image on PATH. keybuzz runs the same line
# as the container's entrypoint (so the lab image, which lacks this script, behaves alike).
# Secrets arrive as PATRONI_* variables from the 0600 --env-file, never as arguments.
set -e
for d in /usr/lib/postgresql/*/bin; do PATH="$d:$PATH"; done
export PATH
exec /opt/patroni/bin/patroni "${1:-/etc/patroni/patroni.yml}"
