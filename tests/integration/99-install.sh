#!/usr/bin/env bash
# `make install` puts the binary, libtlsgate with its header and pkg-config
# file, a man page per command and the systemd unit in place; a program
# builds against libtlsgate with pkg-config alone.
. "$(dirname "$0")/harness.sh"
build=$(dirname "$TG_BIN")
[ -f "$build/CMakeCache.txt" ] || fail "no build folder beside $TG_BIN"
DESTDIR="$T/root" cmake --install "$build" --prefix /usr/local >"$T/install.log" 2>&1 || fail "cmake --install"
R="$T/root/usr/local"
for f in bin/tlsgate lib/libtlsgate.a include/tlsgate/tlsgate.h lib/pkgconfig/tlsgate.pc \
	share/man/man1/tlsgate.1 share/man/man1/tlsgate-serve.1 share/man/man1/tlsgate-cert.1 \
	share/man/man1/tlsgate-trust.1 share/man/man1/tlsgate-config.1 share/man/man1/tlsgate-get.1 \
	share/man/man1/tlsgate-ca.1 share/man/man1/tlsgate-status.1 share/man/man1/tlsgate-acme.1; do
	[ -e "$R/$f" ] || fail "make install did not install $f"
done
[ -f "$T/root/usr/local/lib/systemd/system/tlsgate.service" ] || fail "no systemd unit"
grep -q "^ExecStart=/usr/local/bin/tlsgate serve" "$T/root/usr/local/lib/systemd/system/tlsgate.service" || fail "unit ExecStart"
grep -q "^AmbientCapabilities=CAP_NET_BIND_SERVICE" "$T/root/usr/local/lib/systemd/system/tlsgate.service" || fail "unit capability"
for m in "$R"/share/man/man1/*.1; do
	out=$(groff -man -Tutf8 -ww -z "$m" 2>&1) || fail "groff failed on $m"
	[ -z "$out" ] || fail "groff warns on $m: $out"
done
pass "binary, library, header, pkg-config file, man pages and unit installed"

cat >"$T/use.c" <<'C'
#include <stdio.h>
#include <tlsgate/tlsgate.h>
int main(void) {
	struct tg_err err;
	struct tg_config *cfg = tg_config_new();
	int bad = tg_config_set(cfg, "tls.mode", "sometimes", "example", &err);
	printf("libtlsgate %s: mode=%s; %s\n", tg_version(), tg_config_get(cfg, "tls.mode"), bad ? err.msg : "?");
	tg_config_free(cfg);
	return bad ? 0 : 1;
}
C
export PKG_CONFIG_SYSROOT_DIR="$T/root" PKG_CONFIG_PATH="$R/lib/pkgconfig"
san=""; [ "${TG_SANITIZE:-OFF}" = ON ] && san="-fsanitize=address,undefined"   # the library was built so
cc $san "$T/use.c" -o "$T/use" $(pkg-config --cflags tlsgate) $(pkg-config --static --libs tlsgate) \
	|| fail "a program does not build against libtlsgate"
"$T/use" | grep -q "mode=server; tls.mode (example): 'sometimes' is not one of off|server|mutual" \
	|| fail "the linked program: $("$T/use")"
pass "a program links libtlsgate through pkg-config and gets its errors in words"
echo "99-install: all passed"
