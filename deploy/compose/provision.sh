#!/bin/sh
# provision.sh TENANT KEYS_DIR: the tenant TENANT and an admin API key for it, made with the
# `commerce` command (docker-compose.yml's one-shot `provision`). Safe to run again: an
# existing tenant is kept, and a key is made only if KEYS_DIR has none for the tenant yet.
# The key is written to KEYS_DIR/TENANT-admin.key (mode 0600), never to the logs.
set -eu
tenant="${1:?usage: provision.sh TENANT KEYS_DIR}"
keys="${2:?usage: provision.sh TENANT KEYS_DIR}"
file="$keys/$tenant-admin.key"
umask 077

if commerce tenants list | cut -f1 | grep -qx -- "$tenant"; then
    echo "tenant $tenant is there already"
else
    commerce tenants create "$tenant"
fi

if [ -s "$file" ]; then
    echo "tenant $tenant has an admin key already: $file"
else
    commerce keys create --tenant "$tenant" --role admin > "$file.new"
    mv "$file.new" "$file"
    echo "made an admin key for tenant $tenant: $file"
fi
