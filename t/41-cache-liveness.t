# A link that goes silent, a hung Redis, a Redis that loses its data and
# one that turns replica, each with the cache on: the cache stops being
# trusted within keepalive + timeout of the link's last reply, a revoked
# or lost token is never answered 200 afterwards, and everything recovers
# by itself.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api gateway_conf);
use PatToken qw(seed_token);
use PatProxy qw(silent_proxy stop);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $bound = 1 + 1 + $slack;    # keepalive + timeout + slack, in s

my $A = PatTest->new;
my $redis = $A->start_redis;
my $B = PatTest->new;
$B->{key} = $A->key;
my $flag = $B->path('silent');
my $pport = $B->free_port;
my $proxy = silent_proxy($pport, $redis->{port}, $flag);

my $cache = 'auth_pat_cache zone=pat:1m ttl=60s;';
$A->nginx_conf(http => gateway_conf(redis => "127.0.0.1:$redis->{port}",
                                    extra => $cache));
$B->nginx_conf(http => gateway_conf(redis => "127.0.0.1:$pport",
                                    extra => $cache));
$A->start_nginx;
$B->start_nginx;

sub check {
    my ($t, $tok) = @_;
    return $t->http(GET => '/static/protected.txt',
                    { headers => { Authorization => "Bearer $tok" },
                      timeout => 5 })->{status};
}
# (a worker whose link was reset may still be in its backoff: up to 3 s)
sub create {
    my ($user) = @_;
    my ($r, $t0) = (undef, time);
    do {
        $r = api($A, POST => '', user => $user, body => { name => 'live' });
        return $r->{json}{data} if $r->{status} == 201;
        sleep 0.1;
    } while (time - $t0 < 3 + $slack);
    die "create: $r->{status} $r->{content}\n";
}
# until the cache answers: no more HMGET reaches Redis for the token
sub hmgets {
    my $i = $A->redis_cmd('INFO', 'commandstats');
    return $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0;
}
# (on every worker: 200s, and no HMGET for them)
sub warm {
    my ($t, $tok) = @_;
    for (1 .. 100) {
        my @s = map { check($t, $tok) } 1 .. 6;
        my $h = hmgets();
        push @s, map { check($t, $tok) } 1 .. 6;
        return 1 if hmgets() == $h && !grep { $_ != 200 } @s;
        sleep 0.05;
    }
    return 0;
}
# statuses of checks for $secs, with the time each was answered
sub watch {
    my ($t, $tok, $secs) = @_;
    my ($t0, @seen) = (time);
    while (time - $t0 < $secs) {
        push @seen, [ time - $t0, check($t, $tok) ];
        sleep 0.05;
    }
    return @seen;
}
sub first_not {
    my ($status, @seen) = @_;
    for (@seen) { return $_ if $_->[1] != $status }
    return;
}
sub summary { my %n; $n{ $_->[1] }++ for @_; join ' ', map { "$_=$n{$_}" } sort keys %n }

# --- a link that goes silent: no FIN, no RST
my $t1 = create('u1');
ok(warm($B, $t1->{token}), 'B serves the token from its cache');
# nothing of B's in flight (its lastUsedAt report went out with the first
# hit): only the keepalive can notice the silence
sleep 1.2;
open my $fh, '>', $flag or die;
close $fh;
my $silent = time;
is(api($A, DELETE => "/$t1->{id}", user => 'u1')->{status}, 200,
   'revoked through A while B is cut off');
my @seen = watch($B, $t1->{token}, $bound + 1.5);
my $first = first_not(200, @seen);
ok($first, 'B stops answering 200') or diag summary(@seen);
ok($first && $first->[1] == 503, 'B then answers 503')
   or diag explain $first;
cmp_ok($first ? $first->[0] : 99, '<=', $bound,
       "within keepalive + timeout + ${slack} s of the silence");
my @late = grep { $first && $_->[0] > $first->[0] && $_->[1] == 200 } @seen;
is(scalar @late, 0, 'never 200 after the first 503') or diag summary(@seen);
unlink $flag;
my ($back, $t0) = (0, time);
while (time - $t0 < 3 + $slack) {
    if (check($B, $t1->{token}) == 401) { $back = 1; last }
    sleep 0.05;
}
ok($back, 'the link back: B answers 401 for the revoked token');
my $t2 = create('u2');
is(check($B, $t2->{token}), 200, 'and 200 for a new one');

# --- a hung Redis (SIGSTOP) with the cache on
my $t3 = create('u3');
ok(warm($A, $t3->{token}), 'A serves the token from its cache');
kill 'STOP', $redis->{pid};
@seen = watch($A, $t3->{token}, $bound + 1);
$first = first_not(200, @seen);
kill 'CONT', $redis->{pid};
ok($first && $first->[1] == 503, 'hung Redis: cached checks turn to 503')
   or diag summary(@seen);
cmp_ok($first ? $first->[0] : 99, '<=', $bound,
       'within keepalive + timeout + slack');
($back, $t0) = (0, time);
while (time - $t0 < 3 + $slack) {
    if (check($A, $t3->{token}) == 200) { $back = 1; last }
    sleep 0.05;
}
ok($back, 'Redis resumed: the token works again');
ok($A->wait_linked, 'and every worker is linked again');

# --- FLUSHALL: the data is gone, and so is the cache
my $t4 = create('u4');
ok(warm($A, $t4->{token}), 'cached before FLUSHALL');
$A->redis_cmd('FLUSHALL');
@seen = watch($A, $t4->{token}, $bound);
$first = first_not(200, @seen);
ok($first && $first->[1] == 401, 'after FLUSHALL the token is refused')
   or diag summary(@seen);
cmp_ok($first ? $first->[0] : 99, '<=', 1 + $slack,
       'within keepalive + slack');
@late = grep { $first && $_->[0] > $first->[0] && $_->[1] == 200 } @seen;
is(scalar @late, 0, 'never 200 again');
like($A->error_log, qr/\[warn\].*another dataset/, 'logged once, at warn');

# --- a Redis restarted empty
my $t5 = create('u5');
ok(warm($A, $t5->{token}), 'cached before the restart');
$A->kill_redis($redis, 'KILL');
$A->restart_redis($redis);
@seen = watch($A, $t5->{token}, $bound + 1);
my @ok = grep { $_->[1] == 200 } @seen;
is(scalar @ok, 0, 'restarted empty: never 200 for the lost token')
   or diag summary(@seen);
is($seen[-1][1], 401, 'and 401 once Redis is back');

# --- a master that turns replica (of a master that is not there)
my $t6 = create('u6');
my $seeded = seed_token($A, user => 'u7');
ok(warm($A, $t6->{token}), 'cached before REPLICAOF');
my $log_before = length $A->error_log;
$A->redis_cmd('REPLICAOF', '127.0.0.1', $A->free_port);
sleep 1.5;
my %n;
for (1 .. 40) {
    $n{ check($A, $t6->{token}) }++;
    $n{ check($A, $seeded->{token}) }++;
}
is_deeply(\%n, { 200 => 80 }, 'replica: checks keep answering 200 from reads');
my $r = api($A, POST => '', user => 'u8', body => { name => 'w' });
is($r->{status}, 503, 'replica: an API write answers 503');
is($r->{json}{error}, 'unavailable', 'replica: error "unavailable"');
my $during = substr($A->error_log, $log_before);
my $resets = () = $during =~ /is down|reconnecting/g;
is($resets, 0, 'no connection reset while a replica') or diag $during;
like($during, qr/\[warn\].*is a replica/, 'the change of role is logged');
$A->redis_cmd('REPLICAOF', 'NO', 'ONE');
($back, $t0) = (0, time);
while (time - $t0 < 1 + 1 + $slack) {
    $r = api($A, POST => '', user => 'u8', body => { name => 'w' });
    if ($r->{status} == 201) { $back = 1; last }
    sleep 0.05;
}
ok($back, 'a master again: writes work within keepalive + 1 s');
like(substr($A->error_log, $log_before), qr/\[warn\].*is a master again/,
     'logged');

stop($proxy);
$A->done;
$B->done;
done_testing;
