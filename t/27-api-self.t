# Routes about one token: GET /{id} (the owner's only), /self (the token
# the request is authenticated with: GET, DELETE, POST /self/rotate), and
# GET /config (the limits of the location).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api api_env);

my $t = api_env(max_tokens => 7);
sub access { $t->get('/static/protected.txt', { Authorization => "Bearer $_[0]" })->{status} }

my $a = api($t, POST => '', user => 'alice', body => { name => 'mine' })->{json}{data};
my $b = api($t, POST => '', user => 'bob', body => { name => 'his' })->{json}{data};

# --- GET /{id}
my $r = api($t, GET => "/$a->{id}", user => 'alice');
is($r->{status}, 200, 'GET /{id}: 200');
is($r->{json}{data}{id}, $a->{id}, 'GET /{id}: the token');
is($r->{json}{data}{name}, 'mine', 'GET /{id}: its name');
is($r->{json}{data}{status}, 'active', 'GET /{id}: its status');
ok(!exists $r->{json}{data}{token}, 'GET /{id}: never the plaintext');
is_deeply([sort keys %{ $r->{json}{data} }],
          [sort qw(id name prefix scopes createdAt expiresAt lastUsedAt
                   revokedAt status)],
          'GET /{id}: the fields of a token object')
    or diag explain $r->{json}{data};
$r = api($t, GET => "/$b->{id}", user => 'alice');
is($r->{status}, 404, "GET /{id} of another user's token: 404");
is($r->{json}{error}, 'not_found', '... not_found');
is(api($t, GET => '/' . PatToken::uuid4(), user => 'alice')->{status}, 404,
   'GET /{id} of an unknown id: 404');
is(api($t, GET => '/not-a-uuid', user => 'alice')->{status}, 400,
   'GET /{id} with a malformed id: 400');
is(api($t, HEAD => "/$a->{id}", user => 'alice')->{status}, 200, 'HEAD /{id}: 200');

# --- /self, by bearer token
$r = api($t, GET => '/self', bearer => $a->{token});
is($r->{status}, 200, 'GET /self: 200');
is($r->{json}{data}{id}, $a->{id}, 'GET /self: the token of the request');
$r = api($t, GET => '/self', user => 'alice');
is($r->{status}, 404, 'GET /self with auth_pat_api_user and no bearer: 404');
like($r->{json}{message} // '', qr/bearer token/, '... saying a bearer token is needed');
$r = api($t, GET => '/self', bearer => 'pat_0000000000000000000000000000000000');
is($r->{status}, 401, 'GET /self with a bad token: 401');
$r = api($t, GET => '/self', bearer => $b->{token}, user => 'alice');
is($r->{json}{data}{id}, $b->{id},
   'GET /self with a bearer token and auth_pat_api_user: the token decides');

my $rot = api($t, POST => '/self/rotate', bearer => $a->{token});
is($rot->{status}, 201, 'POST /self/rotate: 201');
is($rot->{json}{data}{rotatedFrom}, $a->{id}, '... rotated from the token of the request');
ok($rot->{json}{data}{token}, '... with the new plaintext');
is(access($a->{token}), 401, 'the rotated-out token fails');
my $a2 = $rot->{json}{data};
is(access($a2->{token}), 200, 'the new one works');

my $del = api($t, DELETE => '/self', bearer => $a2->{token});
is($del->{status}, 200, 'DELETE /self: 200');
is($del->{json}{data}{status}, 'revoked', '... revoked');
is(access($a2->{token}), 401, 'the token is refused at once');
is(api($t, GET => '/self', bearer => $a2->{token})->{status}, 401,
   'and /self no longer knows it');

$r = api($t, PUT => '/self', bearer => $b->{token}, body => {});
is($r->{status}, 405, 'PUT /self: 405');
is($r->{headers}{allow}, 'GET, HEAD, DELETE', '... Allow');
is(api($t, GET => '/self/rotate', bearer => $b->{token})->{status}, 405,
   'GET /self/rotate: 405');
is(api($t, GET => '/self/other', bearer => $b->{token})->{status}, 404,
   '/self/other: 404');

# --- GET /config
$r = api($t, GET => '/config', user => 'alice');
is($r->{status}, 200, 'GET /config: 200');
is_deeply($r->{json}{data}, { defaultLifetime => 7 * 86400,
                              maxLifetime => 30 * 86400,
                              scopesAllowed => undef, maxTokens => 7 },
          'GET /config: the limits of the location, in seconds');
$r = api($t, GET => '/config', user => 'alice', base => '/v2/tokens');
is_deeply($r->{json}{data}, { defaultLifetime => undef, maxLifetime => undef,
                              scopesAllowed => undef, maxTokens => 100 },
          'GET /config elsewhere: no lifetime limits (null)');
is(api($t, GET => '/config')->{status}, 401, 'GET /config needs a caller');
$r = api($t, POST => '/config', user => 'alice', body => {});
is($r->{status}, 405, 'POST /config: 405');
is($r->{headers}{allow}, 'GET, HEAD', '... Allow');
is(api($t, GET => '/config/x', user => 'alice')->{status}, 404, '/config/x: 404');

$t->done;
done_testing;
