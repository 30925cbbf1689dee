#!/bin/sh
# consul-init (docker-compose.yml): makes the Consul ACL policies and tokens
# of the compose platform, once; safe to run again. The policies come from
# bin/mercato-local -compose-secrets (localinfra.ConsulPolicy, one per
# program, and ConsulReadPolicy for Prometheus); each token's secret is its
# compose secret, so the services already hold theirs.
set -eu

for f in /consul-init/policies/*.hcl; do
	name=$(basename "$f" .hcl)
	if consul acl policy read -name "$name" >/dev/null 2>&1; then
		consul acl policy update -name "$name" -rules "@$f" >/dev/null
	else
		consul acl policy create -name "$name" -rules "@$f" >/dev/null
	fi
done

token() { # name policy
	secret=$(tr -d '\r\n' <"/run/secrets/consul-$1-token")
	# Its own secret, not the management token of CONSUL_HTTP_TOKEN_FILE.
	if env -u CONSUL_HTTP_TOKEN_FILE CONSUL_HTTP_TOKEN="$secret" consul acl token read -self >/dev/null 2>&1; then
		return
	fi
	consul acl token create -secret "$secret" -policy-name "$2" -description "mercato $1" >/dev/null
	echo "consul-init: token of $1 ($2)"
}

for s in gateway user product order payment notification; do
	token "$s" "service-$s"
done
token prometheus catalogue-read
echo "consul-init: ACL policies and tokens ready"
