#!/usr/bin/env bash
# Configuration: defaults < file < environment < flags; `config set` keeps
# the file's comments; every bad input is one line that names its source.
. "$(dirname "$0")/harness.sh"
cd "$T"

cat >f.yaml <<'YAML'
# tlsgate test configuration
listen: "127.0.0.1:1111"   # the port
tls:
  mode: server
  # how clients are judged
  clients:
    trust: ca
files:
  max_upload: 5MiB
YAML

[ "$("$TG_BIN" config get listen --config f.yaml)" = "127.0.0.1:1111" ] || fail "file value"
"$TG_BIN" config list --config f.yaml | grep -E '^listen .*# f.yaml:2$' >/dev/null || fail "origin file:line"
[ "$(TLSGATE_LISTEN=127.0.0.1:2222 "$TG_BIN" config get listen --config f.yaml)" = "127.0.0.1:2222" ] \
	|| fail "env beats file"
[ "$(TLSGATE_LISTEN=127.0.0.1:2222 "$TG_BIN" config get listen --config f.yaml --listen 127.0.0.1:3333)" = \
	"127.0.0.1:3333" ] || fail "flag beats env"
TLSGATE_LISTEN=127.0.0.1:2222 "$TG_BIN" config list --config f.yaml --listen 127.0.0.1:3333 | \
	grep -E '^listen .*# --listen$' >/dev/null || fail "origin of the flag"
TLSGATE_FILES_MAX_UPLOAD=7MiB "$TG_BIN" config list --config f.yaml | \
	grep -E '^files.max_upload .*# env TLSGATE_FILES_MAX_UPLOAD$' >/dev/null || fail "origin env"
[ "$(TLSGATE_CONFIG=f.yaml "$TG_BIN" config get files.max_upload)" = 5MiB ] || fail "TLSGATE_CONFIG"
[ "$("$TG_BIN" config get tls.min_version)" = 1.2 ] || fail "default"
pass "layering: default < file < env < flag, with origins"

# relative paths in the file are relative to the file's folder
mkdir -p sub && printf 'tls:\n  cert: certs/a.crt\n' >sub/c.yaml
[ "$("$TG_BIN" config get tls.cert --config sub/c.yaml)" = "sub/certs/a.crt" ] || fail "relative path"
pass "relative paths resolve against the file's folder"

# config set / unset keep the rest of the file
cp f.yaml g.yaml
"$TG_BIN" config set tls.mode mutual --config g.yaml 2>/dev/null || fail "set existing"
"$TG_BIN" config set tls.clients.ca /etc/ca.pem --config g.yaml 2>/dev/null || fail "set new in section"
"$TG_BIN" config set log.format json --config g.yaml 2>/dev/null || fail "set new section"
"$TG_BIN" config set tls.names "a.lan,10.0.0.1" --config g.yaml 2>/dev/null || fail "set list"
"$TG_BIN" config unset files.max_upload --config g.yaml 2>/dev/null || fail "unset"
[ "$("$TG_BIN" config get tls.mode --config g.yaml)" = mutual ] || fail "set value"
[ "$("$TG_BIN" config get tls.clients.ca --config g.yaml)" = /etc/ca.pem ] || fail "new key value"
[ "$("$TG_BIN" config get log.format --config g.yaml)" = json ] || fail "new section value"
[ "$("$TG_BIN" config get tls.names --config g.yaml)" = "a.lan,10.0.0.1" ] || fail "list value"
[ "$("$TG_BIN" config get files.max_upload --config g.yaml)" = 1GiB ] || fail "unset value"
grep -q "^# tlsgate test configuration$" g.yaml || fail "top comment lost"
grep -q "# the port" g.yaml || fail "inline comment lost"
grep -q "  # how clients are judged" g.yaml || fail "nested comment lost"
"$TG_BIN" config set tls.mode sometimes --config g.yaml 2>/dev/null && fail "bad value written"
[ "$("$TG_BIN" config get tls.mode --config g.yaml)" = mutual ] || fail "bad set changed the file"
"$TG_BIN" config set nosuch.key 1 --config g.yaml 2>/dev/null && fail "unknown key written"
"$TG_BIN" config set listen "[::]:9443" --config new/dir/h.yaml 2>/dev/null || fail "set into a new file"
[ "$("$TG_BIN" config get listen --config new/dir/h.yaml)" = "[::]:9443" ] || fail "new file value"
pass "config set/unset edit in place and keep comments"

# bad input: exit 1, one line, naming the key and its source
printf 'tls:\n  moed: server\n' >bad1.yaml
expect_fail "unknown key in file" "tls.moed \(bad1.yaml:2\): unknown key" \
	"$TG_BIN" serve --config bad1.yaml --state-dir st
printf 'files:\n  max_upload: [1, 2]\n' >bad2.yaml
expect_fail "list for a scalar" "files.max_upload \(bad2.yaml:2\): takes a single value" \
	"$TG_BIN" serve --config bad2.yaml --state-dir st
expect_fail "wrong type in env" "files.max_upload \(env TLSGATE_FILES_MAX_UPLOAD\): 'lots' is not a size" \
	env TLSGATE_FILES_MAX_UPLOAD=lots "$TG_BIN" serve --state-dir st
expect_fail "wrong type in flag" "tls.mode \(--set\): 'maybe' is not one of off\|server\|mutual" \
	"$TG_BIN" serve --set tls.mode=maybe --state-dir st
expect_fail "unknown env var" "TLSGATE_NOPE \(environment\): no such setting" \
	env TLSGATE_NOPE=1 "$TG_BIN" serve --state-dir st
expect_fail "missing named config" "nope.yaml does not exist" "$TG_BIN" serve --config nope.yaml
printf 'tls:\n  mode: server\n bad: "x\n' >bad3.yaml
expect_fail "YAML syntax" "bad3.yaml:[0-9]+: YAML syntax error" "$TG_BIN" serve --config bad3.yaml
printf 'proxy:\n  - prefix: /x/\n' >bad4.yaml
expect_fail "a proxy route without upstream" "proxy.0 \(bad4.yaml:2\): upstream is missing" "$TG_BIN" serve --config bad4.yaml
printf 'proxy:\n  - prefix: /x/\n    upstream: ftp://h/\n' >bad4b.yaml
expect_fail "a proxy upstream that is not http(s)" "proxy.0.upstream \(bad4b.yaml:3\): 'ftp://h/' must be an http:// or https:// URL" \
	"$TG_BIN" serve --config bad4b.yaml
printf 'proxy:\n  - prefix: /x/\n    upstream: http://h/\n    headers:\n      "Bad Name": v\n' >bad4c.yaml
expect_fail "a header name with a space" "not a header name" "$TG_BIN" serve --config bad4c.yaml
printf 'tunnels:\n  - listen: 127.0.0.1:1\n' >bad5.yaml
expect_fail "a tunnel without connect" "tunnels.0 \(bad5.yaml:2\): connect is missing" \
	"$TG_BIN" serve --config bad5.yaml
printf 'tunnels:\n  - listen: 127.0.0.1:1\n    conect: x:1\n' >bad6.yaml
expect_fail "a misspelt tunnel key" "tunnels.0.conect \(bad6.yaml:3\): unknown key" \
	"$TG_BIN" serve --config bad6.yaml
printf 'tunnels:\n  - 127.0.0.1:1\n' >bad7.yaml
expect_fail "a tunnel that is not a mapping" "tunnels \(bad7.yaml:2\): each entry is a mapping" \
	"$TG_BIN" serve --config bad7.yaml
expect_fail "a tunnel set by flag, checked" "tunnels.0.idle_timeout \(--set\): 'soon' is not a duration" \
	"$TG_BIN" serve --set tunnels.0.idle_timeout=soon
printf 'listen: "a:b"\n' >bad5.yaml
expect_fail "bad address" "listen \(bad5.yaml:1\): 'a:b' is not an address" "$TG_BIN" serve --config bad5.yaml

"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --name localhost --ca ca --out good >/dev/null
"$TG_BIN" cert issue --server --name other --ca ca --out other >/dev/null
expect_fail "missing cert file" "tls.cert .*nope.crt \(--cert\): cannot read .*No such file" \
	"$TG_BIN" serve --cert nope.crt --key good.key --state-dir st --listen 127.0.0.1:0
expect_fail "key not matching" "tls.key .*other.key \(--key\) does not match tls.cert .*good.crt \(--cert\)" \
	"$TG_BIN" serve --cert good.crt --key other.key --state-dir st --listen 127.0.0.1:0
make_expired_cert ca old
expect_fail "expired cert" "tls.cert .*old.crt \(--cert\): certificate for localhost expired on 2021-01-01" \
	"$TG_BIN" serve --cert old.crt --key old.key --state-dir st --listen 127.0.0.1:0
echo "garbage" >bad.key && chmod 600 bad.key
expect_fail "unreadable key" "tls.key .*bad.key \(--key\): .*bad.key is not a private key" \
	"$TG_BIN" serve --cert good.crt --key bad.key --state-dir st --listen 127.0.0.1:0
cp good.key open.key && chmod 644 open.key
expect_fail "world-readable key" "tls.key .*open.key \(--key\): open.key: mode 644 lets other users read the private key; run chmod 600 open.key \(or pass --allow-insecure-key-permissions\)" \
	"$TG_BIN" serve --cert good.crt --key open.key --state-dir st --listen 127.0.0.1:0
chmod 640 open.key
expect_fail "group-readable key" "mode 640 lets other users read" \
	"$TG_BIN" serve --cert good.crt --key open.key --state-dir st --listen 127.0.0.1:0
expect_fail "--allow-insecure-key-permissions gets past the check" "listen 256.0.0.1:1: cannot resolve" \
	"$TG_BIN" serve --cert good.crt --key open.key --allow-insecure-key-permissions --state-dir st --listen 127.0.0.1:1 --mode server --set files.enabled=false --set listen=256.0.0.1:1
printf 'tls:\n  cert: good.crt\n  key: missing.key\n' >bad6.yaml
expect_fail "missing key named in the file" "tls.key .*missing.key \(bad6.yaml:3\): cannot read" \
	"$TG_BIN" serve --config bad6.yaml --state-dir st --listen 127.0.0.1:0
if [ "$(id -u)" != 0 ]; then
	cp good.key noperm.key && chmod 000 noperm.key
	expect_fail "key without permission" "Permission denied" \
		"$TG_BIN" serve --cert good.crt --key noperm.key --state-dir st --listen 127.0.0.1:0
fi
expect_fail "cert without key" "tls.key is empty but tls.cert is set \(--cert\)" \
	"$TG_BIN" serve --cert good.crt --state-dir st
# every key is documented
doc="$(dirname "$0")/../../docs/configuration.md"
for k in $("$TG_BIN" config list | awk '{print $1}'); do
	grep -q "^| \`$k\` |" "$doc" || fail "key $k is missing from docs/configuration.md (run scripts/config-doc.sh)"
done
pass "every key is in docs/configuration.md"
echo "20-config: all passed"
