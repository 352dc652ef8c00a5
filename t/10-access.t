# auth_pat in the access phase: RFC 6750 answers, variables upstream,
# hide_credentials, satisfy any, auth_pat off (issue: Redis/access).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use PatTest;
use PatToken qw(make_token seed_token now_ms);

my $t = PatTest->new;
$t->start_redis;
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;

server {
    listen 127.0.0.1:%%PORT%%;
    auth_pat "example";

    location /static/ { alias %%HTML%%/; }
    location /open/   { auth_pat off; alias %%HTML%%/; }
    location /quote/  { auth_pat 'say "hi"'; alias %%HTML%%/; }

    location /api/ {
        proxy_set_header X-User-Id $pat_user_id;
        proxy_set_header X-Token-Id $pat_token_id;
        proxy_set_header X-Token-Name $pat_token_name;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
    location /hidden/ {
        auth_pat_hide_credentials on;
        proxy_set_header X-User-Id $pat_user_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
    location /any-local/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        proxy_set_header X-User-Id $pat_user_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
    location /any-remote/ {
        satisfy any;
        allow 192.0.2.1;
        deny all;
        proxy_set_header X-User-Id $pat_user_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
    location /any-upstream401/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        proxy_pass http://127.0.0.1:%%PORT2%%/deny/;
    }
    location /custom/ {
        error_page 401 /errors/401.txt;
        alias %%HTML%%/;
    }
    location /errors/ { auth_pat off; alias %%HTML%%/; }
    location /custom2/ {
        error_page 401 /errors2/401.txt;
        alias %%HTML%%/;
    }
    location /errors2/ { alias %%HTML%%/; }
    location /delayed/ {
        auth_delay 400ms;
        alias %%HTML%%/;
    }
}

server {
    listen 127.0.0.1:%%PORT2%%;
    location /deny/ {
        add_header WWW-Authenticate 'Basic realm="upstream"' always;
        return 401 "upstream says no\n";
    }
    location / {
        return 200 "user=[$http_x_user_id] id=[$http_x_token_id] name=[$http_x_token_name] auth=[$http_authorization]\n";
    }
}
EOF2
$t->start_nginx;

my $valid = seed_token($t, user => 'alice', name => 'ci bot', expires => now_ms() + 3600_000);
my $never = seed_token($t, user => 'bob', name => 'forever');
my $past  = seed_token($t, user => 'alice', expires => now_ms() - 1000);
my $short = seed_token($t, user => 'alice', expires => now_ms() + 1500);

sub bearer { return { Authorization => "Bearer $_[0]" } }

sub hmget_calls {
    my $info = $t->redis_cmd('INFO', 'commandstats');
    return $info =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0;
}

# --- valid tokens
my $r = $t->get('/static/protected.txt', bearer($valid->{token}));
is($r->{status}, 200, 'valid token: 200');
is($r->{content}, "secret\n", 'valid token: the file');

$r = $t->get('/static/protected.txt', bearer($never->{token}));
is($r->{status}, 200, 'token without expiry: 200');

$r = $t->get('/static/protected.txt', { Authorization => "bearer $valid->{token}" });
is($r->{status}, 200, 'lowercase "bearer" scheme: 200');

$r = $t->get('/static/protected.txt', { Authorization => "BEARER   $valid->{token}" });
is($r->{status}, 200, 'uppercase scheme and several spaces: 200');

# --- no credentials
$r = $t->get('/static/protected.txt');
is($r->{status}, 401, 'no header: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="example"', 'no header: challenge without error');
is_deeply($r->{json}, { error => 'unauthorized', message => 'a bearer token is required' }, 'no header: JSON body');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON content type');
is($r->{headers}{'cache-control'}, 'no-store', 'no-store');

$r = $t->get('/static/protected.txt', { Authorization => 'Basic YWxpY2U6c2VjcmV0' });
is($r->{status}, 401, 'another scheme: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="example"', 'another scheme: no error attribute');

$r = $t->get('/static/protected.txt?access_token=' . $valid->{token});
is($r->{status}, 401, 'token in the query string is ignored');

$r = $t->get('/quote/protected.txt');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="say \"hi\""', 'realm is escaped');

# --- invalid tokens
my $calls = hmget_calls();
for my $case (
    [ 'bad checksum', substr($valid->{token}, 0, -1) . (substr($valid->{token}, -1) eq 'A' ? 'B' : 'A') ],
    [ 'flipped body char', do { my $x = $valid->{token}; substr($x, 10, 1) = substr($x, 10, 1) eq 'a' ? 'b' : 'a'; $x } ],
    [ 'wrong prefix', make_token('ghp_') ],
    [ 'truncated', substr($valid->{token}, 0, 20) ],
    [ 'garbage', 'hello' ],
) {
    my ($name, $tok) = @$case;
    $r = $t->get('/static/protected.txt', bearer($tok));
    is($r->{status}, 401, "$name: 401");
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="example", error="invalid_token"', "$name: invalid_token");
    is($r->{json}{error}, 'unauthorized', "$name: JSON error");
}
is(hmget_calls(), $calls, 'format and checksum failures never reach Redis');

$r = $t->get('/static/protected.txt', bearer(make_token()));
is($r->{status}, 401, 'unknown token: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="example", error="invalid_token"', 'unknown: invalid_token');
is(hmget_calls(), $calls + 1, 'a well-formed token costs one round trip');

$r = $t->get('/static/protected.txt', bearer($past->{token}));
is($r->{status}, 401, 'expired by time (record still present): 401');

$r = $t->get('/static/protected.txt', bearer($short->{token}));
is($r->{status}, 200, 'short-lived token works before expiry');
Time::HiRes::sleep(1.7);
is($t->redis_cmd('EXISTS', $short->{key}), 0, 'the record vanished at expiresAt');
$r = $t->get('/static/protected.txt', bearer($short->{token}));
is($r->{status}, 401, 'expired by a vanished record: 401');

# --- malformed headers
# 'Bearer ==' and 'Bearer =': found by ./build.sh fuzz (t/fuzz/crashes/auth-*)
for my $h ('Bearer', 'Bearer ', 'Bearer a b', 'Bearer tok,en', 'Bearer "quoted"', 'Bearer ==', 'Bearer =') {
    $r = $t->get('/static/protected.txt', { Authorization => $h });
    is($r->{status}, 400, "malformed '$h': 400");
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="example", error="invalid_request"', "malformed '$h': invalid_request");
    is($r->{json}{error}, 'invalid_request', "malformed '$h': JSON");
}

my $raw = $t->raw_http("GET /static/protected.txt HTTP/1.0\r\nAuthorization: Bearer \xc3\xa9t\xc3\xa9\r\n\r\n");
like($raw, qr{^HTTP/1\.1 400 }, 'non-ASCII bytes in the token: 400');
like($raw, qr/error="invalid_request"/, 'non-ASCII bytes: invalid_request');

# --- auth_pat off
is($t->get('/open/protected.txt')->{status}, 200, 'auth_pat off opens a location');

# --- upstream sees the identity
$r = $t->get('/api/x', bearer($valid->{token}));
is($r->{status}, 200, 'proxied with a valid token');
like($r->{content}, qr/user=\[alice\] id=\[\Q$valid->{id}\E\] name=\[ci bot\]/, 'variables reach the upstream');
like($r->{content}, qr/auth=\[Bearer \Q$valid->{token}\E\]/, 'Authorization passed on by default');

$r = $t->get('/hidden/x', bearer($valid->{token}));
like($r->{content}, qr/user=\[alice\]/, 'hide_credentials: identity passed');
like($r->{content}, qr/auth=\[\]/, 'hide_credentials: Authorization removed');

$r = $t->get('/api/x', bearer(make_token()));
is($r->{status}, 401, 'upstream not reached with a bad token');

# --- satisfy any
$r = $t->get('/any-local/x');
is($r->{status}, 200, 'satisfy any: allowed address needs no token');
like($r->{content}, qr/user=\[\]/, 'satisfy any: no identity without a token');
$r = $t->get('/any-remote/x');
is($r->{status}, 401, 'satisfy any: denied address without token: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="example"', 'satisfy any: challenge');
$r = $t->get('/any-remote/x', bearer($valid->{token}));
is($r->{status}, 200, 'satisfy any: denied address with a valid token: 200');
like($r->{content}, qr/user=\[alice\]/, 'satisfy any: identity');
$r = $t->get('/any-remote/x', bearer(make_token()));
is($r->{status}, 401, 'satisfy any: denied address with a bad token: 401');
is($r->{json}{error}, 'unauthorized', 'satisfy any: the JSON body');
$r = $t->get('/any-upstream401/x');
is($r->{status}, 401, 'satisfy any, let in by allow: the upstream\'s own 401');
is($r->{content}, "upstream says no\n", 'satisfy any, let in by allow: the upstream\'s body is left alone');

# --- refusals go through nginx's error handling, as auth_basic's do
$t->write_file('html/401.txt', "custom page\n", 0644);
$r = $t->get('/custom/protected.txt');
is($r->{status}, 401, 'error_page 401: status');
is($r->{content}, "custom page\n", 'error_page 401: the operator\'s page');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="example"', 'error_page 401: the challenge stays');
$r = $t->get('/custom/protected.txt', bearer($valid->{token}));
is($r->{status}, 200, 'error_page 401: a valid token still passes');
$r = $t->get('/custom2/protected.txt');
is($r->{status}, 401, 'error_page 401 to a protected page: 401');
is($r->{json}{error}, 'unauthorized', 'error_page 401 to a protected page: the JSON body');
is(ref($r->{headers}{'www-authenticate'}), '', 'error_page 401 to a protected page: one challenge, not two')
    or diag explain $r->{headers}{'www-authenticate'};
my $t0 = time;
$r = $t->get('/delayed/protected.txt', bearer(make_token()));
is($r->{status}, 401, 'auth_delay: 401');
cmp_ok(time - $t0, '>=', 0.35, 'auth_delay: the 401 is delayed');
is($r->{json}{error}, 'unauthorized', 'auth_delay: the JSON body');

# --- the plaintext is never logged, even at debug-ish info level
my $log = $t->error_log;
for my $tok ($valid, $never, $past, $short) {
    unlike($log, qr/\Q$tok->{token}\E/, 'token not in error.log');
}

$t->done;
done_testing;
