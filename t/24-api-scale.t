# 10,000 tokens for one user: the list stays correct; its latency is
# printed (a figure, not an assertion: see ./build.sh bench).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use PatTest;
use PatApi qw(api_env api);
use PatLoad qw(burst);

my $N = 10_000;
my $t = api_env(max_tokens => 100_000);

my @names = map { sprintf('token %05d %s', $_, $_ % 7 == 0 ? 'Deploy' : 'ci') } 1 .. $N;
my $t0 = time;
my $res = burst(port => $t->port, concurrency => 32, timeout => 30,
    requests => [ map { { method => 'POST', path => '/v1/personal-access-tokens',
                          headers => { 'X-User' => 'big', 'Content-Type' => 'application/json' },
                          body => qq({"name":"$_"}) } } @names ]);
my $created = grep { $_->{status} == 201 } @$res;
is($created, $N, "created $N tokens for one user");
diag sprintf('created %d tokens in %.2f s (%.0f/s, 32 connections)', $N, time - $t0, $N / (time - $t0));

# revoke 100 of them
my $page = api($t, GET => '?page_size=100&sort_by=name&sort_direction=asc', user => 'big')->{json};
my @rev = map { $_->{id} } @{ $page->{items} };
$res = burst(port => $t->port, concurrency => 20,
    requests => [ map { { method => 'DELETE', path => "/v1/personal-access-tokens/$_", headers => { 'X-User' => 'big' } } } @rev ]);
is(scalar(grep { $_->{status} == 200 } @$res), 100, 'revoked 100');

my %ms;
# the figure is the HTTP exchange alone (raw socket), not Perl's JSON decoding
sub timed {
    my ($label, $q) = @_;
    my @times;
    for (1..7) {
        my $s = time;
        my $raw = $t->raw_http("GET /v1/personal-access-tokens$q HTTP/1.0\r\nX-User: big\r\n\r\n");
        push @times, (time - $s) * 1000;
        die "bad answer: " . substr($raw, 0, 200) unless $raw =~ m{^HTTP/1\.1 200 };
    }
    @times = sort { $a <=> $b } @times;
    $ms{$label} = $times[3];
    return api($t, GET => $q, user => 'big')->{json};
}

my $l = timed('default (createdAt desc, page 0)', '');
is($l->{totalCount}, $N, 'totalCount');
is_deeply($l->{facets}{status}, { active => $N - 100, expired => 0, revoked => 100 }, 'facets');
is(scalar @{ $l->{items} }, 25, 'a page of 25');
my @c = map { $_->{createdAt} } @{ $l->{items} };
is_deeply(\@c, [ sort { $b cmp $a } @c ], 'newest first');

$l = timed('sort_by=name asc, page 7 of 100', '?sort_by=name&sort_direction=asc&page_size=100&page_index=7');
is_deeply([ map { $_->{name} } @{ $l->{items} } ], [ @names[700 .. 799] ], 'sort by name: the right page');

$l = timed('search_term=deploy', '?search_term=deploy&page_size=100');
is($l->{totalCount}, scalar(grep { /Deploy/ } @names), 'search_term: count');

$l = timed('status=revoked', '?status=revoked&page_size=100');
is($l->{totalCount}, 100, 'status=revoked: count');
is_deeply([ sort map { $_->{id} } @{ $l->{items} } ], [ sort @rev ], 'status=revoked: the right ones');

$l = timed('sort_by=expiresAt asc, last page', '?sort_by=expiresAt&sort_direction=asc&page_size=100&page_index=99');
is(scalar @{ $l->{items} }, 100, 'last page of 100');

diag sprintf('list latency with %d tokens (median of 7, ms): %s', $N,
             join('; ', map { sprintf('%s %.1f', $_, $ms{$_}) } sort keys %ms));

$t->done;
done_testing;
