# Caller identity: auth_pat_api_user, bearer tokens, auth_pat in front,
# auth_basic bootstrap; 401/400/503 answers of the API.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api uuid_re secrecy_scan);
use MIME::Base64 ();

my $t = PatTest->new;
my $redis = $t->start_redis(aof => 1);
# htpasswd entry for "admin:s3cret" ({PLAIN} scheme: tests only)
$t->write_file('htpasswd', "admin:{PLAIN}s3cret\n");
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;

    # callers by bearer token only
    location /v1/personal-access-tokens {
        auth_pat_api;
    }
    # an operator-trusted header first, then bearer tokens
    location /hdr/tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    # bootstrap: auth_basic or a bearer token
    location /boot/tokens {
        satisfy any;
        auth_basic "admin";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat "boot";
        auth_pat_api;
        auth_pat_api_user $remote_user;
    }
    # auth_pat in the access phase guards the API
    location /guarded/tokens {
        auth_pat "guarded";
        auth_pat_api;
    }
    location /static/ { auth_pat "static"; alias %%HTML%%/; }
}
EOF2
$t->start_nginx;

sub err_is {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status");
    is($r->{json}{error}, $code, "$name: $code") or diag $r->{content};
}

# bootstrap a first token with auth_basic
my $boot = $t->http(POST => '/boot/tokens', { headers => {
    Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:s3cret', ''),
    'Content-Type' => 'application/json' }, content => '{"name":"first"}' });
is($boot->{status}, 201, 'bootstrap: auth_basic user creates a first token');
my $tok = $boot->{json}{data}{token};
push @{ $t->{issued} }, $tok;
my $bad = $t->http(POST => '/boot/tokens', { headers => {
    Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:wrong', ''),
    'Content-Type' => 'application/json' }, content => '{"name":"x"}' });
err_is($bad, 401, 'unauthorized', 'bootstrap: wrong password');
is($bad->{json}{message}, 'the credentials were refused',
   'bootstrap: a wrong password is told so, not "a bearer token is required"');
my $wa = $bad->{headers}{'www-authenticate'} // '';
like(ref $wa ? "@$wa" : $wa, qr/Basic realm="admin"/,
     'bootstrap: wrong password: the Basic challenge stays');
my $none = $t->http(POST => '/boot/tokens', { headers => {
    'Content-Type' => 'application/json' }, content => '{"name":"x"}' });
is($none->{json}{message}, 'a bearer token is required',
   'bootstrap: no credentials at all: "a bearer token is required"');
my $basic = $t->get('/static/x', { Authorization => 'Basic '
    . MIME::Base64::encode_base64('admin:s3cret', '') });
is($basic->{json}{message}, 'a bearer token is required',
   'without satisfy any, Basic credentials are no bearer token');

# the token owner is "admin" everywhere
my $r = api($t, GET => '/v1/personal-access-tokens', bearer => $tok);
is($r->{status}, 200, 'bearer caller: 200');
is($r->{json}{totalCount}, 1, 'bearer caller sees the bootstrapped token');
is($r->{json}{items}[0]{name}, 'first', 'bearer caller: the token');
is(api($t, GET => '', base => '/boot/tokens', bearer => $tok)->{json}{totalCount}, 1, 'bootstrap location accepts the bearer too');
is(api($t, GET => '', base => '/guarded/tokens', bearer => $tok)->{json}{totalCount}, 1, 'guarded location: identity from auth_pat');
err_is(api($t, GET => '', base => '/guarded/tokens'), 401, 'unauthorized', 'guarded location without a token');

# a header identity wins over a bearer token
my $h = api($t, POST => '', base => '/hdr/tokens', user => 'zoe', bearer => $tok, body => { name => 'zoe-1' });
is($h->{status}, 201, 'header identity: 201');
is(api($t, GET => '', base => '/hdr/tokens', user => 'zoe')->{json}{totalCount}, 1, 'the token belongs to zoe');
is(api($t, GET => '', base => '/hdr/tokens', bearer => $tok)->{json}{totalCount}, 1, 'an empty header falls back to the bearer (admin)');
is(api($t, GET => '', base => '/hdr/tokens', user => 'x' x 257)->{status}, 400, 'an identity over 256 bytes: 400');

# no or bad credentials
$r = api($t, GET => '/v1/personal-access-tokens');
err_is($r, 401, 'unauthorized', 'no credentials');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="api"', 'no credentials: challenge');
$r = api($t, POST => '/v1/personal-access-tokens', body => { name => 'x' });
err_is($r, 401, 'unauthorized', 'create without credentials');
$r = api($t, GET => '/v1/personal-access-tokens', bearer => 'pat_garbage');
err_is($r, 401, 'unauthorized', 'bad token');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="api", error="invalid_token"', 'bad token: invalid_token');
$r = api($t, GET => '/v1/personal-access-tokens', headers => { Authorization => 'Bearer a b' });
err_is($r, 400, 'invalid_request', 'malformed Authorization');
$r = api($t, GET => '/v1/personal-access-tokens', headers => { Authorization => 'Basic YTpi' });
err_is($r, 401, 'unauthorized', 'Basic credentials on a bearer-only API');

# Redis down: 503 for every route, never 5xx otherwise, never 401
$t->kill_redis($redis, 'KILL');
my $id = $h->{json}{data}{id};
err_is(api($t, GET => '/v1/personal-access-tokens', bearer => $tok), 503, 'unavailable', 'list, Redis down (bearer)');
err_is(api($t, GET => '', base => '/hdr/tokens', user => 'zoe'), 503, 'unavailable', 'list, Redis down');
err_is(api($t, POST => '', base => '/hdr/tokens', user => 'zoe', body => { name => 'y' }), 503, 'unavailable', 'create, Redis down');
err_is(api($t, DELETE => "/$id", base => '/hdr/tokens', user => 'zoe'), 503, 'unavailable', 'revoke, Redis down');
err_is(api($t, POST => "/$id/rotate", base => '/hdr/tokens', user => 'zoe'), 503, 'unavailable', 'rotate, Redis down');
err_is(api($t, POST => '', base => '/hdr/tokens', user => 'zoe', body => { name => '' }), 422, 'validation_error', 'validation still answers with Redis down');
$t->restart_redis($redis);
my $ok;
for (1..60) { $ok = api($t, GET => '', base => '/hdr/tokens', user => 'zoe')->{status}; last if $ok == 200; select undef, undef, undef, 0.1 }
is($ok, 200, 'the API recovers after Redis restarts');
# each worker reconnects on its own backoff: a request may meet one that
# is still down (503) after another answered
my $after;
for (1..60) { $after = api($t, GET => '', base => '/hdr/tokens', user => 'zoe'); last if $after->{status} == 200; select undef, undef, undef, 0.1 }
is($after->{json}{totalCount}, 1, 'no data lost');

secrecy_scan($t);
$t->done;
done_testing;
