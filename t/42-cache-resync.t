# A worker whose subscriber was down missed an invalidation; other
# invalidations arrive between its re-SUBSCRIBE and its resync's read of
# NS inval:seq. The zone must not skip over the missed one (found by
# t/50-soak.t: the message handler moved the zone's number over the gap,
# the resync then found it equal to the counter and kept the zone, and a
# revoked token answered 200 from the cache until its ttl).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api gateway_conf);
use PatToken qw(token_digest);

my $A = PatTest->new;
my $redis = $A->start_redis;
$A->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$redis->{port}",
                                                  extra => 'auth_pat_cache zone=c:1m ttl=600s;'));
$A->start_nginx;
ok($A->wait_linked, 'linked');
my $check = sub { $A->get('/static/protected.txt', { Authorization => "Bearer $_[0]" })->{status} };
# the module's own invalidation script
my $script = "local s = redis.call('INCR', KEYS[1]) "
           . "redis.call('PUBLISH', ARGV[1], s .. ':' .. ARGV[2]) return s";

my $tries = 8;
my @stale;
for my $try (1 .. $tries) {
    my $tok = api($A, POST => '', user => "u$try", body => { name => 'x' })->{json}{data};
    $check->($tok->{token}) for 1 .. 3;
    my ($w) = $A->worker_pids;

    # the worker stopped; its connections killed; the token revoked meanwhile
    kill 'STOP', $w;
    my @ids = map { /\bid=(\d+)\b/ ? $1 : () }
              grep { /name=auth_pat:(?:sub|cmd):$w\b/ } split /\n/, $A->redis_cmd('CLIENT', 'LIST');
    $A->redis_cmd('CLIENT', 'KILL', 'ID', $_) for @ids;
    my $d = token_digest($A->key, $tok->{token});
    $A->redis_cmd('DEL', "pat:v:$d");
    $A->redis_cmd('EVAL', $script, 1, 'pat:inval:seq', 'pat:inval', $d);

    # other tokens' invalidations keep coming while the worker reconnects
    my $pub = fork // die "fork: $!";
    if (!$pub) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$redis->{port}") or POSIX::_exit(1);
        my $end = time + 1.5;
        while (time < $end) {
            sleep 0.005;
            my @e = ('EVAL', $script, 1, 'pat:inval:seq', 'pat:inval',
                     unpack('H*', pack('N*', map { int rand 2**32 } 1 .. 8)));
            print {$s} '*' . @e . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @e);
            my $l = <$s>;
        }
        POSIX::_exit(0);
    }
    kill 'CONT', $w;
    waitpid($pub, 0);
    $A->wait_linked;
    my $st = $check->($tok->{token});
    push @stale, "try $try: $st" if $st != 401;
}
is_deeply(\@stale, [], "$tries tries: the revoked token is 401 after the worker's resync, never 200 from the cache");
like($A->error_log, qr/invalidations were missed while unsubscribed/, 'the dropped zone is logged');
$A->done;
done_testing;
