# The default list and the status-filtered list read a page of sorted sets
# (issue 13, item 6): O(log n + page) in Redis and nginx. Their answers
# equal those of the scan (search, scope, other orders) over the same
# tokens; tokens move from active to expired as they expire; sets that an
# earlier release did not write are built from the index on the first
# list; purging keeps sets and index in step.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api_env api iso_ms);

my $t = api_env(max_tokens => 1000);

sub create {
    my ($user, $name, %o) = @_;
    my $r = api($t, POST => '', user => $user,
                body => { name => $name, %o });
    return $r->{json}{data} // die "create: $r->{status} $r->{content}\n";
}
sub list {
    my ($user, $q) = @_;
    my $r = api($t, GET => "?$q", user => $user);
    die "list $q: $r->{status} $r->{content}\n" unless $r->{status} == 200;
    return $r->{json};
}
sub stat_calls {
    my ($cmd) = @_;
    my $i = $t->redis_cmd('INFO', 'commandstats');
    return $i =~ /cmdstat_$cmd:calls=(\d+)/ ? $1 : 0;
}
sub ids { [ map { $_->{id} } @{ $_[0]{items} } ] }

# --- a mix: active, expiring soon, revoked, rotated; some created in one ms
my @all;
for my $i (1 .. 30) {
    push @all, create('mia', "tok $i");
}
my @soon = map { create('mia', "tok soon $_", expiresAt => iso_ms(time * 1000 + 1500)) } 1 .. 5;
for my $i (0, 3, 7, 11) {
    is(api($t, DELETE => "/$all[$i]{id}", user => 'mia')->{status}, 200, "revoke $i");
}
my $rot = api($t, POST => "/$all[5]{id}/rotate", user => 'mia', body => {});
is($rot->{status}, 201, 'rotate one');

# the scan path is taken by a search every name matches ("tok")
sub same {
    my ($q, $what) = @_;
    my $fast = list('mia', $q);
    my $scan = list('mia', "$q&search_term=tok");
    is_deeply(ids($fast), ids($scan), "$what: the page equals the scan's");
    is($fast->{totalCount}, $scan->{totalCount}, "$what: totalCount equals the scan's");
    is_deeply($fast->{facets}, $scan->{facets}, "$what: facets equal the scan's");
    return $fast;
}
for my $status ('', 'active', 'expired', 'revoked') {
    for my $dir ('desc', 'asc') {
        for my $page ([ 10, 0 ], [ 10, 1 ], [ 10, 3 ], [ 7, 2 ], [ 100, 0 ]) {
            my $q = "sort_direction=$dir&page_size=$page->[0]&page_index=$page->[1]";
            $q .= "&status=$status" if $status;
            same($q, "status=" . ($status || 'any') . " $dir size $page->[0] page $page->[1]");
        }
    }
}
my $l = list('mia', 'page_size=100');
is($l->{totalCount}, 36, 'all 36 tokens listed');
is_deeply($l->{facets}{status}, { active => 31, expired => 0, revoked => 5 }, 'facets before expiry');

# --- expiry moves tokens from active to expired, once
sleep 1.7;
$l = same('status=expired&page_size=100', 'after expiry, status=expired');
is_deeply([ sort @{ ids($l) } ], [ sort map { $_->{id} } @soon ], 'the five expired ones');
$l = same('status=active&page_size=100', 'after expiry, status=active');
is($l->{totalCount}, 26, 'active: 26 left');
is_deeply(list('mia', '')->{facets}{status}, { active => 26, expired => 5, revoked => 5 }, 'facets after expiry');
is(api($t, DELETE => "/$soon[0]{id}", user => 'mia')->{status}, 200, 'revoke an expired one');
is_deeply(list('mia', '')->{facets}{status}, { active => 26, expired => 4, revoked => 6 }, 'expired then revoked: counted revoked');

# --- the default list reads no index
my ($hgetall, $evalsha) = (stat_calls('hgetall'), stat_calls('evalsha'));
list('mia', '') for 1 .. 5;
list('mia', 'status=revoked') for 1 .. 5;
is(stat_calls('hgetall') - $hgetall, 0, 'default and status lists: no HGETALL of the index');
ok(stat_calls('evalsha') - $evalsha >= 10, 'one script per list');
list('mia', 'search_term=tok');
is(stat_calls('hgetall') - $hgetall, 1, 'a search reads the index');

# --- an earlier release's keys: index and metadata only
my @old = map { create('olga', "old $_") } 1 .. 12;
api($t, DELETE => "/$old[2]{id}", user => 'olga');
my $before = list('olga', 'search_term=old&page_size=100');
$t->redis_cmd('DEL', map { "pat:{u:olga}:$_" } qw(c ca ce cr));
is($t->redis_cmd('EXISTS', 'pat:{u:olga}:c'), 0, 'sets removed (as an earlier release left them)');
$l = list('olga', 'page_size=100');
is_deeply(ids($l), ids($before), 'the first list builds the sets from the index');
is_deeply($l->{facets}, $before->{facets}, 'facets right after the build');
is($t->redis_cmd('ZCARD', 'pat:{u:olga}:c'), 12, 'the sets hold every token');
# a token created by this release before the first list: still built
$t->redis_cmd('DEL', map { "pat:{u:olga}:$_" } qw(c ca ce cr));
create('olga', 'old 13');
is(list('olga', 'page_size=100')->{totalCount}, 13, 'a create before the first list: sets rebuilt, 13');
is(list('olga', 'status=revoked')->{totalCount}, 1, 'the revoked one is in the revoked set');

# --- an earlier release's revoke beside this one (a rolling upgrade): it
# marks the index and drops the token from a, not from the sets
{
    my @p = map { create('pia', "p $_") } 1 .. 4;
    list('pia', '');
    my $ix = $t->redis_cmd('HGET', 'pat:{u:pia}:i', $p[1]{id});
    my @f = split /:/, $ix, 5;
    $f[3] = int(time * 1000);
    $t->redis_cmd('HSET', 'pat:{u:pia}:i', $p[1]{id}, join(':', @f));
    $t->redis_cmd('ZREM', 'pat:{u:pia}:a', $p[1]{id});
    create('pia', 'p 5');
    my $l = list('pia', 'status=revoked');
    is_deeply(ids($l), [ $p[1]{id} ], "an earlier release's revoke: the revoked set has it");
    is_deeply(list('pia', '')->{facets}{status}, { active => 4, expired => 0, revoked => 1 },
              "an earlier release's revoke: facets");
    same('status=active&page_size=100', "an earlier release's revoke: active");
}

# --- ties in createdAt: both paths order them alike
my $ms = time * 1000;
for my $i (1 .. 6) {
    my $id = sprintf('00000000-0000-4000-8000-%012d', $i);
    my $rec = sprintf('{"id":"%s","name":"tie %d","prefix":"pat_x","c":1700000000000,"e":null,"l":null,"r":null,"d":"%s","rf":null,"rt":null,"k":null,"s":[]}', $id, $i, 'ab' x 32);
    $t->redis_cmd('HSET', 'pat:{u:tina}:m', $id, $rec);
    $t->redis_cmd('HSET', 'pat:{u:tina}:i', $id, "1700000000000::::tie $i");
    $t->redis_cmd('ZADD', 'pat:{u:tina}:a', '+inf', $id);
}
for my $dir ('desc', 'asc') {
    my $fast = list('tina', "sort_direction=$dir&page_size=4");
    my $scan = list('tina', "sort_direction=$dir&page_size=4&search_term=tie");
    is_deeply(ids($fast), ids($scan), "ties in createdAt, $dir: the same order");
}

$t->done;
done_testing;
