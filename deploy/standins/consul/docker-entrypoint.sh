#!/bin/sh
# The official Consul image's entrypoint contract: `agent ARGS` runs the
# agent with the image's data and config folders; a flag runs consul with
# it; anything else runs as given.
set -e
case "$1" in
agent) shift; exec consul agent -data-dir=/consul/data -config-dir=/consul/config "$@" ;;
-*) exec consul "$@" ;;
esac
if consul --help "$1" 2>&1 | grep -q "consul $1"; then
	exec consul "$@"
fi
exec "$@"
