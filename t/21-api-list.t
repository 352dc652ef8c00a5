# GET /: items, totalCount, facets; filters, sorting, pagination, aliases;
# expiry shows in the list; bad queries.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use PatTest;
use PatApi qw(api_env api secrecy_scan);
use PatToken qw(now_ms);

my $t = api_env(max_tokens => 100);

sub iso { my @g = gmtime(int($_[0] / 1000)); sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]) }

my @names = ('Deploy bot', 'alpha', 'Zulu', 'beta CI', 'gamma', 'ci-runner', 'Mixed Case CI', 'omega');
my %tok;
for my $i (0 .. $#names) {
    my %body = (name => $names[$i]);
    $body{expiresAt} = iso(now_ms() + (20 - $i) * 86400_000) if $i % 2;
    my $r = api($t, POST => '', user => 'lister', body => \%body);
    is($r->{status}, 201, "create $names[$i]");
    $tok{ $names[$i] } = $r->{json}{data};
    sleep 0.005;   # distinct createdAt
}
# one expiring in 2 s, two revoked
my $short = api($t, POST => '', user => 'lister',
                body => { name => 'short-lived', expiresAt => iso(now_ms() + 2000) })->{json}{data};
is(api($t, DELETE => "/$tok{alpha}{id}", user => 'lister')->{status}, 200, 'revoke alpha');
is(api($t, DELETE => "/$tok{gamma}{id}", user => 'lister')->{status}, 200, 'revoke gamma');
# another user's tokens never show
api($t, POST => '', user => 'other', body => { name => 'alpha of other' }) for 1..3;

my $r = api($t, GET => '', user => 'lister');
is($r->{status}, 200, 'list: 200');
my $l = $r->{json};
is(join(',', sort keys %$l), 'facets,items,totalCount', 'list: {items, totalCount, facets}');
is($l->{totalCount}, 9, 'list: totalCount');
is_deeply($l->{facets}, { status => { active => 7, expired => 0, revoked => 2 } }, 'list: facets');
is(scalar @{ $l->{items} }, 9, 'list: default page holds all 9');
is_deeply([ map { $_->{name} } @{ $l->{items} } ], [ 'short-lived', reverse @names ], 'list: createdAt descending by default');
is(join(',', sort keys %{ $l->{items}[0] }), 'createdAt,expiresAt,id,lastUsedAt,name,prefix,revokedAt,scopes,status',
   'list: token objects, without plaintext');
ok(!grep({ exists $_->{token} } @{ $l->{items} }), 'list: no plaintext anywhere');
is_deeply([ map { $_->{status} } grep { $_->{name} =~ /^(alpha|gamma)$/ } @{ $l->{items} } ], [qw(revoked revoked)], 'list: revoked status');

# pagination
my $p = api($t, GET => '?page_size=4&page_index=1', user => 'lister')->{json};
is_deeply([ map { $_->{name} } @{ $p->{items} } ], [ map { $l->{items}[$_]{name} } 4..7 ], 'page_index=1, page_size=4');
is($p->{totalCount}, 9, 'pagination: totalCount counts all matches');
my $pc = api($t, GET => '?pageSize=4&pageIndex=1', user => 'lister')->{json};
is_deeply($pc, $p, 'camelCase aliases pageSize/pageIndex');
is(scalar @{ api($t, GET => '?page_size=4&page_index=2', user => 'lister')->{json}{items} }, 1, 'last page');
is(scalar @{ api($t, GET => '?page_size=4&page_index=9', user => 'lister')->{json}{items} }, 0, 'past the end: empty');

# filters
my $f = api($t, GET => '?status=revoked', user => 'lister')->{json};
is($f->{totalCount}, 2, 'status=revoked: totalCount');
is_deeply([ sort map { $_->{name} } @{ $f->{items} } ], [qw(alpha gamma)], 'status=revoked: items');
is_deeply($f->{facets}, $l->{facets}, 'facets cover all the caller\'s tokens, not the filter');
$f = api($t, GET => '?status=active', user => 'lister')->{json};
is($f->{totalCount}, 7, 'status=active');
$f = api($t, GET => '?search_term=ci', user => 'lister')->{json};
is_deeply([ sort map { $_->{name} } @{ $f->{items} } ], ['Mixed Case CI', 'beta CI', 'ci-runner'], 'search_term is a case-insensitive substring');
is(api($t, GET => '?searchTerm=CI', user => 'lister')->{json}{totalCount}, 3, 'searchTerm alias');
is(api($t, GET => '?search_term=mixed+case', user => 'lister')->{json}{totalCount}, 1, 'search_term: + is a space');
is(api($t, GET => '?search_term=Mixed%20Case', user => 'lister')->{json}{totalCount}, 1, 'search_term: percent-encoding');
is(api($t, GET => '?search_term=%25', user => 'lister')->{json}{totalCount}, 0, 'search_term: a literal % matches nothing');
is(api($t, GET => '?search_term=ci&status=revoked', user => 'lister')->{json}{totalCount}, 0, 'filters combine');

# sorting
my $s = api($t, GET => '?sort_by=name&sort_direction=asc', user => 'lister')->{json};
is_deeply([ map { $_->{name} } @{ $s->{items} } ],
          [ sort { lc $a cmp lc $b } @names, 'short-lived' ], 'sort_by=name asc, case-insensitive');
$s = api($t, GET => '?sortBy=name&sortDirection=desc', user => 'lister')->{json};
is_deeply([ map { $_->{name} } @{ $s->{items} } ],
          [ reverse sort { lc $a cmp lc $b } @names, 'short-lived' ], 'sortBy=name desc');
$s = api($t, GET => '?sort_by=createdAt&sort_direction=asc', user => 'lister')->{json};
is_deeply([ map { $_->{name} } @{ $s->{items} } ], [ @names, 'short-lived' ], 'sort_by=createdAt asc');
$s = api($t, GET => '?sort_by=expiresAt&sort_direction=asc', user => 'lister')->{json};
my @e = map { $_->{expiresAt} } @{ $s->{items} };
is_deeply([ @e ], [ sort { $a cmp $b } @e ], 'sort_by=expiresAt asc');
is($s->{items}[0]{name}, 'short-lived', 'soonest expiry first');
$s = api($t, GET => '?sort_by=lastUsedAt', user => 'lister')->{json};
is($s->{totalCount}, 9, 'sort_by=lastUsedAt accepted');

# bad queries: 400 with a JSON error
for my $q ('page_size=0', 'page_size=101', 'page_size=-1', 'page_size=abc', 'page_size=', 'page_size=1.5',
           'page_index=-1', 'page_index=x', 'sort_by=id', 'sort_by=created_at', 'sort_direction=up',
           'status=deleted', 'search_term=' . ('x' x 201), 'search_term=%ff', 'search_term=%07',
           'search_term=%', 'search_term=%zz', 'search_term=ab%4') {
    my $b = api($t, GET => "?$q", user => 'lister');
    is($b->{status}, 400, "bad query $q: 400");
    is($b->{json}{error}, 'invalid_request', "bad query $q: invalid_request");
}
my $long = api($t, GET => '?x=' . ('a' x 10240), user => 'lister');
is($long->{status}, 400, 'a 10 KB query string: 400');
is($long->{json}{error}, 'invalid_request', 'a 10 KB query string: JSON');
is(api($t, GET => '?search_term=' . ('x' x 200), user => 'lister')->{status}, 200, 'search_term of 200 characters');
is(api($t, GET => '?unknown=1&page_size=100', user => 'lister')->{status}, 200, 'unknown parameters are ignored');
is(api($t, GET => '/', user => 'lister')->{json}{totalCount}, 9, 'trailing slash');

# expiry: the 2 s token lapses
is($t->get('/static/protected.txt', { Authorization => "Bearer $short->{token}" })->{status}, 200, 'short-lived token works');
sleep 2.2;
$l = api($t, GET => '', user => 'lister')->{json};
is_deeply($l->{facets}{status}, { active => 6, expired => 1, revoked => 2 }, 'after expiry: facets count it expired');
my ($sl) = grep { $_->{name} eq 'short-lived' } @{ $l->{items} };
is($sl->{status}, 'expired', 'after expiry: status expired');
is(api($t, GET => '?status=expired', user => 'lister')->{json}{totalCount}, 1, 'status=expired filter');
is($t->get('/static/protected.txt', { Authorization => "Bearer $short->{token}" })->{status}, 401, 'after expiry: 401');

# HEAD
my $h = $t->http(HEAD => '/v1/personal-access-tokens', { headers => { 'X-User' => 'lister' } });
is($h->{status}, 200, 'HEAD list: 200');
is($h->{content} // '', '', 'HEAD list: no body');

secrecy_scan($t);
$t->done;
done_testing;
