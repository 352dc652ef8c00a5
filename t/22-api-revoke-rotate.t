# DELETE /{id} and POST /{id}/rotate: shapes, immediacy, idempotency,
# lifetimes, conflicts, concurrency (20 parallel rotations), isolation.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use PatTest;
use PatApi qw(api_env api uuid_re token_ok secrecy_scan parse_rfc3339);
use PatToken qw(now_ms uuid4);
use PatLoad qw(burst);

my $t = api_env(max_tokens => 50);
sub iso { my @g = gmtime(int($_[0] / 1000)); sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]) }
sub access { $t->get('/static/protected.txt', { Authorization => "Bearer $_[0]" })->{status} }
sub err_is {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status");
    is($r->{json}{error}, $code, "$name: $code");
}

# --- revoke
my $a1 = api($t, POST => '', user => 'alice', body => { name => 'a1' })->{json}{data};
is(access($a1->{token}), 200, 'a1 works');
is(api($t, GET => '', bearer => $a1->{token})->{status}, 200, 'a1 works as API caller');
my $r = api($t, DELETE => "/$a1->{id}", user => 'alice');
is($r->{status}, 200, 'revoke: 200');
is($r->{json}{data}{id}, $a1->{id}, 'revoke: the token');
is($r->{json}{data}{status}, 'revoked', 'revoke: status revoked');
ok(parse_rfc3339($r->{json}{data}{revokedAt}), 'revoke: revokedAt set');
ok(!exists $r->{json}{data}{token}, 'revoke: no plaintext');
is(access($a1->{token}), 401, 'revoked token: 401 at once on a protected location');
err_is(api($t, GET => '', bearer => $a1->{token}), 401, 'unauthorized', 'revoked token as API caller');
my $again = api($t, DELETE => "/$a1->{id}", user => 'alice');
is($again->{status}, 200, 'revoke again: 200 (idempotent)');
is($again->{json}{data}{revokedAt}, $r->{json}{data}{revokedAt}, 'revoke again: same revokedAt');
is(api($t, DELETE => '/' . uc($a1->{id}), user => 'alice')->{status}, 200, 'uppercase id accepted');
err_is(api($t, DELETE => '/' . uuid4(), user => 'alice'), 404, 'not_found', 'unknown id');
err_is(api($t, DELETE => '/not-a-uuid', user => 'alice'), 400, 'invalid_request', 'id that is not a UUID');
err_is(api($t, DELETE => '/' . substr(uuid4(), 0, 35), user => 'alice'), 400, 'invalid_request', 'id one char short');

# --- isolation
my $b1 = api($t, POST => '', user => 'bob', body => { name => 'b1' })->{json}{data};
err_is(api($t, DELETE => "/$b1->{id}", user => 'alice'), 404, 'not_found', "alice revokes bob's token");
err_is(api($t, POST => "/$b1->{id}/rotate", user => 'alice'), 404, 'not_found', "alice rotates bob's token");
err_is(api($t, DELETE => "/$b1->{id}", bearer => api($t, POST => '', user => 'alice', body => { name => 'x' })->{json}{data}{token}),
       404, 'not_found', "alice (by bearer) revokes bob's token");
is(access($b1->{token}), 200, "bob's token still works");
ok(!grep({ $_->{id} eq $b1->{id} } @{ api($t, GET => '?page_size=100', user => 'alice')->{json}{items} }), "alice's list never shows bob's tokens");
is(api($t, GET => '', bearer => $b1->{token})->{json}{totalCount}, 1, "bob's bearer sees bob's one token");

# --- rotate
my $t0 = now_ms();
my $c1 = api($t, POST => '', user => 'carol', body => { name => 'deploy', expiresAt => iso(now_ms() + 3 * 86400_000) })->{json}{data};
my $life = parse_rfc3339($c1->{expiresAt}) - parse_rfc3339($c1->{createdAt});
sleep 0.05;
$r = api($t, POST => "/$c1->{id}/rotate", user => 'carol');
is($r->{status}, 201, 'rotate: 201');
my $n = $r->{json}{data};
like($n->{id}, uuid_re(), 'rotate: a new id');
isnt($n->{id}, $c1->{id}, 'rotate: not the old id');
is($n->{rotatedFrom}, $c1->{id}, 'rotate: rotatedFrom');
is($n->{name}, 'deploy', 'rotate: name kept');
ok(token_ok($n->{token}), 'rotate: a new plaintext token');
is(parse_rfc3339($n->{expiresAt}) - parse_rfc3339($n->{createdAt}), $life, 'rotate: same lifetime length');
is(access($c1->{token}), 401, 'rotate: the old token fails at once');
is(access($n->{token}), 200, 'rotate: the new token works at once');
my %byid = map { $_->{id} => $_ } @{ api($t, GET => '', user => 'carol')->{json}{items} };
is($byid{ $c1->{id} }{status}, 'revoked', 'rotate: list shows the old one revoked');
is($byid{ $n->{id} }{status}, 'active', 'rotate: list shows the new one active');
err_is(api($t, POST => "/$c1->{id}/rotate", user => 'carol'), 409, 'conflict', 'rotate a rotated (revoked) token');
err_is(api($t, POST => '/' . uuid4() . '/rotate', user => 'carol'), 404, 'not_found', 'rotate an unknown id');
err_is(api($t, POST => '/nope/rotate', user => 'carol'), 400, 'invalid_request', 'rotate a bad id');

# rotate with a body
my $want = iso(now_ms() + 86400_000);
$r = api($t, POST => "/$n->{id}/rotate", user => 'carol', body => { expiresAt => $want });
is($r->{status}, 201, 'rotate with expiresAt: 201');
is($r->{json}{data}{expiresAt}, substr($want, 0, 19) . '.000Z', 'rotate with expiresAt: used');
my $n2 = $r->{json}{data};
err_is(api($t, POST => "/$n2->{id}/rotate", user => 'carol', body => '{'), 400, 'invalid_request', 'rotate with malformed JSON');
err_is(api($t, POST => "/$n2->{id}/rotate", user => 'carol', body => '{}', ctype => 'text/plain'), 415, 'unsupported_media_type', 'rotate with text/plain');
err_is(api($t, POST => "/$n2->{id}/rotate", user => 'carol', body => { expiresAt => '2020-01-01T00:00:00Z' }), 422, 'validation_error', 'rotate into the past');
is(access($n2->{token}), 200, 'a refused rotation leaves the token working');

# no expiry rotates to no expiry (v2 has no lifetimes)
my $f = api($t, POST => '/v2/tokens/', user => 'dave', body => { name => 'forever' })->{json}{data};
$r = api($t, POST => "/v2/tokens/$f->{id}/rotate", user => 'dave');
is($r->{status}, 201, 'rotate a token without expiry');
is($r->{json}{data}{expiresAt}, undef, 'rotate: still no expiry');

# an expired token cannot be rotated
my $s = api($t, POST => '', user => 'erin', body => { name => 'short', expiresAt => iso(now_ms() + 1500) })->{json}{data};
sleep 1.8;
err_is(api($t, POST => "/$s->{id}/rotate", user => 'erin'), 409, 'conflict', 'rotate an expired token');
is(api($t, DELETE => "/$s->{id}", user => 'erin')->{status}, 200, 'an expired token can still be revoked');

# --- 20 parallel rotations of one token: exactly one wins
my $p = api($t, POST => '', user => 'frank', body => { name => 'contended' })->{json}{data};
my $res = burst(port => $t->port, concurrency => 20,
    requests => [ map { { method => 'POST', path => "/v1/personal-access-tokens/$p->{id}/rotate",
                          headers => { 'X-User' => 'frank' } } } 1..20 ]);
my @won = grep { $_->{status} == 201 } @$res;
my @lost = grep { $_->{status} == 409 } @$res;
is(scalar @won, 1, '20 parallel rotations: exactly one 201');
is(scalar @lost, 19, '20 parallel rotations: the others 409');
push @{ $t->{issued} }, $won[0]{body} =~ /"token":"([^"]+)"/ if @won;
my $fl = api($t, GET => '', user => 'frank')->{json};
is($fl->{facets}{status}{active}, 1, 'one active token after the race');
is($fl->{facets}{status}{revoked}, 1, 'the contended token revoked');
is($fl->{totalCount}, 2, 'exactly one new token');
is(access($p->{token}), 401, 'the contended token fails');

# --- routes and methods
my $x = api($t, PATCH => "/$n2->{id}", user => 'carol', body => {});
err_is($x, 405, 'method_not_allowed', 'PATCH on an item');
is($x->{headers}{allow}, 'GET, HEAD, DELETE', 'PATCH on an item: Allow');
$x = api($t, PUT => '', user => 'carol', body => {});
err_is($x, 405, 'method_not_allowed', 'PUT on the collection');
is($x->{headers}{allow}, 'GET, HEAD, POST', 'PUT on the collection: Allow');
$x = api($t, GET => "/$n2->{id}/rotate", user => 'carol');
err_is($x, 405, 'method_not_allowed', 'GET on rotate');
is($x->{headers}{allow}, 'POST', 'GET on rotate: Allow');
err_is(api($t, DELETE => '', user => 'carol'), 405, 'method_not_allowed', 'DELETE on the collection');
err_is(api($t, GET => "/$n2->{id}/rotate/extra", user => 'carol'), 404, 'not_found', 'unknown sub-route');
err_is(api($t, POST => "/$n2->{id}/spin", user => 'carol'), 404, 'not_found', 'unknown action');
err_is($t->http(GET => '/v1/personal-access-tokensXYZ', { headers => { 'X-User' => 'c' } }), 404, 'not_found', 'prefix with a suffix');
is(api($t, DELETE => "/$n2->{id}/", user => 'carol')->{status}, 200, 'item with a trailing slash');

# --- a corrupt metadata record (a manual edit): 503, as JSON (t/33 has more)
my $bad_id = uuid4();
$t->redis_cmd('HSET', 'pat:{u:mallory}:m', $bad_id, 'not json');
$r = api($t, DELETE => "/$bad_id", user => 'mallory');
err_is($r, 503, 'unavailable', 'corrupt record');
is(join(',', sort keys %{ $r->{json} }), 'error,message', 'corrupt record: the JSON error shape');
like($t->error_log, qr/\[error\].*unexpected metadata record in redis, user "mallory", token \Q$bad_id\E/, 'corrupt record: logged');

secrecy_scan($t);
$t->done;
done_testing;
