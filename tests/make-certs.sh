#!/usr/bin/env bash
# make-certs.sh [--variants] DIR - a throwaway PKI for lvrpc's TLS tests.
#
# Writes libvirt's "pkipath" layout, usable as pkipath=DIR by lvrpc and by
# libvirt.so's client, and by libvirtd (key_file / cert_file / ca_file):
#   DIR/cacert.pem  DIR/cakey.pem               the test CA
#   DIR/servercert.pem  DIR/private/serverkey.pem
#       CN=localhost, SAN $SERVER_SAN (default DNS:localhost, IP:127.0.0.1, IP:::1)
#   DIR/clientcert.pem  DIR/clientkey.pem  (and DIR/private/clientkey.pem)
#
# With --variants, also one faulty item per directory, for the negative tests:
#   DIR/expired/        servercert.pem + private/serverkey.pem, signed by the
#                       CA, SAN as above, valid from 30 days ago to yesterday
#   DIR/wronghost/      servercert.pem + private/serverkey.pem, signed by the
#                       CA, CN and SAN DNS:wrong-host.invalid only
#   DIR/otherca/        another CA (cacert.pem, cakey.pem) and a client
#                       certificate it signed (clientcert.pem, clientkey.pem)
#   DIR/client-wrongca/ a client pkipath whose cacert.pem is the other CA's
#                       (the daemon's certificate does not chain to it)
#   DIR/client-nocert/  a client pkipath with cacert.pem only
#   DIR/client-otherca/ a client pkipath with our cacert.pem and the client
#                       certificate of the other CA
#
# The certificates carry what libvirt's (GnuTLS) sanity checks want: CA
# basicConstraints CA:TRUE + keyCertSign; leaves CA:FALSE, digitalSignature +
# keyEncipherment, extendedKeyUsage serverAuth / clientAuth.
#
# Env: KEY_TYPE=ec|rsa (default ec: P-256 keys take milliseconds to make,
# RSA-2048 about 0.2 s each), SERVER_SAN, DAYS (validity, default 3650).
# Idempotent: a DIR that already holds cacert.pem keeps its base set.
# Exit status: 0 done, 99 openssl missing, 1 other failure.
set -euo pipefail

variants=0
if [ "${1:-}" = "--variants" ]; then variants=1; shift; fi
DIR=${1:?usage: make-certs.sh [--variants] DIR}
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found" >&2; exit 99; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

KEY_TYPE=${KEY_TYPE:-ec}
SERVER_SAN=${SERVER_SAN:-DNS:localhost, IP:127.0.0.1, IP:::1}
DAYS=${DAYS:-3650}
umask 077

newkey() { # file
  case $KEY_TYPE in
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
    *) echo "make-certs.sh: KEY_TYPE must be ec or rsa" >&2; exit 1 ;;
  esac
}

# Extension sections; $1 = subjectAltName of the server.
ext_conf() {
  cat <<EOF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

make_ca() { # dir cn
  newkey "$1/cakey.pem"
  openssl req -x509 -new -key "$1/cakey.pem" -sha256 -days "$DAYS" -subj "/O=lvrpc-test/CN=$2" \
    -extensions ca -config <(ext_conf "DNS:unused") -out "$1/cacert.pem" 2>/dev/null
}

# sign cadir kind(server|client) cn san keyfile out [startdate enddate]
sign() {
  local cadir=$1 kind=$2 cn=$3 san=$4 key=$5 out=$6 csr
  csr=$(mktemp "$DIR/.csr.XXXXXX")
  openssl req -new -key "$key" -sha256 -subj "/O=lvrpc-test/CN=$cn" -out "$csr" 2>/dev/null
  if [ $# -ge 8 ]; then
    # openssl x509 -req cannot set past dates in OpenSSL 3.0; openssl ca can.
    local db
    db=$(mktemp -d "$DIR/.ca.XXXXXX")
    touch "$db/index"
    echo 1000 > "$db/serial"
    { ext_conf "$san"
      printf '[cadef]\ndatabase = %s/index\nnew_certs_dir = %s\nserial = %s/serial\n' "$db" "$db" "$db"
      printf 'default_md = sha256\npolicy = pol\nunique_subject = no\n[pol]\ncommonName = supplied\n'
      printf 'organizationName = optional\n'
    } > "$db/ca.cnf"
    openssl ca -batch -notext -config "$db/ca.cnf" -name cadef -cert "$cadir/cacert.pem" \
      -keyfile "$cadir/cakey.pem" -extfile <(ext_conf "$san") -extensions "$kind" \
      -startdate "$7" -enddate "$8" -in "$csr" -out "$out" 2>/dev/null
    rm -rf "$db"
  else
    openssl x509 -req -in "$csr" -CA "$cadir/cacert.pem" -CAkey "$cadir/cakey.pem" \
      -set_serial "0x$(openssl rand -hex 8)" -days "$DAYS" -sha256 \
      -extfile <(ext_conf "$san") -extensions "$kind" -out "$out" 2>/dev/null
  fi
  rm -f "$csr"
}

if [ ! -s "$DIR/cacert.pem" ]; then
  mkdir -p "$DIR/private"
  make_ca "$DIR" "lvrpc-test CA"
  newkey "$DIR/private/serverkey.pem"
  sign "$DIR" server localhost "$SERVER_SAN" "$DIR/private/serverkey.pem" "$DIR/servercert.pem"
  newkey "$DIR/clientkey.pem"
  sign "$DIR" client lvrpc-test-client "DNS:unused" "$DIR/clientkey.pem" "$DIR/clientcert.pem"
  cp "$DIR/clientkey.pem" "$DIR/private/clientkey.pem"
fi

if [ $variants = 1 ] && [ ! -s "$DIR/client-otherca/clientcert.pem" ]; then
  mkdir -p "$DIR/expired/private" "$DIR/wronghost/private" "$DIR/otherca" \
    "$DIR/client-wrongca" "$DIR/client-nocert" "$DIR/client-otherca"
  # The server variants reuse the server's key: only the certificate differs.
  cp "$DIR/private/serverkey.pem" "$DIR/expired/private/serverkey.pem"
  sign "$DIR" server localhost "$SERVER_SAN" "$DIR/expired/private/serverkey.pem" \
    "$DIR/expired/servercert.pem" \
    "$(date -u -d '-30 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"
  cp "$DIR/private/serverkey.pem" "$DIR/wronghost/private/serverkey.pem"
  sign "$DIR" server wrong-host.invalid "DNS:wrong-host.invalid" \
    "$DIR/wronghost/private/serverkey.pem" "$DIR/wronghost/servercert.pem"

  make_ca "$DIR/otherca" "lvrpc-test other CA"
  newkey "$DIR/otherca/clientkey.pem"
  sign "$DIR/otherca" client lvrpc-test-client "DNS:unused" "$DIR/otherca/clientkey.pem" \
    "$DIR/otherca/clientcert.pem"

  cp "$DIR/otherca/cacert.pem" "$DIR/client-wrongca/cacert.pem"
  cp "$DIR/clientcert.pem" "$DIR/clientkey.pem" "$DIR/client-wrongca/"
  cp "$DIR/cacert.pem" "$DIR/client-nocert/cacert.pem"
  cp "$DIR/cacert.pem" "$DIR/client-otherca/cacert.pem"
  cp "$DIR/otherca/clientkey.pem" "$DIR/client-otherca/clientkey.pem"
  cp "$DIR/otherca/clientcert.pem" "$DIR/client-otherca/clientcert.pem"
fi
# Certificates are public; keys stay 0600.
chmod 644 "$DIR"/cacert.pem "$DIR"/*cert.pem 2>/dev/null || true
chmod 755 "$DIR" "$DIR"/*/ 2>/dev/null || true
exit 0
