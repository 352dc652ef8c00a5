#!/usr/bin/env bash
#
# ngx_http_auth_pat_module: build, test, run and benchmark.
#
#   ./build.sh          build build/ngx_http_auth_pat_module.so
#   ./build.sh test     build, then run every test (prove -r t/)
#   ./build.sh run      build, start Redis + nginx on 127.0.0.1:$PAT_PORT (8080)
#                       in the foreground; Ctrl-C stops both
#   ./build.sh bench    build, then the wrk benchmark on loopback
#   ./build.sh profile  build, then instructions per request under callgrind
#   ./build.sh asan     build nginx 1.22.1 and the module with clang ASan+UBSan
#                       (build/asan/), then run every test against them
#   ./build.sh fuzz     libFuzzer on the pure parsers: RESP, bodies, the list
#                       query, Authorization and tokens, records (FUZZ_SECONDS, 60)
#   ./build.sh deb      build, then build/libnginx-mod-http-auth-pat_VERSION_ARCH.deb
#                       (the version from the file VERSION), checked by lintian
#   ./build.sh install  as root: `deb`, then dpkg -i it; nginx must then be
#                       restarted (a reload keeps the module already loaded)
#
# Environment:
#   NGINX_SRC    nginx source tree to configure against
#                (default /usr/share/nginx/src, from Debian's nginx-dev)
#   NGINX_BIN    nginx binary used by run/test/bench (default /usr/sbin/nginx)
#   PAT_CFLAGS   extra compiler flags for the module
#   PAT_RUN_DIR  state of `run` (default ./.run)
#   PAT_PORT     port of `run`'s gateway on 127.0.0.1 (default 8080); its
#                stand-in upstream listens on PAT_PORT+1 (default 8081)
#   PAT_MODULE   module loaded by run/test (default build/ngx_http_auth_pat_module.so)
#   PAT_DEB_SO   deb/install: package this .so as it is, without building
#                (t/80-deb.t packages the module under test)
#   PAT_DEB_DIR  deb/install: where the .deb is written (default build/)
#   PAT_DEB_LINTIAN  0: deb does not run lintian (default 1: errors fail)
#   PAT_DEB_MAINTAINER  "Name <address>" of the package (default: the
#                author of the last commit)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

NGINX_SRC=${NGINX_SRC:-/usr/share/nginx/src}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
BUILD=$ROOT/build
RUN_DIR=${PAT_RUN_DIR:-$ROOT/.run}
MODULE=$BUILD/ngx_http_auth_pat_module.so

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# Debian packages each command needs.
PKGS_BUILD=(gcc make nginx nginx-dev libhiredis-dev libjansson-dev libssl-dev)
PKGS_RUN=(redis-server openssl curl)
# libnginx-mod-nchan: t/16-redis-transport.t loads Debian's nchan, which
# exports a hiredis of its own, beside the module; jq: t/30 runs README's
# API block; prometheus (for promtool) and python3-prometheus-client:
# t/39-status.t lints and parses the metrics; python3-jsonschema: t/90
# checks the OpenAPI document's schemas, and every test validates the API's
# JSON answers against them (t/lib/openapi_check.py);
# dpkg-dev and lintian: t/80-deb.t builds the package and lints it;
# chromium: t/95-ui-browser.t drives it through the self-service page
PKGS_TEST=(perl python3 redis-server openssl libnginx-mod-nchan binutils curl jq
            prometheus python3-prometheus-client python3-jsonschema dpkg-dev lintian
            chromium)
PKGS_BENCH=(wrk redis-server)
PKGS_PROFILE=(wrk redis-server valgrind)
# asan: clang 14 with its sanitizer runtimes (libclang-rt-14-dev is only
# recommended by clang) and llvm-symbolizer (llvm-14) for stack traces;
# dpkg-dev for `apt-get source`; the libraries of Debian's configure flags.
PKGS_ASAN=(clang-14 libclang-rt-14-dev llvm-14 dpkg-dev make libpcre2-dev zlib1g-dev
           libssl-dev libhiredis-dev libjansson-dev perl redis-server curl
           python3 openssl libnginx-mod-nchan binutils jq prometheus
           python3-prometheus-client python3-jsonschema lintian chromium)

# deb: dpkg-dev for dpkg-shlibdeps, binutils for strip, nm and readelf,
# lintian to check the package
PKGS_DEB=(dpkg-dev binutils lintian)

PKGS_FUZZ=(clang-14 libclang-rt-14-dev llvm-14 dpkg-dev libssl-dev libhiredis-dev libjansson-dev)

ensure_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        printf 'build.sh: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf 'Install them as root with:\n\n' >&2
        printf '  apt-get update && apt-get install -y %s\n\n' "${missing[*]}" >&2
        exit 1
    fi

    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The configure step takes ~20 s; it runs again only when its inputs change:
# the module's `config`, the files `config` embeds (openapi/openapi.json,
# src/ui/*), the nginx source tree, or the flags.
build() {
    ensure_pkgs "${PKGS_BUILD[@]}"

    [ -x "$NGINX_SRC/configure" ] || die "$NGINX_SRC has no configure script (set NGINX_SRC)"

    local flags=()
    if [ -f "$NGINX_SRC/conf_flags" ]; then
        # Debian's nginx-dev: a bash array NGX_CONF_FLAGS with --with-compat.
        # shellcheck disable=SC1091
        . "$NGINX_SRC/conf_flags"
        flags=("${NGX_CONF_FLAGS[@]}")
    else
        flags=(--with-compat)
    fi

    local ccopt="-g -O2 -fPIC -fstack-protector-strong -Wformat -Werror=format-security -D_FORTIFY_SOURCE=2 ${PAT_CFLAGS:-}"
    local ldopt="-Wl,-z,relro -Wl,-z,now -fPIC"
    local stamp_want
    stamp_want=$(printf '%s\n' "$NGINX_SRC" "${flags[@]}" "$ccopt" "$ldopt" \
                 | cat - "$ROOT/config" "$ROOT/openapi/openapi.json" "$ROOT"/src/ui/* \
                 | sha256sum | cut -d' ' -f1)

    local tree=$BUILD/nginx
    if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$BUILD/.configured" 2>/dev/null)" != "$stamp_want" ]; then
        log "configuring against $NGINX_SRC"
        rm -rf "$tree"
        mkdir -p "$tree"
        cp -a "$NGINX_SRC/." "$tree/"
        (cd "$tree" && ./configure "${flags[@]}" \
            --with-cc-opt="$ccopt" --with-ld-opt="$ldopt" \
            --add-dynamic-module="$ROOT" > "$BUILD/configure.log" 2>&1) \
            || { tail -30 "$BUILD/configure.log" >&2; die "configure failed (see build/configure.log)"; }
        echo "$stamp_want" > "$BUILD/.configured"
    fi

    log "compiling"
    make -s -C "$tree" -f objs/Makefile modules -j"$(nproc)" >&2 \
        || die "compilation failed"
    cp -f "$tree/objs/ngx_http_auth_pat_module.so" "$MODULE.tmp"
    mv -f "$MODULE.tmp" "$MODULE"
    log "built $MODULE"
}

# npm packages of the tests, each tree pinned by its lock file: npm ci
# installs exactly that tree, again only when the lock file changed.
#   openapi/  @redocly/cli, which lints the OpenAPI document (t/90)
#   t/ui/     playwright-core and axe-core, which drive Debian's chromium
#             through the self-service page (t/95)
# @redocly/cli needs Node.js 20.19 or later (Debian 12's own nodejs is
# 18): the node on PATH, else Debian's, which then fails with a clear
# message.
ensure_npm_tree() {
    local dir=$1
    if [ ! -d "$dir/node_modules" ] \
       || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci" 2>/dev/null; then
        log "installing the npm packages of ${dir#"$ROOT"/} (npm ci)"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2 \
            || die "npm ci in $dir failed"
        cp -f "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.ci"
    fi
}

ensure_test_npm() {
    if ! command -v npm >/dev/null 2>&1; then
        ensure_pkgs nodejs npm
    fi
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
        || die "the OpenAPI lint (@redocly/cli) needs Node.js 20.19 or later; found $(node --version)"
    ensure_npm_tree "$ROOT/openapi"
    ensure_npm_tree "$ROOT/t/ui"
}

run_tests() {
    ensure_pkgs "${PKGS_TEST[@]}"
    ensure_test_npm
    # the harness reads PAT_NGINX and PAT_MODULE; `run` (t/30-run.t) too
    export NGINX_BIN PAT_NGINX=${PAT_NGINX:-$NGINX_BIN}
    export PAT_MODULE=${PAT_MODULE:-$MODULE}
    prove -r ${PROVE_ARGS:--j2} t/
}

# ---------------------------------------------------------------- run

print_next_steps() {
    local pw=$1 base=http://127.0.0.1:$2
    local api=$base/v1/personal-access-tokens
    local tok="sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/'"
    local id="sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/'"
    cat <<EOF

nginx is listening on $base (Redis: $RUN_DIR/redis.sock; the stand-in upstream on port $3).
Bootstrap user: alice, password $pw (auth_basic on the token API).
Logs: $RUN_DIR/error.log.  Ctrl-C stops both.

Try, in another terminal (each line works as printed):

# 1. Bootstrap alice's first token with her password; the plaintext is shown only here.
TOKEN=\$(curl -s -u alice:$pw -H 'Content-Type: application/json' -d '{"name":"laptop"}' $api | $tok); echo "\$TOKEN"
#    -> pat_... (the answer was {"data":{"id":...,"name":"laptop",...,"status":"active","token":"pat_..."}})

# 2. Call the protected upstream with it.
curl -s -H "Authorization: Bearer \$TOKEN" $base/api/hello
#    -> {"hello":"alice","token":"laptop","authorization":""}

# 3. List alice's tokens, with the token itself as the credential.
curl -s -H "Authorization: Bearer \$TOKEN" $api
#    -> {"items":[{"id":...,"name":"laptop",...}],"totalCount":1,"facets":{"status":{"active":1,"expired":0,"revoked":0}}}

# 4. Rotate it: the old token stops working at once, the new one is shown once.
ID=\$(curl -s -H "Authorization: Bearer \$TOKEN" "$api?page_size=1" | $id)
NEW=\$(curl -s -X POST -H "Authorization: Bearer \$TOKEN" $api/\$ID/rotate | $tok); echo "\$NEW"
#    -> pat_... (the answer was {"data":{...,"rotatedFrom":"<old id>","token":"pat_..."}})
curl -s -H "Authorization: Bearer \$TOKEN" $base/api/hello
#    -> {"error":"unauthorized","message":"the token is invalid, expired or revoked"}

# 5. Revoke the new token.
NEWID=\$(curl -s -H "Authorization: Bearer \$NEW" "$api?page_size=1" | $id)
curl -s -X DELETE -H "Authorization: Bearer \$NEW" $api/\$NEWID
#    -> {"data":{"id":...,"revokedAt":"...","status":"revoked"}}
curl -s -H "Authorization: Bearer \$NEW" $base/api/hello
#    -> {"error":"unauthorized","message":"the token is invalid, expired or revoked"}

EOF
}

# The processes of `run`, global so that stop_all (the INT, TERM and EXIT
# traps) sees them wherever the script stops: the EXIT trap can run after
# run_local has returned, where its locals are gone.
RUN_REDIS_PID=
RUN_NGINX_PID=

# Commands started with & by a script ignore SIGINT and SIGQUIT until they
# install their own handlers: nginx does so only once its configuration is
# read, so a QUIT sent while it starts would be lost. stop_process sends
# TERM (fast shutdown for nginx, shutdown for redis), and KILL to a
# process still there 10 s later.
stop_process() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    trap - INT TERM EXIT
    [ -n "$RUN_NGINX_PID$RUN_REDIS_PID" ] || return 0
    log "stopping nginx and redis"
    if [ -n "$RUN_NGINX_PID" ]; then
        stop_process "$RUN_NGINX_PID"
        RUN_NGINX_PID=
    fi
    if [ -n "$RUN_REDIS_PID" ]; then
        stop_process "$RUN_REDIS_PID"
        RUN_REDIS_PID=
    fi
}

run_local() {
    ensure_pkgs "${PKGS_RUN[@]}"
    local port=${PAT_PORT:-8080}
    [[ $port =~ ^[0-9]{1,5}$ ]] && (( 10#$port >= 1 && 10#$port <= 65534 )) \
        || die "PAT_PORT must be a port number from 1 to 65534 (got \"$port\")"
    port=$((10#$port))
    local upstream_port=$((port + 1))
    local rd=$RUN_DIR
    mkdir -p "$rd"
    chmod 0755 "$rd"

    # Secrets made on the first run and kept: the HMAC key, the bootstrap
    # user's password (for auth_basic) and its htpasswd entry.
    if [ ! -s "$rd/pat.key" ]; then
        (umask 077; openssl rand -base64 48 > "$rd/pat.key")
    fi
    if [ ! -s "$rd/password" ]; then
        (umask 077; openssl rand -hex 12 > "$rd/password")
        printf 'alice:%s\n' "$(openssl passwd -6 -stdin < "$rd/password")" > "$rd/pat.htpasswd"
    fi
    # nginx workers (user nobody when started as root) read the htpasswd file.
    chmod 0644 "$rd/pat.htpasswd"

    cat > "$rd/redis.conf" <<EOF
port 0
unixsocket $rd/redis.sock
unixsocketperm 777
dir $rd
appendonly yes
appendfilename "appendonly.aof"
save ""
logfile $rd/redis.log
daemonize no
EOF
    # The example's ports, 8080 (the gateway) and 8081 (the stand-in
    # upstream), become PAT_PORT and PAT_PORT+1, through placeholders so
    # that PAT_PORT=8081 or 8079 does not rewrite a port twice.
    sed -e "s#modules/ngx_http_auth_pat_module.so#${PAT_MODULE:-$MODULE}#" \
        -e "s#/run/redis/redis-server.sock#$rd/redis.sock#" \
        -e "s#/etc/nginx/pat.key#$rd/pat.key#" \
        -e "s#/etc/nginx/pat.htpasswd#$rd/pat.htpasswd#" \
        -e "s#/var/log/nginx/#$rd/#" \
        -e "s#^pid .*#pid $rd/nginx.pid;#" \
        -e 's#127\.0\.0\.1:8080\([^0-9]\|$\)#127.0.0.1:@PAT_PORT@\1#g' \
        -e 's#127\.0\.0\.1:8081\([^0-9]\|$\)#127.0.0.1:@PAT_UPSTREAM_PORT@\1#g' \
        -e "s#@PAT_PORT@#$port#g; s#@PAT_UPSTREAM_PORT@#$upstream_port#g" \
        nginx.conf.example > "$rd/nginx.conf"
    grep -q "^ *listen 127\.0\.0\.1:$port;" "$rd/nginx.conf" \
        && grep -q "^ *listen 127\.0\.0\.1:$upstream_port;" "$rd/nginx.conf" \
        || die "nginx.conf.example no longer listens on 127.0.0.1:8080 and :8081 (update run_local)"

    # From here on, however the script ends, it stops what it started.
    trap 'stop_all; exit 130' INT
    trap 'stop_all; exit 143' TERM
    trap stop_all EXIT

    redis-server "$rd/redis.conf" &
    RUN_REDIS_PID=$!
    for _ in $(seq 100); do [ -S "$rd/redis.sock" ] && break; sleep 0.05; done
    [ -S "$rd/redis.sock" ] || die "redis did not start (see $rd/redis.log)"

    "$NGINX_BIN" -t -p "$rd" -c "$rd/nginx.conf" -q \
        || die "nginx configuration test failed"
    # nginx writes its pid file once it has bound its ports (a stale file
    # holds another pid); on a busy port it retries for about 2.5 s, then
    # exits.
    "$NGINX_BIN" -p "$rd" -c "$rd/nginx.conf" -g 'daemon off;' &
    RUN_NGINX_PID=$!

    local up=
    for _ in $(seq 200); do
        kill -0 "$RUN_NGINX_PID" 2>/dev/null || break
        if [ "$(cat "$rd/nginx.pid" 2>/dev/null)" = "$RUN_NGINX_PID" ] \
           && curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.05
    done
    [ -n "$up" ] || die "nginx did not start on 127.0.0.1:$port and 127.0.0.1:$upstream_port" \
        "(a port in use? PAT_PORT picks others; see the messages above and $rd/error.log)"

    print_next_steps "$(cat "$rd/password")" "$port" "$upstream_port"
    local rc=0
    wait "$RUN_NGINX_PID" || rc=$?
    # Only when nginx stopped by itself: a signal to build.sh runs its trap.
    RUN_NGINX_PID=
    log "nginx exited (status $rc)"
    stop_all
    exit "$rc"
}

# ---------------------------------------------------------------- deb
#
# build/libnginx-mod-http-auth-pat_VERSION_ARCH.deb, laid out as Debian's
# own dynamic modules (libnginx-mod-nchan, made by dh_nginx):
#   /usr/lib/nginx/modules/ngx_http_auth_pat_module.so    stripped
#   /usr/share/nginx/modules-available/mod-http-auth-pat.conf
#                        load_module, linked into /etc/nginx/modules-enabled/
#                        as 50-mod-http-auth-pat.conf by pkg/postinst
#   /usr/share/doc/libnginx-mod-http-auth-pat/   copyright, changelog.Debian.gz,
#                        README.md.gz, examples/pat.conf (pkg/pat.conf.example)
# The maintainer scripts (pkg/postinst, prerm, postrm) keep dh_nginx's
# handling of the link but trigger no nginx reload: a reload keeps the
# module the running nginx loaded, so they say that nginx must be
# restarted (DESIGN.md, "Upgrades").
# Depends: the nginx ABI that the installed nginx provides (nginx-abi-*),
# and the libraries the .so links, from dpkg-shlibdeps.  The version is
# VERSION's, with the packaging revision DEB_REVISION.  dpkg-deb runs with
# --root-owner-group, so no fakeroot; the times in the package are those of
# the last commit (SOURCE_DATE_EPOCH), so the same tree gives the same .deb.

DEB_PKG=libnginx-mod-http-auth-pat
DEB_REVISION=1
DEB_SO_NAME=ngx_http_auth_pat_module.so
DEB_FILE=        # set by build_deb: the package it wrote
DEB_STAGE=       # build_deb's staging directory, removed on exit

deb_cleanup() {
    if [ -n "$DEB_STAGE" ]; then
        rm -rf "$DEB_STAGE"
    fi
    DEB_STAGE=
}

# VERSION: the one place the version is written
deb_version() {
    local v
    v=$(tr -d ' \t\r\n' < "$ROOT/VERSION" 2>/dev/null) || die "no VERSION file"
    [[ $v =~ ^[0-9][0-9A-Za-z.+~]*$ ]] \
        || die "VERSION holds \"$v\": not an upstream version (digits first, then [0-9A-Za-z.+~])"
    printf '%s-%s\n' "$v" "$DEB_REVISION"
}

# The nginx-abi-* that the installed nginx provides: what Debian's modules
# depend on, so that an nginx with another ABI refuses the package rather
# than the module (dlopen: "module is not binary compatible").
deb_nginx_abi() {
    local abi
    abi=$(dpkg-query -W -f='${Provides}\n' nginx nginx-common 2>/dev/null \
          | tr ',' '\n' | sed -n 's/^ *\(nginx-abi-[^ (]*\).*$/\1/p' | sort -u || true)
    [ -n "$abi" ] || die "no installed package provides nginx-abi-* (install nginx)"
    [ "$(printf '%s\n' "$abi" | wc -l)" -eq 1 ] \
        || die "the installed packages provide several nginx ABIs: $(tr '\n' ' ' <<< "$abi")"
    printf '%s\n' "$abi"
}

# Who the package names as its maintainer (and the changelog's signer):
# PAT_DEB_MAINTAINER, else the author of the last commit.
deb_maintainer() {
    local m=${PAT_DEB_MAINTAINER:-}
    [ -n "$m" ] || m=$(git -C "$ROOT" log -1 --format='%an <%ae>' 2>/dev/null || true)
    [[ $m =~ ^[^\<\>]+\ \<[^\<\>@\ ]+@[^\<\>@\ ]+\>$ ]] \
        || die "set PAT_DEB_MAINTAINER='Name <address>' (got \"$m\")"
    printf '%s\n' "$m"
}

# build_deb: packages PAT_DEB_SO (default build/ngx_http_auth_pat_module.so,
# which the caller has built) into PAT_DEB_DIR (default build/).
build_deb() {
    local lint=${PAT_DEB_LINTIAN:-1} p pkgs=()
    for p in "${PKGS_DEB[@]}"; do
        [ "$p" = lintian ] && [ "$lint" = 0 ] && continue
        pkgs+=("$p")
    done
    ensure_pkgs "${pkgs[@]}"

    local so=${PAT_DEB_SO:-$MODULE} out=${PAT_DEB_DIR:-$BUILD}
    [ -f "$so" ] || die "$so: no such module (run ./build.sh, or set PAT_DEB_SO)"
    mkdir -p "$out"
    out=$(cd "$out" && pwd)

    local version abi arch maint epoch
    version=$(deb_version)
    abi=$(deb_nginx_abi)
    arch=$(dpkg --print-architecture)
    maint=$(deb_maintainer)
    # with the .so just built against NGINX_SRC: is that the installed nginx?
    if [ -z "${PAT_DEB_SO:-}" ] && [ -f "$NGINX_SRC/src/core/nginx.h" ]; then
        local src_v
        src_v=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"$/\1/p' "$NGINX_SRC/src/core/nginx.h")
        [[ $abi == "nginx-abi-$src_v-"* ]] \
            || die "the module was built against nginx $src_v ($NGINX_SRC), the installed nginx provides $abi"
    fi
    epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
    export SOURCE_DATE_EPOCH=$epoch    # dpkg-deb's timestamps too

    # dpkg-shlibdeps wants debian/control and the files in debian/PACKAGE/;
    # the staging tree goes however the script ends (a signal exits, which
    # runs the EXIT trap)
    trap deb_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    DEB_STAGE=$(mktemp -d "$out/.deb-stage.XXXXXX")
    local root=$DEB_STAGE/debian/$DEB_PKG
    local doc=$root/usr/share/doc/$DEB_PKG
    local lib=$root/usr/lib/nginx/modules/$DEB_SO_NAME
    install -d -m 0755 "$root/DEBIAN" "${lib%/*}" "$root/usr/share/nginx/modules-available" \
        "$doc/examples"

    install -m 0644 "$so" "$lib"
    # as dh_strip does for a shared object: the debug info goes, .dynsym
    # (what nginx resolves) stays
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$lib" \
        || die "strip failed on $so"
    # (whole outputs first: grep -q leaving a pipe early fails it under pipefail)
    local sections dynsyms leak
    sections=$(readelf -S "$lib") || die "readelf failed on $lib"
    ! grep -q '\.debug_' <<< "$sections" || die "$lib still has debug sections"
    dynsyms=$(nm -D "$lib") || die "nm -D failed on $lib"
    grep -qE '^[0-9a-f]+ [A-Z] ngx_http_auth_pat_module$' <<< "$dynsyms" \
        || die "$so does not define ngx_http_auth_pat_module: not the module"
    # the static hiredis must stay hidden (DESIGN.md: nchan exports its own)
    leak=$(awk '{ print $NF }' <<< "$dynsyms" | grep -E '^(redis|sds|hi_)' || true)
    [ -z "$leak" ] || die "$so exports hiredis symbols: $(tr '\n' ' ' <<< "$leak" | cut -c1-200)"

    install -m 0644 "$ROOT/pkg/mod-http-auth-pat.conf" "$root/usr/share/nginx/modules-available/"
    install -m 0644 "$ROOT/pkg/copyright" "$doc/copyright"
    install -m 0644 "$ROOT/pkg/pat.conf.example" "$doc/examples/pat.conf"
    gzip -9n < "$ROOT/README.md" > "$doc/README.md.gz"
    chmod 0644 "$doc/README.md.gz"
    {
        printf '%s (%s) unstable; urgency=medium\n\n' "$DEB_PKG" "$version"
        printf '  * ngx_http_auth_pat_module %s, packaged by ./build.sh deb' "${version%-*}"
        local head
        head=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || true)
        [ -n "$head" ] && printf '\n    (commit %s)' "$head"
        printf '.\n\n -- %s  %s\n' "$maint" "$(date -u -R -d "@$epoch")"
    } | gzip -9n > "$doc/changelog.Debian.gz"
    chmod 0644 "$doc/changelog.Debian.gz"
    for p in postinst prerm postrm; do
        install -m 0755 "$ROOT/pkg/$p" "$root/DEBIAN/$p"
    done

    # Depends: the libraries, as dpkg-shlibdeps finds them (shlibs and
    # symbols files of the packages that own the NEEDED libraries)
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$DEB_PKG" "$DEB_PKG" \
        > "$DEB_STAGE/debian/control"
    local shlibs
    shlibs=$(cd "$DEB_STAGE" && dpkg-shlibdeps -O -e"$lib" 2> "$DEB_STAGE/shlibdeps.log") \
        || { cat "$DEB_STAGE/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
    shlibs=${shlibs#shlibs:Depends=}
    # hiredis is inside the .so (libhiredis.a): named, as Debian names the
    # sources of what it links statically
    local hiredis
    hiredis=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libhiredis-dev 2>/dev/null || true)

    # Installed-Size in KiB, as dpkg-gencontrol counts: each file rounded up
    # to a KiB, one for every directory or link
    local size
    size=$(find "$root" -path "$root/DEBIAN" -prune -o -printf '%y %s\n' \
           | awk '$1 == "f" { n += int(($2 + 1023) / 1024); next } { n += 1 } END { print n }')

    (cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/md5sums"

    {
        printf 'Package: %s\n' "$DEB_PKG"
        printf 'Version: %s\n' "$version"
        printf 'Architecture: %s\n' "$arch"
        printf 'Maintainer: %s\n' "$maint"
        printf 'Installed-Size: %s\n' "$size"
        printf 'Depends: %s%s\n' "$abi" "${shlibs:+, $shlibs}"
        [ -n "$hiredis" ] && printf 'Static-Built-Using: %s\n' "$hiredis"
        printf 'Section: httpd\nPriority: optional\nMulti-Arch: foreign\n'
        cat <<'EOF'
Description: personal access tokens for nginx, checked against Redis
 ngx_http_auth_pat_module makes nginx both the issuer and the checker of
 personal access tokens.  The auth_pat directive checks
 "Authorization: Bearer <token>" in the access phase of any location,
 against Redis and without blocking a worker; upstream services receive
 the verified identity in variables and never see a bad token.
 auth_pat_api serves a JSON token API: create (the token is shown once),
 list, revoke and rotate.  Redis holds only HMAC-SHA256 digests of the
 tokens.
 .
 The module is loaded by the snippet that this package links into
 /etc/nginx/modules-enabled/.  After an install or an upgrade nginx must
 be restarted: a reload keeps the module already loaded.
EOF
    } > "$root/DEBIAN/control"

    find "$root" -exec touch -h -d "@$epoch" {} +
    local name=${DEB_PKG}_${version}_${arch}.deb
    dpkg-deb --root-owner-group --build "$root" "$DEB_STAGE/$name" > /dev/null \
        || die "dpkg-deb --build failed"
    # one package in the directory, so that dpkg -i DIR/libnginx-mod-http-auth-pat_*.deb
    # installs this one and no older version beside it
    rm -f "$out/${DEB_PKG}_"*.deb
    mv -f "$DEB_STAGE/$name" "$out/$name"
    DEB_FILE=$out/$name
    deb_cleanup
    trap - EXIT INT TERM
    log "built $DEB_FILE"

    # lintian: errors fail the build, warnings are shown (PAT_DEB_LINTIAN=0:
    # not run; t/80-deb.t runs it itself)
    if [ "$lint" != 0 ]; then
        local report
        report=$(lintian --tag-display-limit 0 "$DEB_FILE" 2>&1 | grep -v 'running with root privileges' || true)
        [ -z "$report" ] || printf '%s\n' "$report" >&2
        ! grep -q '^E:' <<< "$report" || die "lintian reports errors in $DEB_FILE"
    fi
}

# dpkg -i the package build_deb wrote: as Debian's modules, its postinst
# links the load_module snippet into /etc/nginx/modules-enabled/
install_deb() {
    log "dpkg -i $DEB_FILE"
    dpkg -i "$DEB_FILE" >&2 || die "dpkg -i $DEB_FILE failed"
    cat >&2 <<'EOF'

The module is installed, and enabled by /etc/nginx/modules-enabled/50-mod-http-auth-pat.conf.
nginx must be RESTARTED to load it (a reload keeps the module it loaded at start):

    nginx -t && systemctl restart nginx

EOF
}

# ---------------------------------------------------------------- asan
#
# nginx and the module, both built by clang 14 with AddressSanitizer and
# UndefinedBehaviorSanitizer, in build/asan/ (apart from the normal build).
# The nginx source is Debian's nginx_1.22.1.orig.tar.gz (pristine upstream
# 1.22.1, fetched with `apt-get source`); Debian's patches are not applied.

ASAN_DIR=$BUILD/asan
ASAN_NGINX_VERSION=1.22.1
ASAN_ORIG=nginx_${ASAN_NGINX_VERSION}.orig.tar.gz
# sha256 of nginx_1.22.1.orig.tar.gz, as listed by Debian's (signed) Sources.
ASAN_ORIG_SHA256=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
ASAN_CC=clang-14
ASAN_SYMBOLIZER=/usr/lib/llvm-14/bin/llvm-symbolizer

asan_orig_ok() {
    [ -f "$ASAN_DIR/src/$ASAN_ORIG" ] \
        && echo "$ASAN_ORIG_SHA256  $ASAN_DIR/src/$ASAN_ORIG" | sha256sum -c --status
}

# Debian's nginx 1.22.1 source into build/asan/src/, once. Needs deb-src
# entries: when apt knows no source for nginx, this adds
# /etc/apt/sources.list.d/debian-src.sources (a copy of debian.sources with
# "Types: deb-src") and runs apt-get update.
asan_fetch_source() {
    asan_orig_ok && return 0

    local src_list=/etc/apt/sources.list.d/debian-src.sources
    local bin_list=/etc/apt/sources.list.d/debian.sources
    if [ "$(id -u)" -ne 0 ]; then
        printf 'build.sh: the nginx source is fetched with apt-get source; as root, run:\n\n' >&2
        printf '  sed "s/^Types:.*/Types: deb-src/" %s > %s\n' "$bin_list" "$src_list" >&2
        printf '  apt-get update\n  mkdir -p %s/src && cd %s/src && apt-get source --download-only nginx\n\n' \
            "$ASAN_DIR" "$ASAN_DIR" >&2
        exit 1
    fi

    if ! apt-cache showsrc nginx 2>/dev/null | grep -q '^Package: nginx$'; then
        if [ ! -f "$src_list" ]; then
            [ -f "$bin_list" ] || die "no $bin_list to derive deb-src entries from; add deb-src entries for Debian"
            log "adding deb-src entries: $src_list"
            sed 's/^Types:.*/Types: deb-src/' "$bin_list" > "$src_list.tmp"
            mv -f "$src_list.tmp" "$src_list"
        fi
        log "apt-get update (source indexes)"
        apt-get update -q >&2
    fi

    # Every Debian revision of 1.22.1 ships the same orig tarball. Newest
    # first; an older one only if a revision's files cannot be fetched
    # (a mirror may list a .dsc that it does not serve).
    local versions v got=
    versions=$(apt-cache showsrc nginx \
               | sed -n "s/^Version: \(${ASAN_NGINX_VERSION//./\\.}-.*\)$/\1/p" | sort -Vru)
    [ -n "$versions" ] || die "apt knows no source package nginx $ASAN_NGINX_VERSION (apt-cache showsrc nginx)"
    mkdir -p "$ASAN_DIR/src"
    for v in $versions; do
        log "apt-get source --download-only nginx=$v"
        if (cd "$ASAN_DIR/src" && apt-get source -q --download-only "nginx=$v") \
               > "$ASAN_DIR/src/apt-source.log" 2>&1 && asan_orig_ok; then
            got=$v
            break
        fi
        log "nginx=$v: $(grep -m1 '^E:' "$ASAN_DIR/src/apt-source.log" || echo 'failed')"
    done
    [ -n "$got" ] || { tail -20 "$ASAN_DIR/src/apt-source.log" >&2; die "could not fetch $ASAN_ORIG"; }
}

# Checks left out of nginx core, never of the module, at compile time (a
# runtime suppression would start llvm-symbolizer in the nginx that
# daemonizes; the symbolizer then holds the harness' output pipe open).
asan_write_ignorelist() {
    printf '%s\n' \
        '# ngx_pstrdup() copies an empty string with memcpy(dst, NULL, 0);' \
        '# so does ngx_sprintf_str() for a %V of an empty string (the debug' \
        '# log: "http args" of a request without a query); and' \
        '# ngx_http_proxy_create_request() copies an empty ctx->vars.uri' \
        '# (NULL, 0) for a proxy_pass without a URI in a location reached' \
        '# by an internal redirect (try_files, error_page, rewrite ... last)' \
        '[nonnull-attribute]' \
        'fun:ngx_pstrdup' \
        'fun:ngx_sprintf_str' \
        'fun:ngx_http_proxy_create_request' \
        '# ngx_http_parse.c compares methods and headers four bytes at a' \
        '# time on x86 (NGX_HAVE_NONALIGNED), wherever a pipelined request' \
        '# starts in the buffer' \
        '[alignment]' \
        'src:*src/http/ngx_http_parse.c' \
        > "$ASAN_DIR/ubsan.ignorelist.tmp"
    if cmp -s "$ASAN_DIR/ubsan.ignorelist.tmp" "$ASAN_DIR/ubsan.ignorelist"; then
        rm -f "$ASAN_DIR/ubsan.ignorelist.tmp"
    else
        mv -f "$ASAN_DIR/ubsan.ignorelist.tmp" "$ASAN_DIR/ubsan.ignorelist"
    fi
}

build_asan() {
    ensure_pkgs "${PKGS_ASAN[@]}"
    asan_fetch_source

    # Debian's configure flags (nginx-dev), as the normal build: the same
    # paths, --with-compat and the same module signature as /usr/sbin/nginx
    # (so build/ngx_http_auth_pat_module.so, used by `run`, loads too).
    local conf_flags=/usr/share/nginx/src/conf_flags
    [ -f "$conf_flags" ] || die "$conf_flags missing (package nginx-dev)"
    local NGX_CONF_FLAGS=()
    # shellcheck disable=SC1090
    . "$conf_flags"
    local flags=("${NGX_CONF_FLAGS[@]}")

    # -O1 -g -fno-omit-frame-pointer: usable speed, exact stack traces.
    # -fsanitize-address-use-odr-indicator: the module's own (unused)
    #   ngx_modules[] is registered with ASan at its own address; without it,
    #   dlopen() poisons the binary's ngx_modules[] past the module's 16 bytes
    #   and the next reload stops in ngx_cycle_modules (global-buffer-overflow).
    # NGX_DEBUG_PALLOC: every ngx_palloc() is a malloc() of its own, so that
    #   ASan sees overruns between pool allocations, not only past a block.
    # NGX_HTTP_AUTH_PAT_FAULTS: the module's fault hook (a request header
    #   that fails a named allocation), for t/26-api-faults.t; never in the
    #   normal build.
    # -lcrypt: ASan's crypt_r() interceptor makes configure find crypt_r() in
    #   libc; without libcrypt it calls NULL (auth_basic with $6$ hashes).
    mkdir -p "$ASAN_DIR"
    asan_write_ignorelist
    local san="-fsanitize=address,undefined"
    local ccopt="-g -O1 -fno-omit-frame-pointer $san -fsanitize-address-use-odr-indicator"
    ccopt+=" -fsanitize-ignorelist=$ASAN_DIR/ubsan.ignorelist -DNGX_DEBUG_PALLOC=1"
    ccopt+=" -DNGX_HTTP_AUTH_PAT_FAULTS=1"
    local ldopt="$san -Wl,--push-state,--no-as-needed -lcrypt -Wl,--pop-state"
    local stamp_want
    stamp_want=$(printf '%s\n' "$ASAN_ORIG_SHA256" "$("$ASAN_CC" --version | head -1)" \
                 "${flags[@]}" "$ccopt" "$ldopt" "$ROOT" \
                 | cat - "$ROOT/config" "$ROOT/openapi/openapi.json" "$ROOT"/src/ui/* "$ASAN_DIR/ubsan.ignorelist" \
                 | sha256sum | cut -d' ' -f1)

    local tree=$ASAN_DIR/nginx-$ASAN_NGINX_VERSION
    if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$ASAN_DIR/.configured" 2>/dev/null)" != "$stamp_want" ]; then
        log "configuring nginx $ASAN_NGINX_VERSION ($ASAN_CC $san)"
        rm -rf "$tree" "$ASAN_DIR/.configured"
        tar -xzf "$ASAN_DIR/src/$ASAN_ORIG" -C "$ASAN_DIR" --no-same-owner
        [ -x "$tree/configure" ] || die "$ASAN_ORIG did not unpack to $tree"
        (cd "$tree" && ./configure "${flags[@]}" --with-cc="$ASAN_CC" \
            --with-cc-opt="$ccopt" --with-ld-opt="$ldopt" \
            --add-dynamic-module="$ROOT" > "$ASAN_DIR/configure.log" 2>&1) \
            || { tail -30 "$ASAN_DIR/configure.log" >&2; die "configure failed (see build/asan/configure.log)"; }
        echo "$stamp_want" > "$ASAN_DIR/.configured"
    fi

    log "compiling nginx and the module (asan)"
    make -s -C "$tree" -f objs/Makefile -j"$(nproc)" > "$ASAN_DIR/make.log" 2>&1 \
        || { tail -30 "$ASAN_DIR/make.log" >&2; die "compilation failed (see build/asan/make.log)"; }
    local f
    for f in nginx ngx_http_auth_pat_module.so; do
        cmp -s "$tree/objs/$f" "$ASAN_DIR/$f" && continue
        cp -f "$tree/objs/$f" "$ASAN_DIR/$f.tmp"
        mv -f "$ASAN_DIR/$f.tmp" "$ASAN_DIR/$f"
    done
    log "built $ASAN_DIR/nginx and $ASAN_DIR/ngx_http_auth_pat_module.so"
}

# LeakSanitizer suppressions, for what nginx core leaves to exit() by design:
# `nginx -t` and `nginx -s` exit with the cycle they read (ngx_init_cycle)
# and `nginx -s` with main()'s init-cycle pool. A suppressed block hides the
# blocks only it points to, so a pool that is never destroyed is not
# reported; malloc() leaks (hiredis, jansson, OpenSSL, the module) are.
asan_write_lsan_supp() {
    printf '%s\n' \
        '# nginx -t / -s: the configuration cycle, left to exit()' \
        'leak:ngx_init_cycle' \
        '# nginx -s: the pool of the init cycle made in main()' \
        'leak:ngx_create_pool' \
        > "$ASAN_DIR/lsan.supp.tmp"
    mv -f "$ASAN_DIR/lsan.supp.tmp" "$ASAN_DIR/lsan.supp"
}

run_asan_tests() {
    ensure_pkgs "${PKGS_TEST[@]}"
    ensure_test_npm
    asan_write_lsan_supp
    # The sanitizer runtime reads its options once, when a process starts:
    # nginx empties its workers' environment, but they are forked from the
    # master and keep the options it read.
    #   abort_on_error=1  a report ends the process with SIGABRT: nginx logs
    #                     "exited on signal 6" [alert] after the report (both
    #                     in error.log: a daemonized nginx points stderr at it)
    #   halt_on_error=1   UBSan stops at the first report (ASan always does)
    #   detect_odr_violation=0  the module and the binary both define
    #                     ngx_modules & co.: harmless, reported on dlopen
    #   detect_leaks=1    LeakSanitizer, with lsan.supp (above) for nginx core
    export ASAN_OPTIONS="abort_on_error=1:halt_on_error=1:detect_odr_violation=0:detect_leaks=1"
    export LSAN_OPTIONS="suppressions=$ASAN_DIR/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="abort_on_error=1:halt_on_error=1:print_stacktrace=1"
    export ASAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER
    # the harness (PAT_NGINX, PAT_MODULE), `build.sh run` in t/30-run.t
    # (NGINX_BIN) and the C unit tests of t/01-unit.t (PAT_SANITIZE, CC)
    export PAT_NGINX=$ASAN_DIR/nginx NGINX_BIN=$ASAN_DIR/nginx
    export PAT_MODULE=$ASAN_DIR/ngx_http_auth_pat_module.so
    export PAT_SANITIZE=1 CC=$ASAN_CC
    prove -r ${PROVE_ARGS:--j2} t/
}

# ---------------------------------------------------------------- fuzz
#
# libFuzzer targets, built by clang 14 with -fsanitize=fuzzer,address,
# undefined into build/fuzz/, one binary per parser family (t/fuzz/*.c):
#   pat_token  src/pat_token.c: dates, tokens, base62, UUIDs, UTF-8
#   resp       hiredis' reader (libhiredis.a) with the module's reply
#              allocator: replies the same however the input is cut
#   body       create/rotate body: jansson, then name, expiresAt, scopes
#   query      the list query (and back), the introspection form field,
#              media types
#   auth       the Authorization header, then the token's format and
#              checksum; generated tokens verify
#   records    what the store reads back: validation fields, index
#              entries, metadata records, scope lists
# The module's sources are compiled with the nginx headers and the
# ngx_auto_config.h of the normal build (build/nginx: `build` runs first)
# and linked with src/core/ngx_string.c of nginx 1.22.1, from the orig
# tarball that `asan` uses (asan_fetch_source: dpkg-dev's apt-get source,
# hence root and deb-src entries the first time), and t/fuzz/ngx_shim.c;
# llvm-14 gives llvm-symbolizer for the stack traces.
# Each target runs FUZZ_SECONDS (default 60), one after the other, one
# process, on its work corpus build/fuzz/corpus/TARGET/ (the seeds of
# t/fuzz/seeds/TARGET/ are copied in; what a run finds stays for the
# next), with the dictionary t/fuzz/TARGET.dict if any; FUZZ_TARGETS
# (words) picks targets.  A crash, sanitizer report, leak, timeout
# (FUZZ_TIMEOUT s an input, default 10), out-of-memory (2 GB) or failed
# property stops that target with the input in build/fuzz/crashes/TARGET/;
# the other targets still run, and the command fails.  Full logs:
# build/fuzz/TARGET.log.  Reproduce: build/fuzz/TARGET_fuzz FILE.
# Every input in t/fuzz/crashes/ (a finding, fixed) runs first, through
# the target its name starts with, as a regression test.

FUZZ_TARGET_LIST="pat_token resp body query auth records"

run_fuzz() {
    ensure_pkgs "${PKGS_FUZZ[@]}"
    build
    asan_fetch_source

    local dir=$BUILD/fuzz tree=$BUILD/nginx
    local secs=${FUZZ_SECONDS:-60} targets=${FUZZ_TARGETS:-$FUZZ_TARGET_LIST}
    local t
    for t in $targets; do
        [[ " $FUZZ_TARGET_LIST " == *" $t "* ]] || die "unknown fuzz target $t (of: $FUZZ_TARGET_LIST)"
    done
    [[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a positive number of seconds"
    grep -q "define NGINX_VERSION *\"$ASAN_NGINX_VERSION\"" "$tree/src/core/nginx.h" \
        || die "$NGINX_SRC is not nginx $ASAN_NGINX_VERSION, whose ngx_string.c the fuzz targets link"

    # nginx core's string functions (ngx_atoof, ngx_hextoi, ngx_unescape_uri,
    # ngx_strncasecmp...), pristine
    mkdir -p "$dir/nginx" "$dir/obj"
    tar -xzf "$ASAN_DIR/src/$ASAN_ORIG" -C "$dir/nginx" --strip-components=1 \
        "nginx-$ASAN_NGINX_VERSION/src/core/ngx_string.c"

    local cc=clang-14
    local cflags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
                  -fno-sanitize-recover=all -Wall -Wno-unused-parameter)
    local incs=(-I"$tree/src/core" -I"$tree/src/event" -I"$tree/src/event/modules"
                -I"$tree/src/os/unix" -I"$tree/objs" -I"$tree/src/http"
                -I"$tree/src/http/modules" -I"$tree/src/http/v2" -I"$ROOT/src")
    local o src
    log "compiling the fuzz targets"
    for src in "$dir/nginx/src/core/ngx_string.c" "$ROOT/t/fuzz/ngx_shim.c" \
               "$ROOT/src/ngx_http_auth_pat_parse.c" "$ROOT/src/ngx_http_auth_pat_redis_resp.c" \
               "$ROOT/src/pat_token.c"; do
        o=$(basename "$src" .c)
        "$cc" "${cflags[@]}" "${incs[@]}" -c -o "$dir/obj/$o.o" "$src" \
            || die "compilation of $src failed"
    done
    local ngx=("$dir/obj/ngx_string.o" "$dir/obj/ngx_shim.o")
    local objs hiredis
    hiredis=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libhiredis.a
    [ -f "$hiredis" ] || die "$hiredis missing (package libhiredis-dev)"
    for t in $targets; do
        case $t in
            pat_token) objs=(-lcrypto) ;;
            resp)      objs=("$dir/obj/ngx_http_auth_pat_redis_resp.o" "$hiredis") ;;
            auth)      objs=("$dir/obj/ngx_http_auth_pat_parse.o" "${ngx[@]}" -ljansson -lcrypto) ;;
            *)         objs=("$dir/obj/ngx_http_auth_pat_parse.o" "$dir/obj/pat_token.o"
                             "${ngx[@]}" -ljansson -lcrypto) ;;
        esac
        "$cc" "${cflags[@]}" "${incs[@]}" -o "$dir/${t}_fuzz" \
            "$ROOT/t/fuzz/${t}_fuzz.c" "${objs[@]}" \
            || die "linking the fuzz target $t failed"
    done

    export ASAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    local failed=() rc args summary=() log_t execs last report reg
    for t in $targets; do
        mkdir -p "$dir/corpus/$t" "$dir/crashes/$t"
        if [ -d "$ROOT/t/fuzz/seeds/$t" ]; then
            cp -n "$ROOT/t/fuzz/seeds/$t/"* "$dir/corpus/$t/"
        fi
        args=(-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048
              -timeout="${FUZZ_TIMEOUT:-10}" -max_len=4096
              -artifact_prefix="$dir/crashes/$t/")
        [ -f "$ROOT/t/fuzz/$t.dict" ] && args+=(-dict="$ROOT/t/fuzz/$t.dict")
        log_t=$dir/$t.log
        reg=("$ROOT/t/fuzz/crashes/$t"-*)
        if [ -e "${reg[0]}" ]; then
            log "fuzz $t: ${#reg[@]} earlier findings (t/fuzz/crashes/$t-*) as regression inputs"
            if ! "$dir/${t}_fuzz" -rss_limit_mb=2048 "${reg[@]}" > "$dir/$t.regress.log" 2>&1; then
                tail -n 40 "$dir/$t.regress.log" >&2
                failed+=("$t")
                summary+=("$(printf '%-10s FAIL  an earlier finding came back (see build/fuzz/%s.regress.log)' "$t" "$t")")
                continue
            fi
        fi
        log "fuzzing $t for $secs s ($(ls "$dir/corpus/$t" | wc -l) inputs in build/fuzz/corpus/$t)"
        rc=0
        "$dir/${t}_fuzz" "${args[@]}" "$dir/corpus/$t" > "$log_t" 2>&1 || rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_t" | tail -1)
        last=$(sed -n -E 's/^#[0-9]+.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/p' "$log_t" | tail -1)
        if [ "$rc" -eq 0 ]; then
            grep -E '^#[0-9]+[[:space:]]+DONE|^stat::' "$log_t" >&2 || true
            summary+=("$(printf '%-10s ok    execs %-10s %s' "$t" "${execs:-?}" "$last")")
        else
            # the report: from its first line (sanitizer, libFuzzer or a
            # failed property) to the end
            report=$(sed -n -E '/^(==[0-9]+== ?ERROR|property failed|.*runtime error:)/,$p' "$log_t" \
                     | head -n 150)
            [ -n "$report" ] || report=$(tail -n 40 "$log_t")
            printf '%s\n' "$report" >&2
            grep 'Test unit written to' "$log_t" >&2 || true
            failed+=("$t")
            summary+=("$(printf '%-10s FAIL  execs %-10s %s (exit %s, see build/fuzz/%s.log)' \
                      "$t" "${execs:-?}" "$last" "$rc" "$t")")
        fi
    done

    log "fuzz summary (${secs} s a target)"
    printf '  %s\n' "${summary[@]}" >&2
    if [ ${#failed[@]} -gt 0 ]; then
        die "fuzzing found a failure in: ${failed[*]} (inputs in build/fuzz/crashes/)"
    fi
}

case "${1:-build}" in
    build) build ;;
    test)  build; run_tests ;;
    run)   build; run_local ;;
    bench) build; ensure_pkgs "${PKGS_BENCH[@]}"; exec perl "$ROOT/t/bench/bench.pl" ;;
    profile)
        build; ensure_pkgs "${PKGS_PROFILE[@]}"
        exec perl "$ROOT/t/bench/profile.pl" ;;
    asan)  build; build_asan; run_asan_tests ;;
    fuzz)  run_fuzz ;;
    deb)   [ -n "${PAT_DEB_SO:-}" ] || build; build_deb ;;
    install)
        # before any build: dpkg -i needs root
        [ "$(id -u)" -eq 0 ] || die "install needs root: it runs dpkg -i (./build.sh deb builds the package as any user)"
        [ -n "${PAT_DEB_SO:-}" ] || build
        build_deb; install_deb ;;
    *)     die "usage: $0 [build|test|run|bench|profile|asan|fuzz|deb|install]" ;;
esac
