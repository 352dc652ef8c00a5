# Redis Cluster with replicas=1: a revoke or rotate answers 2xx only
# once WAIT, sent to the master of each validation record it changed,
# counts a replica that holds the change.  Six nodes (t/lib/PatCluster.pm).
# 1. Each worker has, besides its command connection, an API connection
#    to every master (auth_pat:api:PID): the WAIT blocks that one only.
# 2. Revoke and rotate for users on every master answer 2xx; a rotation
#    whose new record lives on another master than the old one sends a
#    WAIT to each of the two masters.
# 3. The replica of a record's master stopped (SIGSTOP): its revoke
#    answers 503 within the timeout, with an [error] line; a check of
#    another token on that master, sent while the WAIT blocks, is
#    answered long before the WAIT ends (it is on the other
#    connection); once the replica runs again, the retried revoke
#    answers 200 and the token is refused.
# 4. A revoke answered 200, then kill -9 of its master at once: the
#    revoked token is never 200 (401 or 503), and 401 once the replica
#    is promoted.
# 5. A revoke while the record's slot migrates: the deletion is answered
#    by the target (ASK) and the WAIT goes to that connection, not to the
#    table's owner: with the target's replica stopped, 503.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use PatTest;
use PatCluster;
use PatToken qw(token_digest);
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $workers = 2;
my $T0 = time;
# WAIT blocks up to 3/4 of the timeout: 4.5 s
my $timeout = 6;

my $t = PatTest->new;
my $c = PatCluster->new($t);
$t->nginx_conf(workers => $workers, http => gateway_conf(
    redis => $c->seeds . " cluster replicas=1", timeout => "${timeout}s"));
$t->start_nginx;

sub check { $t->get('/static/protected.txt', { Authorization => "Bearer $_[0]" })->{status} }
sub vkey  { 'pat:v:' . token_digest($t->key, $_[0]) }
sub master_of { $c->owner(PatCluster::slot(vkey($_[0]))) }
sub until_ok { PatTest::until_ok(@_) }
sub create {
    my ($u, $name) = @_;
    my $r = create_retry($t, user => $u, name => $name);
    die "create $u: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}
sub clients {
    my ($node, $role) = @_;
    my %pids = map { $_ => 1 } $t->worker_pids;
    my $l = eval { $t->redis_cmd_on($node, 'CLIENT', 'LIST') } // '';
    return () if ref $l;
    return grep { /name=auth_pat:$role:(\d+)/ && $pids{$1} } split /\n/, $l;
}
sub waits {
    my ($node) = @_;
    my ($n) = ($t->redis_cmd_on($node, 'INFO', 'commandstats') // '') =~ /cmdstat_wait:calls=(\d+)/;
    return $n // 0;
}
sub replica_of {
    my ($m) = @_;
    my ($r) = grep {
        my $i = eval { $t->redis_cmd_on($_, 'INFO', 'replication') } // '';
        !ref $i && $i =~ /^master_port:$m->{port}\r?$/m
    } $c->replicas;
    return $r;
}

# --- 1. and 2.
my %tok;
for my $i (1 .. 24) {
    my $u = "rep$i";
    for my $x (create($u, 'a'), create($u, 'b')) {
        $x->{user} = $u;
        push @{ $tok{ master_of($x->{token})->{port} } }, $x;
    }
}
is(scalar(keys %tok), 3, 'tokens on all three masters');
ok(until_ok(5 * $slack, sub { !grep { clients($_, 'api') != $workers || clients($_, 'cmd') != $workers } $c->masters }),
   'every master lists an API and a command connection per worker');

my (@bad, $two);
my @all = map { @$_ } values %tok;
for my $old_tok (grep { $_->{name} eq 'b' } @all) {
    my $u = $old_tok->{user};
    my $old = $old_tok;
    my $m1 = master_of($old_tok->{token});
    my %w0 = map { $_->{port} => waits($_) } $c->masters;
    my $rot = api($t, POST => "/$old->{id}/rotate", user => $u);
    if ($rot->{status} != 201) { push @bad, "rotate $u: $rot->{status}"; next }
    my $m2 = master_of($rot->{json}{data}{token});
    my %w1 = map { $_->{port} => waits($_) } $c->masters;
    if ($m1 != $m2) {
        $two++;
        push @bad, "rotate $u: WAITs " . join(' ', map { $w1{$_} - $w0{$_} } sort keys %w1)
            unless $w1{ $m1->{port} } > $w0{ $m1->{port} } && $w1{ $m2->{port} } > $w0{ $m2->{port} };
    }
    push @bad, "rotate $u: checks " . join(' ', check($old_tok->{token}), check($rot->{json}{data}{token}))
        unless check($old_tok->{token}) == 401 && check($rot->{json}{data}{token}) == 200;
}
is(scalar @bad, 0, 'rotations with replicas=1 answer 201, the old token refused, the new one valid')
    or diag join "\n", @bad;
ok($two, "in $two of them the new record is on another master: each master got a WAIT");

# --- 3. a stopped replica
my ($m) = grep { my $mm = $_; (grep { $_->{name} eq 'a' && master_of($_->{token}) == $mm } @all) >= 3 } $c->masters;
my @mine = grep { master_of($_->{token}) == $m } @all;
# (the 'a' tokens: the 'b' ones were rotated)
@mine = grep { $_->{name} eq 'a' } @mine;
my ($victim, $other) = @mine;
my $owner = $victim->{user};
my $r = replica_of($m);
ok($r && $c->wait_caught_up($m, $r), 'the replica of the record\'s master holds every write');
$t->kill_redis($r, 'STOP');
my $off = length $t->error_log;
my $done = $t->path('revoke.status');
my $s0 = time;
my $pid = fork // die "fork: $!";
if (!$pid) {
    my $res = api($t, DELETE => "/$victim->{id}", user => $owner);
    $t->write_file($done, sprintf "%d %.3f", $res->{status}, time - $s0);
    POSIX::_exit(0);
}
sleep 0.5;
my $c0 = time;
my $st = check($other->{token});
my $during = time - $c0;
my $block = $timeout * 3 / 4;
waitpid $pid, 0;
my ($rs, $rt) = split ' ', $t->read_file('revoke.status') // '0 0';
is($rs, 503, sprintf 'a stopped replica: the revoke answers 503 (after %.2f s)', $rt);
cmp_ok($rt, '<', $timeout + $slack, 'within the timeout');
is($st, 200, 'a check on that master meanwhile: 200');
cmp_ok($during, '<', $block - $slack - 0.5,
       sprintf('and answered while the WAIT blocked (%.2f s, the WAIT up to %.1f s)', $during, $block));
like(substr($t->error_log, $off), qr/0 of 1 replicas confirmed the change in time; answering 503/,
     'an [error] line says so');
$t->kill_redis($r, 'CONT');
my $again;
ok(until_ok(10 * $slack, sub { ($again = api($t, DELETE => "/$victim->{id}", user => $owner)->{status}) == 200 }),
   'the replica back: the retried revoke answers 200') or diag "last: $again";
is(check($victim->{token}), 401, 'and the token is refused');

# --- 4. a revoke answered 200, then kill -9 of its master
{
    my ($tk) = grep { $_ != $victim && $_ != $other } @mine;
    my $mm = master_of($tk->{token});
    my $rr = replica_of($mm);
    ok($rr && $c->wait_synced($rr), 'the replica is linked');
    is(api($t, DELETE => "/$tk->{id}", user => $tk->{user})->{status}, 200, 'a revoke answered 200');
    $t->kill_redis($mm, 'KILL');
    my (%seen, $k);
    $k = time;
    while (time - $k < 30 * $slack) {
        my $s = check($tk->{token});
        $seen{$s}++;
        last if $s == 401 && ($c->owner(PatCluster::slot(vkey($tk->{token}))) // {})->{port} == $rr->{port};
        sleep 0.05;
    }
    is(join(',', grep { $_ != 401 && $_ != 503 } keys %seen), '',
       'through the failover the revoked token is 401 or 503, never 200 ('
       . join(' ', map { "$_: $seen{$_}" } sort keys %seen) . ')');
    is(check($tk->{token}), 401, 'and 401 on the promoted replica');
}

# --- 5. the record's slot migrating: its deletion is answered by the
# target (ASK), and the WAIT goes there, on the connection that took it,
# not to the slot's owner in the table.  The target's replica stopped:
# 503 (a WAIT at the source would count the source's replica: 200)
{
    ok($c->wait_ok(15 * $slack), 'the cluster is whole again');
    my $x = create('rep1', 'migrating');
    $x->{user} = 'rep1';
    my $slot = PatCluster::slot(vkey($x->{token}));
    my $from = $c->owner($slot);
    # a target with a replica (the one promoted in 4. has none)
    my ($to) = grep { $_ != $from && replica_of($_) } $c->masters;
    my $rt = replica_of($to);
    ok($rt && $c->wait_synced($rt), 'the target has a replica, linked');
    my %id = map { $_->{port} => $t->redis_cmd_on($_, 'CLUSTER', 'MYID') } $c->masters;
    $t->redis_cmd_on($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $id{ $from->{port} });
    $t->redis_cmd_on($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $id{ $to->{port} });
    my $keys = $t->redis_cmd_on($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 100);
    $t->redis_cmd_on($from, 'MIGRATE', '127.0.0.1', $to->{port}, '', 0, 5000, 'KEYS', @$keys) if @$keys;
    is(check($x->{token}), 200, 'the token works while its slot migrates (ASK)');
    $t->kill_redis($rt, 'STOP');
    my $d0 = time;
    my $st = api($t, DELETE => "/$x->{id}", user => 'rep1')->{status};
    is($st, 503, sprintf 'its revoke, with the target\'s replica stopped: 503 (after %.2f s)', time - $d0);
    $t->kill_redis($rt, 'CONT');
    $t->redis_cmd_on($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $id{ $to->{port} })
        for $to, $from, grep { $_ != $to && $_ != $from } $c->masters;
    ok(until_ok(10 * $slack, sub { api($t, DELETE => "/$x->{id}", user => 'rep1')->{status} == 200 }),
       'the migration done and the replica back: the retried revoke answers 200');
    is(check($x->{token}), 401, 'and the token is refused');
}

$t->done;
diag sprintf 'total %.1f s', time - $T0;
done_testing;
