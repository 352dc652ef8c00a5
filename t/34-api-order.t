# The order of the API's checks (issue 13, item 5; DESIGN): the caller is
# identified first (401), before the route (404), the method (405), the
# scope (403), the media type (415), the body's size (413) and its syntax
# (400), and the validation (422). An anonymous request never has its body
# read or parsed; nginx core's early 413 on Content-Length is the one
# exception.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);
use PatTest;
use PatApi qw(api);
use PatToken qw(seed_token make_token now_ms);

my $t = PatTest->new;
$t->start_redis;
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
limit_req_zone $http_x_user zone=api:1m rate=1r/m;

server {
    listen 127.0.0.1:%%PORT%%;
    client_max_body_size 1k;

    # limit_req before the API: its 429 is the API's JSON error
    location /v4/tokens {
        limit_req zone=api;
        limit_req_status 429;
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }

    # callers by bearer token only
    location /v1/tokens {
        auth_pat_api;
    }
    # callers named by nginx (X-User), or by bearer token when empty
    location /v2/tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    # a bearer caller needs the scope "admin" to create
    location /v3/tokens {
        auth_pat_api;
        auth_pat_api_scope admin;
    }
}
EOF2
$t->start_nginx;

my $id = '123e4567-e89b-42d3-a456-426614174000';
my $tok = seed_token($t, user => 'alice', name => 'ci', expires => now_ms() + 3600_000);
my $bearer = { Authorization => "Bearer $tok->{token}" };

sub req {
    my ($m, $path, %o) = @_;
    my %h = (%{ $o{headers} || {} });
    my %r = (headers => \%h);
    if (exists $o{body}) {
        $r{content} = $o{body};
        $h{'Content-Type'} //= 'application/json';
    }
    return $t->http($m, $path, \%r);
}
sub is_err {
    my ($r, $status, $code, $what) = @_;
    is($r->{status}, $status, "$what: $status");
    is(($r->{json} || {})->{error}, $code, "$what: \"$code\"");
}

# --- anonymous: 401 whatever else is wrong
for my $base ('/v1/tokens', '/v2/tokens') {
    for my $case (
        [ 'malformed JSON',        POST => '',            body => '{not json' ],
        [ 'a valid body',          POST => '',            body => '{"name":"x"}' ],
        [ 'text/plain',            POST => '',            body => 'hi', headers => { 'Content-Type' => 'text/plain' } ],
        [ 'a bad name',            POST => '',            body => '{"name":""}' ],
        [ 'an unknown route',      GET  => '/nope/x' ],
        [ 'a wrong method',        PUT  => '' ],
        [ 'an id not a UUID',      GET  => '/not-a-uuid' ],
        [ 'a bad query',           GET  => '?page_size=abc' ],
        [ 'a query too long',      GET  => '?search_term=' . ('x' x 5000) ],
        [ 'rotate, malformed JSON', POST => "/$id/rotate", body => '{' ],
    ) {
        my ($what, $m, $path, %o) = @$case;
        is_err(req($m, "$base$path", %o), 401, 'unauthorized', "anonymous, $base, $what");
    }
    is_err(req(POST => "$base", body => '{not json', headers => { Authorization => 'Bearer ' . make_token() }),
           401, 'unauthorized', "an unknown token, $base, malformed JSON");
}

# a chunked body over the limit: read only once the caller is known
sub chunked {
    my ($path, $hdrs) = @_;
    my $chunk = 'x' x 2048;
    return $t->raw_http("POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n$hdrs"
                        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $chunk, $chunk));
}
like(chunked('/v1/tokens', ''), qr{^HTTP/1\.1 401 }, 'anonymous, a chunked body over the limit: 401');
like(chunked('/v1/tokens', "Authorization: Bearer $tok->{token}\r\n"), qr{^HTTP/1\.1 413 },
     'identified, a chunked body over the limit: 413');

# nginx core refuses a Content-Length over client_max_body_size before any
# module runs: the one exception (README)
is(req(POST => '/v1/tokens', body => 'x' x 2000)->{status}, 413,
   'anonymous, Content-Length over the limit: 413 from nginx core');

# limit_req_status 429 in an API location: the JSON error rate_limited
{
    my $first = api($t, GET => '', user => 'lim', base => '/v4/tokens');
    is($first->{status}, 200, 'limit_req: the first request passes');
    my $r = api($t, GET => '', user => 'lim', base => '/v4/tokens');
    is($r->{status}, 429, 'limit_req: the second answers 429');
    is($r->{json}{error}, 'rate_limited', '... with the JSON error rate_limited');
    ok(length($r->{json}{message} // ''), '... and a message');
}

# Expect: 100-continue: an anonymous client is refused without being asked
# for its body
sub expect_continue {
    my ($hdrs) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Timeout => 5)
        or die "connect: $!";
    syswrite($s, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\n$hdrs"
                 . "Content-Type: application/json\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n");
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $end = time + 5;
    while (time < $end && $buf !~ /\r\n\r\n/ && $sel->can_read($end - time)) {
        sysread($s, $buf, 4096, length $buf) or last;
    }
    return ($s, $buf);
}
{
    my ($s, $buf) = expect_continue('');
    like($buf, qr{^HTTP/1\.1 401 }, 'anonymous, Expect: 100-continue: 401 at once');
    unlike($buf, qr/100 Continue/, 'anonymous, Expect: 100-continue: no "100 Continue"');
    close $s;

    ($s, $buf) = expect_continue("Authorization: Bearer $tok->{token}\r\n");
    like($buf, qr{^HTTP/1\.1 100 Continue}, 'identified, Expect: 100-continue: asked for the body');
    syswrite($s, '{"name":"e"}');
    my $sel = IO::Select->new($s);
    my $end = time + 5;
    while (time < $end && $buf !~ /HTTP\/1\.1 201 .*\r\n\r\n/s && $sel->can_read($end - time)) {
        sysread($s, $buf, 4096, length $buf) or last;
    }
    like($buf, qr{HTTP/1\.1 201 }, 'identified, Expect: 100-continue: then 201');
    close $s;
}

# an anonymous request's body is discarded, never parsed as the next request
{
    my $body = 'GET /v2/tokens HTTP/1.1';
    my $out = $t->raw_http("POST /v2/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           . "Content-Length: " . length($body) . "\r\n\r\n$body"
                           . "GET /v2/tokens HTTP/1.1\r\nHost: x\r\nX-User: bob\r\nConnection: close\r\n\r\n");
    my @st = $out =~ m{^HTTP/1\.1 (\d+)}mg;
    is("@st", '401 200', 'keepalive: the anonymous body is discarded, the next request answered');
}

# --- identified: each check in its turn
for my $who ([ 'bearer', $bearer ], [ 'X-User', { 'X-User' => 'alice' } ]) {
    my ($name, $h) = @$who;
    my $base = $name eq 'bearer' ? '/v1/tokens' : '/v2/tokens';
    is_err(req(GET => "$base/nope/x", headers => $h), 404, 'not_found', "$name: an unknown route");
    my $r = req(PUT => "$base", headers => $h, body => '{');
    is_err($r, 405, 'method_not_allowed', "$name: a wrong method with a malformed body");
    is($r->{headers}{allow}, 'GET, HEAD, POST', "$name: Allow");
    is_err(req(PUT => "$base/not-a-uuid", headers => $h), 405, 'method_not_allowed',
           "$name: a wrong method on an id not a UUID");
    is_err(req(POST => "$base", headers => { %$h, 'Content-Type' => 'text/plain' }, body => '{'),
           415, 'unsupported_media_type', "$name: text/plain with a malformed body");
    is_err(req(POST => "$base/not-a-uuid/rotate", headers => { %$h, 'Content-Type' => 'text/plain' }, body => '{}'),
           415, 'unsupported_media_type', "$name: text/plain to rotate an id not a UUID");
    is_err(req(POST => "$base", headers => $h, body => '{not json'), 400, 'invalid_request', "$name: malformed JSON");
    is_err(req(GET => "$base/not-a-uuid", headers => $h), 400, 'invalid_request', "$name: an id not a UUID");
    is_err(req(GET => "$base?page_size=abc", headers => $h), 400, 'invalid_request', "$name: a bad query");
    is_err(req(POST => "$base", headers => $h, body => '{"name":""}'), 422, 'validation_error', "$name: an empty name");
    is(req(POST => "$base", headers => $h, body => '{"name":"ok"}')->{status}, 201, "$name: a good create");
}

# the API's scope, before the media type and the body
my $r = req(POST => '/v3/tokens', headers => { %$bearer, 'Content-Type' => 'text/plain' }, body => '{');
is_err($r, 403, 'insufficient_scope', 'a bearer caller without the API scope, text/plain, malformed body');
is_err(req(PUT => '/v3/tokens', headers => $bearer), 405, 'method_not_allowed',
       'a bearer caller without the API scope, a wrong method: 405 first');
is(req(GET => '/v3/tokens', headers => $bearer)->{status}, 200, 'listing needs no scope');

$t->done;
done_testing;
