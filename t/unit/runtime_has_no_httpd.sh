#!/bin/sh
# The runtime (mod_vthread/runtime/) is APR and libc only: no httpd header,
# no APR-util header. configure gives its library no httpd include path, so
# most such includes fail to compile; this also catches the ones that
# would still compile (<apache2/httpd.h>, and APR-util headers, which
# Debian installs beside APR's). Run by `make check`.
#
# Environment: VT_SRCDIR (the source tree), VT_HTTPD_INCLUDEDIR (apxs -q
# INCLUDEDIR).
set -u
src=${VT_SRCDIR:?VT_SRCDIR not set}/mod_vthread/runtime
httpd_inc=${VT_HTTPD_INCLUDEDIR:?VT_HTTPD_INCLUDEDIR not set}
# APR-util 1.x's headers (libaprutil1-dev), by name.
apu='apu.h apu_errno.h apu_version.h apu_want.h apr_anylock.h apr_base64.h
apr_buckets.h apr_crypto.h apr_date.h apr_dbd.h apr_dbm.h apr_hooks.h
apr_ldap.h apr_ldap_init.h apr_ldap_option.h apr_ldap_rebind.h
apr_ldap_url.h apr_md4.h apr_md5.h apr_memcache.h apr_optional.h
apr_optional_hooks.h apr_queue.h apr_redis.h apr_reslist.h apr_rmm.h
apr_sdbm.h apr_sha1.h apr_siphash.h apr_strmatch.h apr_thread_pool.h
apr_uri.h apr_uuid.h apr_xlate.h apr_xml.h'

files=$(ls "$src"/*.c "$src"/*.h 2>/dev/null)
[ -n "$files" ] || { echo "no runtime sources in $src"; exit 1; }
[ -f "$httpd_inc/httpd.h" ] || { echo "no httpd.h in $httpd_inc"; exit 1; }
bad=0
checked=0
for f in $files; do
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^>"]*\)[>"].*/\1/p' "$f"); do
        checked=$((checked + 1))
        base=${h##*/}
        why=
        case $h in apache2/*|httpd/*) why="an httpd header" ;; esac
        [ -n "$why" ] || [ ! -f "$httpd_inc/$h" ] || why="an httpd header ($httpd_inc)"
        for a in $apu; do
            [ "$base" != "$a" ] || why="an APR-util header"
        done
        if [ -n "$why" ]; then
            echo "FAIL: ${f#"$VT_SRCDIR"/} includes <$h>: $why; the runtime is APR and libc only"
            bad=1
        fi
    done
done
if [ "$bad" -ne 0 ]; then
    exit 1
fi
echo "runtime_has_no_httpd: $checked includes in $(echo "$files" | wc -l) files, none from httpd or APR-util"
exit 0
