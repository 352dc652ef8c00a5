# Redis Cluster with auth_pat_cache: the invalidation feed's names share
# the hash tag {inval} (pat:{inval}:seq, pat:{inval}:epoch, the channel
# pat:{inval}), and each worker's subscriber is homed on the master of
# that slot, where the revoke's script counts and publishes.  Two nginx,
# A and B, with a cache, on a six-node cluster (t/lib/PatCluster.pm):
# 1. every worker's subscriber is on the feed's master; a revoke through
#    B is refused by A's warm cache on the very next request;
# 2. the feed's master killed (kill -9): the caches are not trusted (a
#    record deleted behind the API's back is refused at once), checks of
#    the other masters' slots never fail, its own answer 503 then 200;
#    once the replica is promoted every subscriber moves there, the
#    caches are in sync and trusted again, and a revoke through B is
#    refused by A's warm cache on the very next request, 200 of 200;
# 3. the feed's slot migrated to another master: while it migrates (an
#    ASK for it) the caches are not trusted and a revoke through B is
#    refused by A at once; then every subscriber follows the slot there,
#    and revocation through the cache is immediate again.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatCluster;
use PatToken qw(token_digest);
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $workers = 2;
my $T0 = time;

my $t = PatTest->new;
my $c = PatCluster->new($t);
diag sprintf 'cluster up in %.1f s', time - $T0;

my ($A, $B) = ($t, PatTest->new);
$B->{key} = $t->key;
for my $x ($A, $B) {
    $x->nginx_conf(workers => $workers, error_log_level => $ENV{T68_DEBUG} ? 'debug' : 'info', http => gateway_conf(
        redis => $c->seeds . ' cluster', timeout => '1s',
        extra => 'auth_pat_cache zone=patcache:1m ttl=30s;'));
    $x->start_nginx;
}

my $PATH = '/static/protected.txt';
sub check { $_[0]->get($PATH, { Authorization => "Bearer $_[1]" })->{status} }
sub vkey  { 'pat:v:' . token_digest($t->key, $_[0]) }
sub until_ok { PatTest::until_ok(@_) }

my $FEED = PatCluster::slot('pat:{inval}:seq');
is(PatCluster::slot('pat:{inval}'), $FEED, 'the channel hashes to the counter\'s slot');
is(PatCluster::slot('pat:{inval}:epoch'), $FEED, 'and so does the epoch');

# the names of the module's connections on a node (auth_pat:ROLE:PID)
sub clients {
    my ($node) = @_;
    my $l = eval { $t->redis_cmd_on($node, 'CLIENT', 'LIST') } // '';
    return () if ref $l;
    return map { /\bname=(auth_pat:\w+:\d+)/ ? $1 : () } split /\n/, $l;
}
# every worker of A and B has its subscriber on node
sub homed_on {
    my ($node) = @_;
    my %have = map { $_ => 1 } clients($node);
    for my $x ($A, $B) {
        my @pids = $x->worker_pids;
        return 0 unless @pids == $workers;
        $have{"auth_pat:sub:$_"} or return 0 for @pids;
    }
    return 1;
}

sub create {
    my ($x, $user, $name) = @_;
    my $r = create_retry($x, user => $user, name => $name);
    die "create $user: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}

# n rounds: a token made through A and warmed in A's cache, revoked
# through B, then asked of A at once.  Returns the statuses of those
# first requests after the revokes' 2xx, and the problems met
sub revoke_rounds {
    my ($n, $tag) = @_;
    my (%first, @bad);
    for my $i (1 .. $n) {
        my $u = "$tag$i";
        my $tok = create($A, $u, 'r');
        my @warm = map { check($A, $tok->{token}) } 1 .. 3;
        push @bad, "$u: warm @warm" if grep { $_ != 200 } @warm;
        my $d = api($B, DELETE => "/$tok->{id}", user => $u)->{status};
        push @bad, "$u: revoke $d" if $d != 200;
        $first{ check($A, $tok->{token}) }++;
    }
    return (\%first, \@bad);
}

# ---------------------------------------------------------------- 1.
my $feed = $c->owner($FEED);
ok(until_ok(10 * $slack, sub { homed_on($feed) }),
   "every worker's subscriber is on the feed's master ($feed->{name})")
    or diag join ' ', clients($feed);
{
    my ($first, $bad) = revoke_rounds(20, 'pre');
    is_deeply($first, { 401 => 20 }, 'a revoke through B: A refuses at once, 20 of 20')
        or diag explain $first;
    is(scalar @$bad, 0, 'no other failure') or diag join "\n", @$bad;
}

# the cache is used: a record deleted behind the API's back stays 200 on
# A (no invalidation was published) while the cache is trusted
sub cached_after_delete {
    my ($user) = @_;
    my $tok = create($A, $user, 'c');
    check($A, $tok->{token}) for 1 .. 3;
    my $node = $c->owner(PatCluster::slot(vkey($tok->{token})));
    $t->redis_cmd_on($node, 'DEL', vkey($tok->{token}));
    return check($A, $tok->{token});
}
is(cached_after_delete('cachetest1'), 200, 'the cache serves a token whose record was deleted directly');

# ---------------------------------------------------------------- 2.
# tokens on every master, warm in A's cache
my (%on, %warm_tok);
for my $i (1 .. 60) {
    my $tok = create($A, "warm$i", 'w');
    my $m = $c->owner(PatCluster::slot(vkey($tok->{token})));
    next if @{ $on{ $m->{port} } //= [] } >= 3;
    push @{ $on{ $m->{port} } }, $tok;
    check($A, $tok->{token});
}
is(scalar(keys %on), 3, 'tokens on all three masters');
my @elsewhere = map { @{ $on{$_} } } grep { $_ != $feed->{port} } keys %on;
my @on_feed = @{ $on{ $feed->{port} } };

my ($replica) = grep {
    my $i = eval { $t->redis_cmd_on($_, 'INFO', 'replication') } // '';
    !ref $i && $i =~ /^master_port:$feed->{port}\r?$/m
} $c->replicas;
ok($replica, 'the feed master has a replica');
ok($c->wait_caught_up($feed, $replica), 'every write is on its replica before the kill');

# a cached token on a live master, its record deleted right after the kill
my $probe = $elsewhere[0];
my $probe_node = $c->owner(PatCluster::slot(vkey($probe->{token})));

my $k = time;
$A->get('/static/KILL-MARK');
$t->kill_redis($feed, 'KILL');
$t->redis_cmd_on($probe_node, 'DEL', vkey($probe->{token}));
# (the kernel may hand nginx the end of those connections a moment later)
ok(until_ok(2 * $slack, sub { check($A, $probe->{token}) == 401 }),
   'the feed\'s master down: A\'s cache is not trusted (a record deleted directly is refused)');
my %untrusted;
$untrusted{ check($A, $probe->{token}) }++ for 1 .. 10;
is_deeply(\%untrusted, { 401 => 10 }, 'on every worker');

my (%seen_else, %seen_feed, $back);
while (time - $k < 30 * $slack) {
    $seen_else{ check($A, $_->{token}) }++ for @elsewhere[1 .. $#elsewhere];
    my @f = map { check($A, $_->{token}) } @on_feed;
    $seen_feed{$_}++ for @f;
    if (!grep { $_ != 200 } @f) { $back = time - $k; last }
    sleep 0.05;
}
ok(defined $back, sprintf 'the feed master\'s tokens answer 200 again after %.2f s', $back // -1);
diag sprintf 'kill -9 of the feed\'s master: its checks back after %.2f s (cluster-node-timeout 2000): %s',
    $back // -1, join ' ', map { "$_=$seen_feed{$_}" } sort keys %seen_feed;
is(join(',', sort keys %seen_else), '200', 'the other masters\' checks never failed ('
   . join(' ', map { "$_: $seen_else{$_}" } sort keys %seen_else) . ')');
is(join(',', grep { $_ != 200 && $_ != 503 } keys %seen_feed), '',
   'the feed master\'s checks: 200 or 503 only, never 401');

ok(until_ok(10 * $slack, sub { (($c->owner($FEED) // {})->{port} // 0) == $replica->{port} }),
   'the replica serves the feed\'s slot');
ok(until_ok(10 * $slack, sub { homed_on($replica) }),
   'every worker\'s subscriber moved to the promoted replica')
    or diag join ' ', clients($replica);
ok(until_ok(5 * $slack, sub { cached_after_delete('cachetest' . int(rand 1e9)) == 200 }),
   'the caches are in sync and trusted again');
{
    my ($first, $bad) = revoke_rounds(200, 'post');
    is_deeply($first, { 401 => 200 }, 'after the failover: a revoke through B is refused by A\'s warm '
              . 'cache on the very next request, 200 of 200') or diag explain $first;
    is(scalar @$bad, 0, 'no other failure') or diag join "\n", @$bad[0 .. ($#$bad > 4 ? 4 : $#$bad)];
}

# ---------------------------------------------------------------- 3.
{
    my $from = $c->owner($FEED);
    my ($to) = grep { $_ != $from } $c->masters;
    my %id = map { $_->{port} => $t->redis_cmd_on($_, 'CLUSTER', 'MYID') } $c->masters;
    $t->redis_cmd_on($to, 'CLUSTER', 'SETSLOT', $FEED, 'IMPORTING', $id{ $from->{port} });
    $t->redis_cmd_on($from, 'CLUSTER', 'SETSLOT', $FEED, 'MIGRATING', $id{ $to->{port} });
    my $keys = $t->redis_cmd_on($from, 'CLUSTER', 'GETKEYSINSLOT', $FEED, 100);
    $t->redis_cmd_on($from, 'MIGRATE', '127.0.0.1', $to->{port}, '', 0, 5000, 'KEYS', @$keys) if @$keys;
    # the keys at the target, the slot still migrating: a revoke's script
    # runs there (ASK), and the subscribers on the source would hear of it
    # over the bus only, late.  Each worker's epoch probe (every
    # keepalive) meets the ASK too: the caches are not trusted meanwhile
    ok(until_ok(3 * $slack, sub { cached_after_delete('mig' . int(rand 1e9)) == 401 }),
       'the feed\'s slot migrating: A\'s cache is not trusted');
    my ($mfirst, $mbad) = revoke_rounds(20, 'migrating');
    is_deeply($mfirst, { 401 => 20 }, 'a revoke through B meanwhile: A refuses at once, 20 of 20')
        or diag explain $mfirst;
    is(scalar @$mbad, 0, 'no other failure') or diag join "\n", @$mbad;
    $t->redis_cmd_on($_, 'CLUSTER', 'SETSLOT', $FEED, 'NODE', $id{ $to->{port} })
        for $to, $from, grep { $_ != $to && $_ != $from } $c->masters;
    is($c->owner($FEED)->{port}, $to->{port}, 'the feed\'s slot migrated to another master');
    my $m = time;
    ok(until_ok(5 * $slack, sub { homed_on($to) }),
       sprintf 'every worker\'s subscriber followed it (%.2f s)', time - $m)
        or diag join ' ', clients($to);
    ok(until_ok(5 * $slack, sub { cached_after_delete('cachetest' . int(rand 1e9)) == 200 }),
       'the caches are trusted again');
    my ($first, $bad) = revoke_rounds(20, 'moved');
    is_deeply($first, { 401 => 20 }, 'a revoke through B: A refuses at once, 20 of 20')
        or diag explain $first;
    is(scalar @$bad, 0, 'no other failure') or diag join "\n", @$bad;
    like($A->error_log, qr/slot $FEED of the invalidations is served by "127\.0\.0\.1:$to->{port}" now/,
         'A logged the move');
}

$_->done for $B, $A;
diag sprintf 'total %.1f s', time - $T0;
done_testing;
