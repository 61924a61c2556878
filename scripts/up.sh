#!/usr/bin/env bash
# The main job. Today: an example site, linted and rendered (the lab issue makes it a real deployment).
set -euo pipefail
KB=.venv/bin/keybuzz
SITE=${KEYBUZZ_SITE:-build/example-site}
if [ ! -d "$SITE" ]; then $KB init "$SITE" --example seed; fi
$KB lint --site "$SITE" || [ $? -eq 1 ]
$KB render --site "$SITE" --out build/render
echo "Example site: $SITE   rendered files: build/render"
