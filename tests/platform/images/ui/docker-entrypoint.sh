#!/bin/sh
# What the official nginx image's entrypoint does for this image: before
# nginx starts, run the executable scripts of /docker-entrypoint.d in order
# (the UI's script fills index.html and default.conf from the environment).
set -e
if [ "$1" = nginx ]; then
  for script in /docker-entrypoint.d/*.sh; do
    [ -x "$script" ] || continue
    echo "$0: running $script"
    "$script"
  done
fi
exec "$@"
