# DESIGN: a write (POST, DELETE) from an auth_pat_api_user caller (ambient
# credentials: Basic, an SSO cookie) that a browser marks as cross-site is
# 403 "forbidden": Sec-Fetch-Site other than same-origin or none, or,
# without it, an Origin whose host and port are not the request's Host.
# Reads, bearer callers and clients that send neither header are not
# affected.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api);
use PatToken qw(seed_token now_ms);

my $t = PatTest->new;
$t->start_redis;
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
}
EOF2
$t->start_nginx;
my $port = $t->port;

sub create {
    my (%h) = @_;
    return api($t, POST => '', user => 'alice', body => { name => 'x' }, headers => \%h);
}
sub forbidden {
    my ($r, $what) = @_;
    is($r->{status}, 403, "$what: 403");
    is(($r->{json} || {})->{error}, 'forbidden', "$what: \"forbidden\"");
}

is(create()->{status}, 201, 'no Sec-Fetch-Site, no Origin (curl, SDKs): 201');
is(create('Sec-Fetch-Site' => 'same-origin')->{status}, 201, 'Sec-Fetch-Site: same-origin: 201');
is(create('Sec-Fetch-Site' => 'none')->{status}, 201, 'Sec-Fetch-Site: none (typed by the user): 201');
forbidden(create('Sec-Fetch-Site' => 'cross-site'), 'Sec-Fetch-Site: cross-site');
forbidden(create('Sec-Fetch-Site' => 'same-site'), 'Sec-Fetch-Site: same-site (a sibling subdomain)');
forbidden(create('Sec-Fetch-Site' => 'cross-site', Origin => "http://127.0.0.1:$port"),
          'Sec-Fetch-Site decides over a matching Origin');

is(create(Origin => "http://127.0.0.1:$port")->{status}, 201, 'Origin of this host and port: 201');
is(create(Origin => "HTTP://127.0.0.1:$port")->{status}, 201, 'Origin, scheme in capitals: 201');
forbidden(create(Origin => 'http://evil.example'), 'Origin of another host');
forbidden(create(Origin => "http://127.0.0.1:" . ($port + 1)), 'Origin of another port');
forbidden(create(Origin => 'http://127.0.0.1'), 'Origin without the port (80)');
forbidden(create(Origin => 'null'), 'Origin: null (a sandboxed frame, a file)');
forbidden(create(Origin => "http://127.0.0.1:$port/path"), 'Origin with a path');
forbidden(create(Origin => 'ftp://127.0.0.1'), 'Origin of another scheme');

# default ports, by the Host header (HTTP::Tiny does not let Host be set)
sub create_as {
    my ($host, $origin) = @_;
    my $body = '{"name":"h"}';
    my $out = $t->raw_http("POST /v1/personal-access-tokens HTTP/1.1\r\nHost: $host\r\n"
        . "X-User: alice\r\nOrigin: $origin\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
    my ($st) = $out =~ m{^HTTP/1\.1 (\d+)};
    my ($err) = $out =~ /"error":"(\w+)"/;
    return { status => $st // 0, json => { error => $err } };
}
is(create_as('example.com', 'http://example.com')->{status}, 201, 'Host without a port, Origin http: 201');
is(create_as('example.com', 'http://Example.COM:80')->{status}, 201, 'explicit :80, host case: 201');
forbidden(create_as('example.com', 'https://example.com'), 'https Origin for a plain request (443 vs 80)');
is(create_as('[::1]:8080', 'http://[::1]:8080')->{status}, 201, 'IPv6 Host and Origin: 201');
forbidden(create_as('[::1]:8080', 'http://[::2]:8080'), 'another IPv6 host');

# every write, and only writes
my $tok = create()->{json}{data};
forbidden(api($t, DELETE => "/$tok->{id}", user => 'alice', headers => { 'Sec-Fetch-Site' => 'cross-site' }),
          'a cross-site revoke');
forbidden(api($t, POST => "/$tok->{id}/rotate", user => 'alice', headers => { 'Sec-Fetch-Site' => 'cross-site' }),
          'a cross-site rotate with an empty body');
is(api($t, GET => '', user => 'alice', headers => { 'Sec-Fetch-Site' => 'cross-site' })->{status}, 200,
   'a cross-site read: 200');
is(api($t, DELETE => "/$tok->{id}", user => 'alice', headers => { 'Sec-Fetch-Site' => 'same-origin' })->{status}, 200,
   'a same-origin revoke: 200');

# what a page of another site can make a browser send with the user's
# credentials (issue 17): a "simple" text/plain create, a form POST, an
# empty rotate and an empty DELETE; none changes anything, and the same
# requests without the browser's headers (curl) work as usual
{
    my $count = sub { api($t, GET => '', user => 'carol')->{json}{totalCount} };
    my $mine = api($t, POST => '', user => 'carol', body => { name => 'keep' })->{json}{data};
    my $n = $count->();
    my %evil = ('Sec-Fetch-Site' => 'cross-site', Origin => 'http://evil.example');
    forbidden(api($t, POST => '', user => 'carol', body => '{"name":"evil"}', ctype => 'text/plain',
                  headers => \%evil), 'a cross-site text/plain create');
    forbidden(api($t, POST => '', user => 'carol', body => 'name=evil',
                  ctype => 'application/x-www-form-urlencoded', headers => \%evil),
              'a cross-site form POST');
    forbidden(api($t, POST => "/$mine->{id}/rotate", user => 'carol', headers => { Origin => 'http://evil.example' }),
              'an empty cross-site rotate (Origin only, an older browser)');
    forbidden(api($t, DELETE => "/$mine->{id}", user => 'carol', headers => { Origin => 'http://evil.example' }),
              'a cross-site DELETE (Origin only)');
    is($count->(), $n, '... none of them made a token');
    my $still = api($t, GET => "/$mine->{id}", user => 'carol')->{json}{data};
    is($still->{status}, 'active', '... or revoked one');
    is(api($t, POST => '', user => 'carol', body => '{"name":"x"}', ctype => 'text/plain')->{status}, 415,
       'the text/plain create from curl: 415, as for any non-JSON body');
    my $rot = api($t, POST => "/$mine->{id}/rotate", user => 'carol');
    is($rot->{status}, 201, 'the empty rotate from curl: 201');
    is(api($t, DELETE => "/$rot->{json}{data}{id}", user => 'carol')->{status}, 200, 'the DELETE from curl: 200');
}

# a bearer caller's token is no ambient credential
my $b = seed_token($t, user => 'bob', name => 'ci', expires => now_ms() + 3600_000);
is(api($t, POST => '', bearer => $b->{token}, body => { name => 'y' },
       headers => { 'Sec-Fetch-Site' => 'cross-site', Origin => 'http://evil.example' })->{status}, 201,
   'a bearer caller, cross-site headers: 201');

# anonymous stays 401 first
is(api($t, POST => '', body => { name => 'z' }, headers => { 'Sec-Fetch-Site' => 'cross-site' })->{status}, 401,
   'anonymous and cross-site: 401 first');

$t->done;
done_testing;
