#!/usr/bin/env bash
#
# ngx_http_auth_pat_module: build, test, run and benchmark.
#
#   ./build.sh          build build/ngx_http_auth_pat_module.so
#   ./build.sh test     build, then run every test (prove -r t/)
#   ./build.sh run      build, start Redis + nginx on 127.0.0.1:8080 (foreground)
#   ./build.sh bench    build, then the wrk benchmark on loopback
#   ./build.sh profile  build, then instructions per request under callgrind
#
# Environment:
#   NGINX_SRC    nginx source tree to configure against
#                (default /usr/share/nginx/src, from Debian's nginx-dev)
#   NGINX_BIN    nginx binary used by run/test/bench (default /usr/sbin/nginx)
#   PAT_CFLAGS   extra compiler flags for the module
#   PAT_RUN_DIR  state of `run` (default ./.run)

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
PKGS_TEST=(perl redis-server)
PKGS_BENCH=(wrk redis-server)
PKGS_PROFILE=(wrk redis-server valgrind)

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
# the module's `config`, the nginx source tree, or the flags.
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
                 | cat - "$ROOT/config" | sha256sum | cut -d' ' -f1)

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

run_tests() {
    ensure_pkgs "${PKGS_TEST[@]}"
    export NGINX_BIN PAT_MODULE=$MODULE
    prove -r ${PROVE_ARGS:--j2} t/
}

# ---------------------------------------------------------------- run

print_next_steps() {
    local pw=$1 base=http://127.0.0.1:8080
    local api=$base/v1/personal-access-tokens
    local tok="sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/'"
    local id="sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/'"
    cat <<EOF

nginx is listening on $base (Redis: $RUN_DIR/redis.sock).
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

run_local() {
    ensure_pkgs "${PKGS_RUN[@]}"
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
    sed -e "s#modules/ngx_http_auth_pat_module.so#$MODULE#" \
        -e "s#/run/redis/redis-server.sock#$rd/redis.sock#" \
        -e "s#/etc/nginx/pat.key#$rd/pat.key#" \
        -e "s#/etc/nginx/pat.htpasswd#$rd/pat.htpasswd#" \
        -e "s#/var/log/nginx/#$rd/#" \
        -e "s#^pid .*#pid $rd/nginx.pid;#" \
        nginx.conf.example > "$rd/nginx.conf"

    local redis_pid nginx_pid
    redis-server "$rd/redis.conf" &
    redis_pid=$!
    for _ in $(seq 100); do [ -S "$rd/redis.sock" ] && break; sleep 0.05; done
    [ -S "$rd/redis.sock" ] || die "redis did not start (see $rd/redis.log)"

    "$NGINX_BIN" -t -p "$rd" -c "$rd/nginx.conf" -q \
        || { kill "$redis_pid"; die "nginx configuration test failed"; }
    "$NGINX_BIN" -p "$rd" -c "$rd/nginx.conf" -g 'daemon off;' &
    nginx_pid=$!

    stop_all() {
        trap - INT TERM EXIT
        log "stopping nginx and redis"
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    }
    trap stop_all INT TERM EXIT

    for _ in $(seq 100); do
        curl -s -o /dev/null http://127.0.0.1:8080/ 2>/dev/null && break
        sleep 0.05
    done

    print_next_steps "$(cat "$rd/password")"
    wait "$nginx_pid"
}

case "${1:-build}" in
    build) build ;;
    test)  build; run_tests ;;
    run)   build; run_local ;;
    bench) build; ensure_pkgs "${PKGS_BENCH[@]}"; exec perl "$ROOT/t/bench/bench.pl" ;;
    profile)
        build; ensure_pkgs "${PKGS_PROFILE[@]}"
        exec perl "$ROOT/t/bench/profile.pl" ;;
    *)     die "usage: $0 [build|test|run|bench|profile]" ;;
esac
