#!/bin/sh
# Same calling convention as the official registry:2 and registry:3 images: a config file
# argument means "registry serve FILE", a registry subcommand or option is
# passed to the registry, anything else is run as a command.
set -e
case "$1" in
  *.yml | *.yaml) set -- registry serve "$@" ;;
  serve | garbage-collect | help | -*) set -- registry "$@" ;;
esac
exec "$@"
