#!/usr/bin/env bash
# A TLS configuration scan with testssl.sh against `tlsgate serve`, judged by
# the policy in docs/security.md: nothing below TLS 1.2, no CBC, RC4, 3DES,
# NULL, EXPORT or RSA key transport, forward secrecy on every suite, no
# compression, no insecure renegotiation, HSTS; every finding above INFO is
# a failure unless docs/security.md lists it as reviewed.
. "$(dirname "$0")/harness.sh"
command -v testssl >/dev/null || fail "testssl.sh is not installed (scripts/deps.sh --test installs it)"
cd "$T"
start_tlsgate s
scan() {
	rm -f scan.json
	testssl --quiet --warnings off --color 0 --add-ca "$T/s/ca/ca.crt" --jsonfile-pretty scan.json \
		--protocols --std --fs -E --server-defaults --headers --vulnerable "127.0.0.1:$PORT_s" >scan.txt 2>&1 \
		|| true
	[ -s scan.json ] || fail "testssl.sh produced no result: $(tail -5 scan.txt)"
}
findings() { jq -r '.scanResult[] | to_entries[] | select(.value|type=="array") | .value[] | "\(.id)\t\(.severity)\t\(.finding)"' scan.json; }
want() {   # ID PATTERN: the finding for ID matches PATTERN
	findings | awk -F'\t' -v id="$1" '$1 == id { print $3 }' | grep -qE -- "$2" \
		|| fail "$1: want /$2/, got: $(findings | awk -F'\t' -v id="$1" '$1 == id')"
}
# testssl.sh sometimes cannot run one check ("connect problem", a WARN about
# the scan, not the server): scan again, up to three times, before judging.
for attempt in 1 2 3; do
	scan
	findings | awk -F'\t' '$2 == "WARN" && $3 ~ /connect problem/' | grep -q . || break
	echo "scan $attempt: a check could not connect; scanning again"
done
want SSLv2 "not offered"
want SSLv3 "not offered"
want TLS1 "not offered"
want TLS1_1 "not offered"
want TLS1_2 "offered"
want TLS1_3 "offered"
for c in cipherlist_NULL cipherlist_aNULL cipherlist_EXPORT cipherlist_LOW cipherlist_3DES_IDEA cipherlist_AVERAGE; do
	want "$c" "not offered"
done
want ROBOT "no RSA key transport"
want CRIME_TLS "not vulnerable"
want secure_client_renego "not vulnerable"
want fallback_SCSV "no protocol below TLS 1.2"
want HSTS_time "31536000 seconds"
# forward secrecy and AEAD on every suite offered
findings | awk -F'\t' '$1 ~ /^cipher-tls1_[23]/ { print $3 }' >suites.txt
[ -s suites.txt ] || fail "no cipher suites listed by testssl"
grep -vE "ECDH|TLS_AES|TLS_CHACHA" suites.txt && fail "a suite without forward secrecy"
grep -vE "AESGCM|ChaCha20" suites.txt && fail "a non-AEAD suite is offered"
# anything above INFO must be a reviewed exception
reviewed=$(sed -n 's/^| `\([A-Za-z0-9_]*\)` | reviewed.*/\1/p' "$(dirname "$0")/../../docs/security.md")
bad=$(findings | awk -F'\t' '$2 != "OK" && $2 != "INFO" && !($2 == "WARN" && $3 ~ /connect problem/) { print $1 "\t" $2 "\t" $3 }' | while IFS=$'\t' read -r id sev what; do
	grep -qx "$id" <<<"$reviewed" || echo "$id ($sev): $what"
done)
[ -z "$bad" ] || fail "findings not allowed by docs/security.md: $bad"
findings | awk -F'\t' '$2 == "WARN" && $3 ~ /connect problem/ { print "note: testssl.sh could not run " $1 " in three scans" }'
pass "testssl.sh: clean by the documented policy ($(wc -l <suites.txt) suites, all ECDHE/TLS 1.3 AEAD)"
echo "94-tls-scan: all passed"
