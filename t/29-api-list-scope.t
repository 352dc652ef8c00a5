# GET /?scope=X: only the caller's tokens holding scope X (an exact
# match of one scope, case-sensitive, whatever their status); totalCount
# counts the matches, facets still count all the caller's tokens; it
# combines with status=, search_term=, paging and sorting; the value is
# form-decoded; a malformed scope is 400 invalid_request; rotated tokens
# keep (or narrow) their scopes and are found by them.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use PatTest;
use PatApi qw(api api_env iso_ms parse_rfc3339 secrecy_scan);
use PatToken qw(now_ms);

my $t = api_env(max_tokens => 100);

sub create {
    my ($user, $name, $scopes, %o) = @_;
    my $r = api($t, POST => '', user => $user,
                body => { name => $name, scopes => $scopes, %o });
    is($r->{status}, 201, "create $user/$name") or diag $r->{content};
    sleep 0.003;    # distinct createdAt
    return $r->{json}{data};
}
sub list {
    my ($q, %o) = @_;
    my $r = api($t, GET => "?$q", user => 'sc', %o);
    die "list ?$q: $r->{status} $r->{content}\n" unless $r->{status} == 200 && $r->{json};
    return $r->{json};
}
my %name_of;    # id => label
sub labels { [ map { $name_of{ $_->{id} } // "unknown:$_->{name}" } @{ $_[0]{items} } ] }
sub set_of { [ sort @{ labels($_[0]) } ] }

# --- the caller's tokens, in creation order
my %k;
for my $spec (['alpha deploy', ['repo:read']],
              ['beta',         ['repo:read', 'repo:write']],
              ['gamma ci',     ['repo:write']],
              ['delta',        []],
              ['epsilon ci',   ['admin', 'repo:read']],
              ['zeta',         ['repo']],
              ['eta',          ['c++', '100%', 'x' x 64, 'a,b']]) {
    $k{ $spec->[0] } = create('sc', @$spec);
}
$k{'short ci'} = create('sc', 'short ci', ['repo:read'], expiresAt => iso_ms(now_ms() + 2500));
$name_of{ $k{$_}{id} } = $_ for keys %k;
is(api($t, DELETE => "/$k{'epsilon ci'}{id}", user => 'sc')->{status}, 200, 'revoke epsilon ci');
# another user with the same scopes and names
my @others = (create('other', 'alpha deploy', ['repo:read']),
              create('other', 'other ci', ['repo:read', 'repo:write']),
              create('other', 'zeta', ['repo']));
$name_of{ $_->{id} } = "other:$_->{name}" for @others;

my $all = list('page_size=100');
is($all->{totalCount}, 8, 'unfiltered: 8 tokens');
my $facets = { status => { active => 7, expired => 0, revoked => 1 } };
is_deeply($all->{facets}, $facets, 'unfiltered: facets');

# --- one scope
my $l = list('scope=repo:read');
is_deeply(labels($l), ['short ci', 'epsilon ci', 'beta', 'alpha deploy'],
          'scope=repo:read: the tokens holding it, every status, createdAt descending');
is($l->{totalCount}, 4, 'scope=repo:read: totalCount counts the matches');
is_deeply($l->{facets}, $facets, 'scope=repo:read: facets count all the caller\'s tokens');
ok(!grep({ !grep { $_ eq 'repo:read' } @{ $_->{scopes} } } @{ $l->{items} }),
   'scope=repo:read: every item holds it');
is(join(',', sort keys %{ $l->{items}[0] }),
   'createdAt,expiresAt,id,lastUsedAt,name,prefix,revokedAt,scopes,status',
   'scope=repo:read: token objects, without plaintext');
is_deeply(list('scope=repo%3Aread'), $l, 'scope=repo%3Aread: percent-encoded, the same');
is_deeply(list('scope=repo%3aread'), $l, 'scope=repo%3aread: lower-case hex, the same');
is_deeply(list('scope=repo:read&page_size=100&unknown=1'), $l, 'with other parameters, the same');
is_deeply(set_of(list('scope=repo:write')), ['beta', 'gamma ci'], 'scope=repo:write');
is_deeply(set_of(list('scope=admin')), ['epsilon ci'], 'scope=admin: a revoked token');
is_deeply(set_of(list('scope=repo')), ['zeta'], 'scope=repo: exact, not a prefix of repo:read');
for my $q ('read', 'repo:rea', 'repo:read:', 'REPO:READ', 'Repo', 'epo', 'a', 'b', 'c', 'x' x 63) {
    my $n = list("scope=$q");
    is($n->{totalCount}, 0, "scope=$q: no match (whole scopes, case-sensitive)");
    is_deeply($n->{items}, [], "scope=$q: no items");
    is_deeply($n->{facets}, $facets, "scope=$q: facets still count all") if $q eq 'read';
}
is_deeply(set_of(list('scope=c%2B%2B')), ['eta'], 'scope=c%2B%2B: a scope with +');
is_deeply(set_of(list('scope=100%25')), ['eta'], 'scope=100%25: a scope with %');
is_deeply(set_of(list('scope=a,b')), ['eta'], 'scope=a,b: a scope with a comma');
is_deeply(set_of(list('scope=a%2Cb')), ['eta'], 'scope=a%2Cb: the same, encoded');
is_deeply(set_of(list('scope=' . 'x' x 64)), ['eta'], 'scope of 64 characters');
is(list('scope=nothing-holds-this')->{totalCount}, 0, 'a scope nobody holds: 0');

# --- combined with status, search_term, paging and sorting
is_deeply(set_of(list('scope=repo:read&status=active')), ['alpha deploy', 'beta', 'short ci'],
          'scope + status=active');
is_deeply(set_of(list('status=revoked&scope=repo:read')), ['epsilon ci'], 'status=revoked + scope');
is(list('scope=repo:read&status=expired')->{totalCount}, 0, 'scope + status=expired: none yet');
is_deeply(set_of(list('scope=repo:read&search_term=ci')), ['epsilon ci', 'short ci'], 'scope + search_term');
is_deeply(set_of(list('search_term=CI&scope=repo:read&status=active')), ['short ci'],
          'scope + search_term + status');
is_deeply(set_of(list('scope=repo:read&searchTerm=alpha+deploy')), ['alpha deploy'],
          'scope + searchTerm with a space');
is_deeply(set_of(list('search_term=alpha%20deploy&scope=repo%3Aread')), ['alpha deploy'],
          'a long search_term before the scope');
is(list('scope=repo:write&search_term=alpha')->{totalCount}, 0, 'scope + search_term: no token holds both');
$l = list('scope=repo:read&status=active&search_term=ci');
is($l->{totalCount}, 1, 'three filters: totalCount');
is_deeply($l->{facets}, $facets, 'three filters: facets unchanged');

my @pages = map { list("scope=repo:read&page_size=3&page_index=$_") } 0 .. 2;
is_deeply([ map { scalar @{ $_->{items} } } @pages ], [3, 1, 0], 'scope + paging: 3, 1, 0 items');
is_deeply([ map { $_->{totalCount} } @pages ], [4, 4, 4], 'scope + paging: totalCount 4 on every page');
is_deeply([ map { @{ labels($_) } } @pages ], ['short ci', 'epsilon ci', 'beta', 'alpha deploy'],
          'scope + paging: the pages together, in order');
is_deeply(labels(list('scope=repo:read&sort_by=name&sort_direction=asc')),
          ['alpha deploy', 'beta', 'epsilon ci', 'short ci'], 'scope + sort_by=name asc');
is_deeply(labels(list('scope=repo:read&sortBy=createdAt&sortDirection=asc')),
          ['alpha deploy', 'beta', 'epsilon ci', 'short ci'], 'scope + sortBy=createdAt asc');

# a use (lastUsedAt moves, the index entry is rewritten) keeps the scopes
is($t->get('/static/protected.txt', { Authorization => "Bearer $k{'alpha deploy'}{token}" })->{status},
   200, 'alpha deploy used at an auth_pat location');
my $used;
for (1 .. 40) {
    $used = api($t, GET => "/$k{'alpha deploy'}{id}", user => 'sc')->{json}{data}{lastUsedAt};
    last if defined $used;
    sleep 0.05;
}
ok(defined $used, '... its lastUsedAt is set');
is_deeply(set_of(list('scope=repo:read')), ['alpha deploy', 'beta', 'epsilon ci', 'short ci'],
          'after a use: still found by its scope');
is(labels(list('scope=repo:read&sort_by=lastUsedAt&sort_direction=desc'))->[0], 'alpha deploy',
   'scope + sort_by=lastUsedAt desc: the used one first');
is_deeply(set_of(list('scope=repo:read&search_term=deploy&status=active')), ['alpha deploy'],
          'after a use: scope + search_term + status');

# --- malformed: 400 invalid_request
for my $q ('x' x 65, '%22', 'a%22b', 'a%5Cb', 'a%20b', 'a+b', '+', '', '%ff', 'caf%C3%A9',
           '%07', '%7F', 'a%09b', '%zz', 'ab%4', '%', 'a%00b') {
    my $r = api($t, GET => "?scope=$q", user => 'sc');
    is($r->{status}, 400, "scope=$q: 400");
    is($r->{json} && $r->{json}{error}, 'invalid_request', "scope=$q: invalid_request")
        or diag $r->{content};
}
{
    my $raw = $t->raw_http("GET /v1/personal-access-tokens?scope=a\"b HTTP/1.0\r\nHost: a\r\nX-User: sc\r\n\r\n");
    my ($st) = $raw =~ m{^HTTP/1\.\d (\d+)};
    is($st, 400, 'scope=a"b, unencoded: 400');
    like($raw, qr/"error"\s*:\s*"invalid_request"/, 'scope=a"b, unencoded: invalid_request');
}
is(api($t, GET => '?scope=repo:read')->{status}, 401, 'without a caller: 401 first');

# --- never another user's tokens
my $o = api($t, GET => '?scope=repo:read', user => 'other')->{json};
is_deeply(set_of($o), ['other:alpha deploy', 'other:other ci'], 'the other user sees only theirs');
is($o->{totalCount}, 2, 'the other user: totalCount');
is_deeply($o->{facets}, { status => { active => 3, expired => 0, revoked => 0 } },
          'the other user: their facets');
my %mine = map { $_->{id} => 1 } @{ $all->{items} };
ok(!grep({ !$mine{ $_->{id} } } map { @{ list("scope=$_&page_size=100")->{items} } } qw(repo:read repo:write repo)),
   'no filter ever shows another user\'s token to sc');
is(api($t, GET => '?scope=repo:read', user => 'nobody')->{json}{totalCount}, 0,
   'a user without tokens: 0');
# a bearer caller lists its owner's tokens the same way
my $bl = api($t, GET => '?scope=repo:read', bearer => $k{delta}{token});
is($bl->{status}, 200, 'by bearer token: 200');
is_deeply(set_of($bl->{json}), ['alpha deploy', 'beta', 'epsilon ci', 'short ci'],
          'by bearer token: the owner\'s matching tokens');

# --- rotation keeps the scopes; the new token is found by them
my $rot = api($t, POST => "/$k{beta}{id}/rotate", user => 'sc');
is($rot->{status}, 201, 'rotate beta');
my $beta2 = $rot->{json}{data};
$name_of{ $beta2->{id} } = 'beta2';
is_deeply($beta2->{scopes}, ['repo:read', 'repo:write'], 'the new token keeps the scopes');
$l = list('scope=repo:read');
is_deeply(labels($l), ['beta2', 'short ci', 'epsilon ci', 'beta', 'alpha deploy'],
          'scope=repo:read: the new token, first (newest), and the old one');
my ($b2) = grep { $_->{id} eq $beta2->{id} } @{ $l->{items} };
is($b2->{status}, 'active', 'the new one is active');
is($b2->{rotatedFrom}, $k{beta}{id}, 'the new one carries rotatedFrom');
my ($b1) = grep { $_->{id} eq $k{beta}{id} } @{ $l->{items} };
is($b1->{status}, 'revoked', 'the old one is revoked');
is_deeply(set_of(list('scope=repo:read&status=active')), ['alpha deploy', 'beta2', 'short ci'],
          'scope + status=active: the new one, not the old');
is_deeply(set_of(list('scope=repo:write&status=revoked')), ['beta'], 'scope=repo:write + revoked: the old');
is_deeply(list('scope=repo:read')->{facets}, list('')->{facets}, 'after the rotation: facets still all');
is_deeply(list('')->{facets}, { status => { active => 7, expired => 0, revoked => 2 } },
          '... which count the rotation');

# narrowed at rotation: found only by what it kept
$rot = api($t, POST => "/$beta2->{id}/rotate", user => 'sc', body => { scopes => ['repo:write'] });
is($rot->{status}, 201, 'rotate beta2, narrowing to repo:write');
my $beta3 = $rot->{json}{data};
$name_of{ $beta3->{id} } = 'beta3';
is_deeply(set_of(list('scope=repo:write')), ['beta', 'beta2', 'beta3', 'gamma ci'],
          'scope=repo:write: the narrowed token and its ancestors');
is_deeply(set_of(list('scope=repo:read&status=active')), ['alpha deploy', 'short ci'],
          'scope=repo:read + active: no longer the narrowed one');
ok(!grep({ $_->{id} eq $beta3->{id} } @{ list('scope=repo:read&page_size=100')->{items} }),
   'the narrowed token never shows under the scope it dropped');
# a token without scopes rotates to one without, found by no scope
$rot = api($t, POST => "/$k{delta}{id}/rotate", user => 'sc');
$name_of{ $rot->{json}{data}{id} // '' } = 'delta2';
is_deeply($rot->{json}{data}{scopes}, [], 'rotate delta: still no scopes');
ok(!grep({ $name_of{ $_->{id} } =~ /^delta/ } map { @{ list("scope=$_&page_size=100")->{items} } }
         'repo:read', 'repo:write', 'repo', 'admin'),
   'a token without scopes matches no scope filter');

# --- a larger set: the filter across more than a page
my @bulk = map { create('bulk', "b$_", [ 'all', ($_ % 3 == 0 ? ('mod3') : ()) ]) } 1 .. 36;
my $m = api($t, GET => '?scope=mod3&page_size=10', user => 'bulk')->{json};
is($m->{totalCount}, 12, 'bulk: scope=mod3 totalCount 12 of 36');
is(scalar @{ $m->{items} }, 10, 'bulk: first page of 10');
my $m2 = api($t, GET => '?scope=mod3&page_size=10&page_index=1', user => 'bulk')->{json};
is(scalar @{ $m2->{items} }, 2, 'bulk: second page of 2');
is_deeply([ sort map { $_->{name} } @{ $m->{items} }, @{ $m2->{items} } ],
          [ sort map { "b$_" } grep { $_ % 3 == 0 } 1 .. 36 ], 'bulk: exactly the mod3 tokens');
is(api($t, GET => '?scope=all', user => 'bulk')->{json}{totalCount}, 36, 'bulk: scope=all 36');
is(scalar @{ api($t, GET => '?scope=all', user => 'bulk')->{json}{items} }, 25, 'bulk: default page of 25');
is_deeply(api($t, GET => '?scope=mod3', user => 'bulk')->{json}{facets},
          { status => { active => 36, expired => 0, revoked => 0 } }, 'bulk: facets of all 36');

# --- expiry: the short-lived token moves to expired under the filter
my $wait = (parse_rfc3339($k{'short ci'}{expiresAt}) - now_ms()) / 1000 + 0.3;
sleep $wait if $wait > 0;
is_deeply(set_of(list('scope=repo:read&status=expired')), ['short ci'], 'after expiry: scope + status=expired');
is_deeply(set_of(list('scope=repo:read&status=active')), ['alpha deploy'], 'after expiry: scope + status=active');
is_deeply(list('scope=repo:read')->{facets}{status}, { active => 6, expired => 1, revoked => 4 },
          'after expiry: facets count it expired');

secrecy_scan($t);
$t->done;
done_testing;
