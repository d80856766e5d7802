#!/bin/sh
# Start Pebble with a fresh listener CA. Environment:
#   PEBBLE_NAMES  DNS names of Pebble's HTTPS listeners (default: pebble localhost)
#   PEBBLE_HTTP_PORT / PEBBLE_TLS_PORT  ports Pebble validates HTTP-01 / TLS-ALPN-01 on (80 / 443)
# /etc/pebble/listener-ca.pem is the CA clients trust to talk to Pebble's API;
# the CA that signs issued certificates is Pebble's own (https://pebble:15000/roots/0).
# External account binding is optional; a client that sends one must sign it
# with the test key of kid selfhosted-test-eab (base64url, a public test value).
set -eu
dir=/etc/pebble
mkdir -p "$dir"
umask 077

names=${PEBBLE_NAMES:-pebble localhost}
san=IP:127.0.0.1
for name in $names; do san="$san,DNS:$name"; done

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/listener-ca.key" -out "$dir/listener-ca.pem" -days 7 \
  -subj "/CN=Pebble listener CA (throwaway, $(hostname))" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$dir/listener.ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/listener.key" -subj "/CN=${names%% *}" 2>/dev/null |
  openssl x509 -req -CA "$dir/listener-ca.pem" -CAkey "$dir/listener-ca.key" -days 7 \
    -extfile "$dir/listener.ext" -out "$dir/listener.pem" 2>/dev/null
chmod 0644 "$dir/listener-ca.pem" "$dir/listener.pem"

cat >"$dir/config.json" <<CONFIG
{
  "pebble": {
    "listenAddress": "0.0.0.0:14000",
    "managementListenAddress": "0.0.0.0:15000",
    "certificate": "$dir/listener.pem",
    "privateKey": "$dir/listener.key",
    "httpPort": ${PEBBLE_HTTP_PORT:-80},
    "tlsPort": ${PEBBLE_TLS_PORT:-443},
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "externalAccountMACKeys": {"selfhosted-test-eab": "c2VsZmhvc3RlZC1yZWdpc3RyeS10ZXN0LWVhYi1rZXk"}
  }
}
CONFIG

exec pebble -config "$dir/config.json" "$@"
