#!/bin/sh
# Runs inside the `app` jail, in this folder, with the step's `vars` as environment.
set -eu
echo "writing greeting.txt: $GREETING"
printf '%s\n' "$GREETING" > greeting.txt
