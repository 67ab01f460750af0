#!/usr/bin/env bash
# The soak of bench/soak.sh, short: 90 s (60 under a sanitizer, whose
# build is several times slower), zero failed requests, RSS and descriptors
# flat across reloads every 5 s and certificate swaps every 20 s.
secs=90
[ "${TG_SANITIZE:-OFF}" = ON ] || [ "${TG_TSAN:-OFF}" = ON ] && secs=60
exec bash "$(dirname "$0")/../../bench/soak.sh" "${SOAK_SECONDS:-$secs}"
