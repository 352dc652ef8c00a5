# Redis Sentinel failover, end to end, on a real group (PatSentinel:
# master, replica, three sentinels) and three nginx that find the master
# through the sentinels: N without a cache, A and B with auth_pat_cache.
#
# 1. SENTINEL FAILOVER: every check of a valid token answers 200 or 503
#    (fail closed, never 401) and soon 200 again; the API then writes to
#    the promoted replica (create, list, revoke, the revoked token 401).
# 2. The old master, demoted by Sentinel to a replica of the new one,
#    is left: few READONLY / "is not the master" lines, no retry loop on
#    it; the watcher logged the +switch-master.
# 3. The cache on two nginx across a second failover (kill -9 of the
#    master): a revoke through A is refused by B at once, a token never
#    revoked stays 200 on B.
# 4. No alert, crit, emerg or crash in any error.log.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatSentinel;
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $workers = 2;

my $t = PatTest->new;
my $t0 = time;
my $g = PatSentinel->new($t);
diag sprintf 'sentinel group up in %.1f s', time - $t0;

my $redis = $g->addrs . ' sentinel=' . $g->name;
$t->nginx_conf(workers => $workers,
               http => gateway_conf(redis => $redis, timeout => '1s'));
my ($A, $B) = (PatTest->new, PatTest->new);
for my $x ($A, $B) {
    $x->{key} = $t->key;
    $x->nginx_conf(workers => $workers, http => gateway_conf(
        redis => $redis, timeout => '1s',
        extra => 'auth_pat_cache zone=patcache:1m ttl=30s;'));
}
$_->start_nginx for $t, $A, $B;

my $PATH = '/static/protected.txt';
sub check { $_[0]->get($PATH, { Authorization => "Bearer $_[1]" })->{status} }

# a create until the workers have found the master (bounded)
sub create {
    my ($x, $user, $name) = @_;
    my $r = create_retry($x, user => $user, name => $name);
    die "create on $x->{dir}: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}

sub until_ok { PatTest::until_ok(@_) }

sub role { my $r = eval { $t->redis_cmd_on($_[0], 'ROLE') }; ref $r eq 'ARRAY' ? $r->[0] : '' }

# the lines of x's error.log from offset on that match re
sub log_lines {
    my ($x, $re, $off) = @_;
    return grep { /$re/ } split /\n/, substr($x->error_log, $off // 0);
}
my $NOT_MASTER = qr/READONLY|is not the master/;

# the names of the module's connections on a data node (auth_pat:ROLE:PID)
sub auth_clients {
    my ($node) = @_;
    my $l = eval { $t->redis_cmd_on($node, 'CLIENT', 'LIST') } // '';
    return () if ref $l;
    return map { /\bname=(auth_pat:\w+:\d+)/ ? $1 : () } split /\n/, $l;
}
# every worker of each nginx has its connections of these roles on node
sub linked_to {
    my ($node, @want) = @_;
    my %have = map { $_ => 1 } auth_clients($node);
    for my $w (@want) {
        my ($x, @roles) = @$w;
        my @pids = $x->worker_pids;
        return 0 unless @pids == $workers;
        for my $pid (@pids) { $have{"auth_pat:$_:$pid"} or return 0 for @roles }
    }
    return 1;
}
my @ALL = ([$t, 'cmd'], [$A, 'cmd', 'sub'], [$B, 'cmd', 'sub']);

# ---------------------------------------------------------------- 1.
my $old = $g->named;
my $new = $g->replica->{port};
is($old, $g->master->{port}, 'the sentinels name the first master');

my $tok = create($t, 'rita', 'before');
is(check($t, $tok->{token}), 200, 'a token created through the API works');
# written to the master: on the replica before it is promoted
is($t->redis_cmd_on($g->node($old), 'WAIT', 1, 2000), 1, 'replicated');

my $sentinel = ($g->sentinels)[0];
my $f;
until_ok(5, sub {
    $f = $t->redis_cmd_on($sentinel, 'SENTINEL', 'FAILOVER', $g->name);
    !ref $f;
});
my $k = time;
is($f, 'OK', 'SENTINEL FAILOVER accepted') or diag explain $f;

# checks every ~50 ms until the sentinels name the replica and 20 checks
# in a row said 200 (bounded: 30 s)
my (%seen, $first503, $back, $run, $switched);
$run = 0;
while (time - $k < 30 * $slack) {
    my $s = check($t, $tok->{token});
    $seen{$s}++;
    $first503 //= time if $s == 503;
    $back //= time if $s == 200 && $first503;
    $run = $s == 200 ? $run + 1 : 0;
    $switched ||= ($g->named // 0) == $new;
    last if $switched && $run >= 20;
    sleep 0.05;
}
my $window = $first503 ? ($back // time) - $k : 0;
diag sprintf 'manual failover: 503 window %.2f s, %d checks 503, %d checks 200',
     $window, $seen{503} // 0, $seen{200} // 0;
ok(!grep({ $_ != 200 && $_ != 503 } keys %seen), 'during the switch: only 200 or 503, never 401')
    or diag explain \%seen;
ok($switched, 'the sentinels name the replica');
ok($run >= 20, 'then 200 again, 20 checks in a row');
ok(!$first503 || $back, 'a 200 after the 503s');
ok($g->wait_master($new, 10 * $slack), 'every sentinel names the replica, which is master');

# the API writes to the promoted replica
my $c1 = api($t, POST => '', user => 'rita', body => { name => 'after' });
is($c1->{status}, 201, 'create after the switch: 201') or diag $c1->{content};
my $after = $c1->{json}{data} // {};
my $l = api($t, GET => '', user => 'rita');
is($l->{status}, 200, 'list after the switch: 200');
is_deeply([ sort map { $_->{name} } @{ $l->{json}{items} // [] } ], [qw(after before)],
          'the list shows both tokens');
is(check($t, $after->{token} // 'x'), 200, 'the new token works');
is(api($t, DELETE => "/$after->{id}", user => 'rita')->{status}, 200, 'revoke after the switch: 200');
is(check($t, $after->{token} // 'x'), 401, 'the revoked token: 401');
is(check($t, $tok->{token}), 200, 'the older token still works');
# while the old master is still a master (Sentinel demotes it some
# seconds later), no nginx may write there: every connection moved
diag 'note: the old master was demoted already' unless role($g->node($old)) eq 'master';
ok(until_ok(2 * $slack, sub { !auth_clients($g->node($old)) }),
   'no connection of any nginx left on the old master')
    or diag join ' ', auth_clients($g->node($old));
ok(until_ok(2 * $slack, sub { linked_to($g->node($new), @ALL) }),
   'every worker of N, A, B connected to the promoted replica (commands, subscriber)')
    or diag join ' ', auth_clients($g->node($new));

# ---------------------------------------------------------------- 2.
# Sentinel turns the old master into a replica of the new one some
# seconds after the switch (+convert-to-slave); checks and API calls go on
# meanwhile, so a module stuck on the demoted node would meet it over and
# over.
my $conv0 = time;
my %seen2;
my $converted = until_ok(20 * $slack, sub {
    $seen2{ check($t, $tok->{token}) }++;
    $seen2{ 'api ' . api($t, GET => '', user => 'rita')->{status} }++;
    role($g->node($old)) eq 'slave';
});
ok($converted, 'Sentinel turned the old master into a replica');
diag sprintf 'old master demoted %.1f s after the switch', time - $conv0;
$g->wait_synced($g->node($old));
# and some more traffic once it is a replica
for (1 .. 20) {
    $seen2{ check($t, $tok->{token}) }++;
    $seen2{ 'api ' . api($t, GET => '', user => 'rita')->{status} }++;
    sleep 0.05;
}
is_deeply([ sort keys %seen2 ], [ '200', 'api 200' ],
          'while and after the old master is demoted: checks and lists 200')
    or diag explain \%seen2;
my $c2 = api($t, POST => '', user => 'rita', body => { name => 'later' });
is($c2->{status}, 201, 'create once the old master is a replica: 201') or diag $c2->{content};

# Bound, 4 lines a worker: a worker has two data connections here (its
# commands and, on A and B, the cache's subscriber; no API connection
# without replicas=), and each may meet the demoted node at most twice:
# once by READONLY on a connection open when it is demoted, once by ROLE
# "slave" at a reconnect whose sentinel answer lagged behind the switch.
# Then it asks the sentinels, who name the new master.  A module that kept
# retrying on the demoted node would log a line a retry: with a 1 s
# timeout, a dozen or more a worker over the seconds of traffic above.
# (Normally there are none: the watcher moves every connection on
# +switch-master, before Sentinel demotes the old master.)
for my $x ([N => $t], [A => $A], [B => $B]) {
    my @ro = log_lines($x->[1], $NOT_MASTER);
    cmp_ok(scalar @ro, '<=', 4 * $workers, "$x->[0]: few READONLY / not-the-master lines (" . @ro . ')')
        or diag join "\n", @ro;
    my @sw = log_lines($x->[1], qr/reports a new master of "\Q${\ $g->name }\E": 127\.0\.0\.1 port $new\b/);
    cmp_ok(scalar @sw, '>=', 1, "$x->[0]: the watcher saw +switch-master");
}

# ---------------------------------------------------------------- 3.
my $tokA = create($A, 'cora', 'revoked later');
my $tokB = create($A, 'cora', 'kept');
my %pre;
for (1 .. 8) { $pre{"$_->[0] " . check($_->[1], $_->[2])}++ for [A => $A, $tokA->{token}], [B => $B, $tokA->{token}], [B => $B, $tokB->{token}] }
is_deeply(\%pre, { 'A 200' => 8, 'B 200' => 16 }, 'both tokens 200 on A and B (cached)');

# kill -9 the master (the first replica) once the old one is in sync
my $m2 = $g->node($new);
my $r2 = $g->node($old);
$g->wait_synced($r2);
is($t->redis_cmd_on($m2, 'WAIT', 1, 2000), 1, 'replicated before the kill');
my $aoff = length $A->error_log;
my $boff = length $B->error_log;
$t->kill_redis($m2, 'KILL');
$k = time;
my %seen3;
my ($a_ok, $b_ok) = (0, 0);
while (time - $k < 30 * $slack) {
    my $sa = check($A, $tokA->{token});
    my $sb = check($B, $tokB->{token});
    $seen3{"A $sa"}++;
    $seen3{"B $sb"}++;
    $a_ok = $sa == 200 ? $a_ok + 1 : 0;
    $b_ok = $sb == 200 ? $b_ok + 1 : 0;
    last if $a_ok >= 10 && $b_ok >= 10 && ($g->named // 0) == $old;
    sleep 0.05;
}
diag sprintf 'kill -9: both back after %.2f s: %s', time - $k,
     join ' ', map { "$_=$seen3{$_}" } sort keys %seen3;
ok(!grep({ !/ (200|503)$/ } keys %seen3), 'during the failover: 200 or 503 on A and B, never 401')
    or diag explain \%seen3;
ok($a_ok >= 10 && $b_ok >= 10, 'both serve 200 again');
ok($g->wait_master($old, 10 * $slack), 'the old master is master again');
ok(until_ok(2 * $slack, sub { linked_to($g->node($old), [$A, 'cmd', 'sub'], [$B, 'cmd', 'sub']) }),
   'every worker of A and B connected to it (commands, subscriber)')
    or diag join ' ', auth_clients($g->node($old));

# B has both tokens again (every worker)
my %warm;
$warm{ check($B, $_) }++ for ($tokA->{token}, $tokB->{token}) x 8;
is_deeply(\%warm, { 200 => 16 }, 'B: both tokens 200 after the failover');

is(api($A, DELETE => "/$tokA->{id}", user => 'cora')->{status}, 200, 'revoke through A');
my $rt = time;
my $first = check($B, $tokA->{token});
my $got401 = $first == 401 || until_ok(1, sub { check($B, $tokA->{token}) == 401 });
ok($got401, sprintf 'B refuses the revoked token within 1 s (first answer %d, after %.2f s)',
   $first, time - $rt);
my %after;
$after{ check($B, $tokA->{token}) }++ for 1 .. 10;
is_deeply(\%after, { 401 => 10 }, 'B: 401 on every worker');
my %kept;
$kept{ check($B, $tokB->{token}) }++ for 1 .. 10;
is_deeply(\%kept, { 200 => 10 }, 'B: the token never revoked stays 200');

for my $x ([A => $A, $aoff], [B => $B, $boff]) {
    my @sw = log_lines($x->[1], qr/reports a new master of "\Q${\ $g->name }\E": 127\.0\.0\.1 port $old\b/, $x->[2]);
    cmp_ok(scalar @sw, '>=', 1, "$x->[0]: the watcher saw the second +switch-master");
}

# ---------------------------------------------------------------- 4.
$_->done for $A, $B, $t;
diag sprintf 'total %.1f s', time - $t0;
done_testing;
