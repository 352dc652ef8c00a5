# POST /: create, its shape, validation, bodies, media types, limits.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api_env api uuid_re rfc3339_re token_ok secrecy_scan parse_rfc3339);
use PatToken qw(now_ms);

my $t = api_env();

sub err_ok {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status");
    is(ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef, $code, "$name: error $code")
        or diag $r->{content};
    ok(defined $r->{json}{message} && length $r->{json}{message}, "$name: a message");
    is(join(',', sort keys %{ $r->{json} || {} }), 'error,message', "$name: only error and message");
}

# --- success
my $t0 = now_ms();
my $r = api($t, POST => '', user => 'alice', body => { name => "  laptop  " });
is($r->{status}, 201, 'create: 201');
like($r->{headers}{'content-type'}, qr{^application/json}, 'create: JSON');
is($r->{headers}{'cache-control'}, 'no-store', 'create: no-store');
my $d = $r->{json}{data};
is(join(',', sort keys %$d), 'createdAt,expiresAt,id,lastUsedAt,name,prefix,revokedAt,scopes,status,token',
   'create: exactly the token object plus "token"');
like($d->{id}, uuid_re(), 'create: id is a UUIDv4');
is($d->{name}, 'laptop', 'create: name trimmed');
ok(token_ok($d->{token}), 'create: token has the prefix, 34 base62 chars and a valid CRC32');
is($d->{prefix}, substr($d->{token}, 0, 8), 'create: prefix is the token prefix plus 4');
like($d->{createdAt}, rfc3339_re(), 'create: createdAt is RFC 3339 UTC with ms');
my $c = parse_rfc3339($d->{createdAt});
ok($c >= $t0 - 1000 && $c <= now_ms() + 1000, 'create: createdAt is now');
is(parse_rfc3339($d->{expiresAt}) - $c, 7 * 86400 * 1000, 'create: default lifetime (7d) applied');
is($d->{lastUsedAt}, undef, 'create: lastUsedAt null');
is($d->{revokedAt}, undef, 'create: revokedAt null');
is($d->{status}, 'active', 'create: active');
is($t->get('/static/protected.txt', { Authorization => "Bearer $d->{token}" })->{status}, 200,
   'create: the new token works at once');

# 10 days ahead, written at +02:00
my $when = int(now_ms() / 1000) + 10 * 86400;
my @w = gmtime($when + 2 * 3600);
my $local = sprintf('%04d-%02d-%02dT%02d:%02d:%02d.5+02:00', $w[5] + 1900, $w[4] + 1, @w[3, 2, 1, 0]);
my @u = gmtime($when);
my $utc = sprintf('%04d-%02d-%02dT%02d:%02d:%02d.500Z', $u[5] + 1900, $u[4] + 1, @u[3, 2, 1, 0]);
$r = api($t, POST => '', user => 'alice', body => { name => 'tz', expiresAt => $local, extra => [1, 2] });
is($r->{status}, 201, 'create: expiresAt with an offset, unknown fields ignored');
is($r->{json}{data}{expiresAt}, $utc, 'create: expiresAt converted to UTC');

my $exp = now_ms() + 86400_000;
my @g = gmtime(int($exp / 1000));
my $exp_s = sprintf('%04d-%02d-%02dT%02d:%02d:%02d.123456Z', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
$r = api($t, POST => '', user => 'alice', body => { name => 'frac', expiresAt => $exp_s });
is($r->{status}, 201, 'create: fractional seconds');
is(substr($r->{json}{data}{expiresAt}, -5), '.123Z', 'create: fraction cut to milliseconds');

$r = api($t, POST => '/v2/tokens/', user => 'alice', body => { name => 'forever', expiresAt => undef });
is($r->{status}, 201, 'create: expiresAt null where no max lifetime');
is($r->{json}{data}{expiresAt}, undef, 'create: no expiry');
$r = api($t, POST => '/v2/tokens/', user => 'alice', body => { name => 'forever too' });
is($r->{json}{data}{expiresAt}, undef, 'create: no expiry by default without lifetimes');

# far expiries: exact up to the documented bound, refused past it (Redis'
# cjson keeps 14 significant digits of a number in ms)
$r = api($t, POST => '/v2/tokens/', user => 'far', body => { name => 'far', expiresAt => '4999-12-31T23:59:59.999Z' });
is($r->{status}, 201, 'create: expiresAt in year 4999');
my $far = $r->{json}{data};
$r = api($t, DELETE => "/$far->{id}", user => 'far', base => '/v2/tokens');
is($r->{json}{data}{expiresAt}, '4999-12-31T23:59:59.999Z', 'revoke: a far expiresAt comes back exact');
is(api($t, GET => '/', user => 'far', base => '/v2/tokens')->{json}{items}[0]{expiresAt},
   '4999-12-31T23:59:59.999Z', 'list: a far expiresAt comes back exact');
err_ok(api($t, POST => '/v2/tokens/', user => 'far', body => { name => 'x', expiresAt => '5000-01-01T00:00:00Z' }),
       422, 'validation_error', 'expiresAt in year 5000');
err_ok(api($t, POST => '/v2/tokens/', user => 'far', body => { name => 'x', expiresAt => '9999-12-31T23:59:59.999Z' }),
       422, 'validation_error', 'expiresAt in year 9999');

$r = api($t, POST => '', user => 'bob', body => '{"name":"charset"}', ctype => 'application/json; charset=utf-8');
is($r->{status}, 201, 'create: application/json; charset=utf-8');
$r = api($t, POST => '/', user => 'bob', body => { name => 'slash' });
is($r->{status}, 201, 'create: trailing slash is the collection');
$r = api($t, POST => '', user => 'bob', body => { name => "\x{e9}" x 200 });
is($r->{status}, 201, 'create: 200 characters of 2 bytes each');
is(length($r->{json}{data}{name}), 200, 'create: name kept');
$r = api($t, POST => '', user => 'carol', body => { name => "\x{1F600} emoji \x{4E2D}" });
is($r->{json}{data}{name}, "\x{1F600} emoji \x{4E2D}", 'create: non-ASCII name round trip');

# --- media type and body
err_ok(api($t, POST => '', user => 'alice', body => '{"name":"x"}', ctype => 'text/plain'),
       415, 'unsupported_media_type', 'text/plain');
err_ok(api($t, POST => '', user => 'alice', body => '{"name":"x"}', ctype => 'application/json; charset=latin1'),
       415, 'unsupported_media_type', 'another charset');
err_ok(api($t, POST => '', user => 'alice', body => '{"name":"x"}', ctype => 'application/jsonx'),
       415, 'unsupported_media_type', 'application/jsonx');
err_ok(api($t, POST => '', user => 'alice', body => '{', ), 400, 'invalid_request', 'malformed JSON');
err_ok(api($t, POST => '', user => 'alice', body => '{"name":"x"} trailing'), 400, 'invalid_request', 'trailing garbage');
err_ok(api($t, POST => '', user => 'alice', body => '[{"name":"x"}]'), 400, 'invalid_request', 'top-level array');
err_ok(api($t, POST => '', user => 'alice', body => '"x"'), 400, 'invalid_request', 'top-level string');
err_ok(api($t, POST => '', user => 'alice', headers => { 'Content-Type' => 'application/json' }),
       400, 'invalid_request', 'empty body');
err_ok(api($t, POST => '', user => 'alice', body => ('[' x 10000) . (']' x 10000)),
       400, 'invalid_request', 'JSON nested 10,000 deep');
err_ok(api($t, POST => '', user => 'alice', body => '{"a":' x 10000 . '1' . '}' x 10000),
       400, 'invalid_request', 'objects nested 10,000 deep');

# --- validation
err_ok(api($t, POST => '', user => 'alice', body => { name => 5 }), 400, 'invalid_request', 'name of the wrong type');
err_ok(api($t, POST => '', user => 'alice', body => { name => undef }), 400, 'invalid_request', 'name null');
err_ok(api($t, POST => '', user => 'alice', body => {}), 422, 'validation_error', 'name missing');
err_ok(api($t, POST => '', user => 'alice', body => { name => '' }), 422, 'validation_error', 'empty name');
err_ok(api($t, POST => '', user => 'alice', body => { name => '    ' }), 422, 'validation_error', 'name of spaces');
err_ok(api($t, POST => '', user => 'alice', body => { name => "\x{3000}\x{a0} " }), 422, 'validation_error', 'name of Unicode spaces');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x' x 201 }), 422, 'validation_error', 'name of 201 characters');
err_ok(api($t, POST => '', user => 'alice', body => { name => "\x{e9}" x 201 }), 422, 'validation_error', '201 two-byte characters');
err_ok(api($t, POST => '', user => 'alice', body => { name => "a\tb" }), 422, 'validation_error', 'name with a tab');
err_ok(api($t, POST => '', user => 'alice', body => { name => "a\x{7}b" }), 422, 'validation_error', 'name with BEL');
err_ok(api($t, POST => '', user => 'alice', body => { name => "a\x{0}b" }), 422, 'validation_error', 'name with NUL');
err_ok(api($t, POST => '', user => 'alice', body => { name => "a\x{85}b" }), 422, 'validation_error', 'name with a C1 control');
err_ok(api($t, POST => '', user => 'alice', body => "{\"name\":\"a\xff\xfeb\"}"), 422, 'validation_error', 'name with invalid UTF-8');
err_ok(api($t, POST => '', user => 'alice', body => "{\"name\":\"\xc0\xafx\"}"), 422, 'validation_error', 'overlong UTF-8');
err_ok(api($t, POST => '', user => 'alice', body => '{"name":"\\ud800"}'), 400, 'invalid_request', 'lone surrogate escape');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => '2020-01-01T00:00:00Z' }),
       422, 'validation_error', 'expiresAt in the past');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => '2099-01-01T00:00:00Z' }),
       422, 'validation_error', 'expiresAt beyond the max lifetime');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => '2027-02-30T00:00:00Z' }),
       422, 'validation_error', 'expiresAt on Feb 30');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => 'tomorrow' }),
       422, 'validation_error', 'expiresAt not a date');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => '2027-01-01T00:00:00' }),
       422, 'validation_error', 'expiresAt without an offset');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => undef }),
       422, 'validation_error', 'expiresAt null under a max lifetime');
err_ok(api($t, POST => '', user => 'alice', body => { name => 'x', expiresAt => 1893456000 }),
       400, 'invalid_request', 'expiresAt of the wrong type');

# --- limits
my $big = '{"name":"' . ('x' x 100_000) . '"}';
err_ok(api($t, POST => '', user => 'alice', body => $big), 413, 'payload_too_large', 'body over client_max_body_size');
my $raw = $t->raw_http("POST /v1/personal-access-tokens HTTP/1.1\r\nHost: x\r\nX-User: alice\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    . join('', map { sprintf("%x\r\n%s\r\n", 8192, 'y' x 8192) } 1..10) . "0\r\n\r\n");
like($raw, qr{^HTTP/1\.1 413 }, 'chunked body over the limit: 413');
like($raw, qr/"error":"payload_too_large"/, 'chunked body over the limit: JSON');

# a chunked body within the limit: its last, empty buffer has no memory
# at all, which the body reader must not copy from (UBSan aborted the
# worker of ./build.sh asan on every chunked API body)
$raw = $t->raw_http("POST /v1/personal-access-tokens HTTP/1.1\r\nHost: x\r\nX-User: chunky\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    . "8\r\n{\"name\":\r\n9\r\n\"chunked\"\r\n1\r\n}\r\n0\r\n\r\n");
like($raw, qr{^HTTP/1\.1 201 }, 'a chunked create body: 201');
like($raw, qr/"name":"chunked"/, 'a chunked create body: read whole');

# --- max tokens (5 active per user here)
for my $i (1..5) {
    is(api($t, POST => '', user => 'maxie', body => { name => "t$i" })->{status}, 201, "maxie token $i");
}
$r = api($t, POST => '', user => 'maxie', body => { name => 't6' });
err_ok($r, 422, 'validation_error', 'sixth active token');
like($r->{json}{message}, qr/too many active tokens/, 'too many: message');
my $list = api($t, GET => '?page_size=1', user => 'maxie')->{json};
is(api($t, DELETE => "/$list->{items}[0]{id}", user => 'maxie')->{status}, 200, 'revoke one');
is(api($t, POST => '', user => 'maxie', body => { name => 't6' })->{status}, 201, 'then a new one fits');

# --- half-written and garbage requests never crash a worker
for my $junk ("POST /v1/personal-access-tokens HTTP/1.1\r\nHost: x\r\nX-User: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
              "POST /v1/personal-access-tokens HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
              "\x00\x01\x02garbage\r\n\r\n") {
    $t->raw_http($junk, close_after_send => 1);
}
is(api($t, POST => '', user => 'zed', body => { name => 'after junk' })->{status}, 201, 'served after junk');

secrecy_scan($t);
$t->done;
done_testing;
