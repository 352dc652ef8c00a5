# auth_pat_cache with two nginx on one Redis: hits without Redis,
# immediate revocation across nginx, a killed subscription never lets a
# revoked token through, expiry and ttl bound entries, LRU, reload,
# lastUsedAt.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api secrecy_scan gateway_conf);
use PatToken qw(seed_token now_ms);
use PatLoad qw(burst);

my $A = PatTest->new;
my $redis = $A->start_redis(aof => 1);
my $B = PatTest->new;
$B->{key} = $A->key;

sub conf_for {
    my ($zone, $ttl) = @_;
    return gateway_conf(redis => "127.0.0.1:$redis->{port}",
                        extra => "auth_pat_cache zone=patcache:$zone ttl=$ttl;");
}
$A->nginx_conf(http => conf_for('1m', '60s'));
$B->nginx_conf(http => conf_for('32k', '2s'));
$A->start_nginx;
$B->start_nginx;
$B->{issued} = $A->{issued} = [];

sub hmgets { my $i = $A->redis_cmd('INFO', 'commandstats'); $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0 }
sub evalshas { my $i = $A->redis_cmd('INFO', 'commandstats'); $i =~ /cmdstat_evalsha:calls=(\d+)/ ? $1 : 0 }
sub hits {    # statuses of n requests with token on nginx t
    my ($t, $tok, $n) = @_;
    my $res = burst(port => $t->port, concurrency => 4,
        requests => [ map { { path => '/static/protected.txt', headers => { Authorization => "Bearer $tok" } } } 1..$n ]);
    my %s; $s{ $_->{status} }++ for @$res;
    return \%s;
}
sub warm {     # until both workers serve the token from the cache
    my ($t, $tok) = @_;
    for (1..50) {
        hits($t, $tok, 8);
        my $h = hmgets();
        hits($t, $tok, 8);
        return 1 if hmgets() == $h;
        sleep 0.05;
    }
    return 0;
}
sub create {
    my $r = api($A, POST => '', user => $_[0], body => { name => $_[1] // 'cached' });
    return $r->{json}{data} // die "create failed: $r->{status} $r->{content}\n";
}
# each worker of t subscribed, and its command connection (named in the
# setup, so its commands are sent or held) up, by client name
sub wait_subscribed { $_[0]->wait_linked($A) }
ok(wait_subscribed($A) && wait_subscribed($B), 'every worker of both nginx subscribed');
sleep 0.3;

# --- a new token works at once everywhere, then hits need no Redis
my $t1 = create('u1');
is(hits($B, $t1->{token}, 1)->{200}, 1, 'a new token works at once on the other nginx');
hits($A, $t1->{token}, 10);
hits($B, $t1->{token}, 10);
my $h = hmgets();
is(hits($A, $t1->{token}, 40)->{200}, 40, 'cached: 200');
is(hits($B, $t1->{token}, 20)->{200}, 20, 'cached on B: 200');
is(hmgets() - $h, 0, 'warm caches: 60 checks, no Redis lookup');

# --- revoke through A: B answers 401 on the very next request
is(api($A, DELETE => "/$t1->{id}", user => 'u1')->{status}, 200, 'revoke via A');
is($B->get('/static/protected.txt', { Authorization => "Bearer $t1->{token}" })->{status}, 401,
   'B: 401 on the very next request');
is_deeply(hits($B, $t1->{token}, 20), { 401 => 20 }, 'B: 401 on every worker');
is_deeply(hits($A, $t1->{token}, 20), { 401 => 20 }, 'A: 401 on every worker');

# --- a backlog of invalidations bigger than one read (hiredis reads 16k
# at a time): B's workers are stopped while NINVAL invalidations are
# published (the documented "SEQ:DIGEST", numbered on from the real
# counter), then a cached token is revoked through A and a request for it
# sent to B.  When B resumes, it must apply the whole backlog before it
# trusts its cache.
{
    my $t6 = create('u6');
    ok(warm($B, $t6->{token}), 'B caches the token');
    my @bw = $B->worker_pids;
    kill 'STOP', @bw;
    my $n = 1000;
    my $seq = $A->redis_cmd('INCRBY', 'pat:inval:seq', $n) - $n;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$redis->{port}") or die $!;
    my $buf = '';
    for my $i (1 .. $n) {
        my @c = ('PUBLISH', 'pat:inval', ($seq + $i) . ':' . unpack('H*', pack('N*', map { int rand 2**32 } 1..8)));
        $buf .= '*' . @c . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @c);
    }
    print {$s} $buf;
    for (1 .. $n) { my $l = <$s> }
    close $s;
    is(api($A, DELETE => "/$t6->{id}", user => 'u6')->{status}, 200, "revoke via A behind $n invalidations");
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $B->port) or die $!;
    print {$c} "GET /static/protected.txt HTTP/1.0\r\nHost: b\r\nAuthorization: Bearer $t6->{token}\r\n\r\n";
    kill 'CONT', @bw;
    my $status = do { local $/; my $r = <$c>; $r =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0 };
    is($status, 401, 'B, resumed: 401 on the very next request');
    is_deeply(hits($B, $t6->{token}, 20), { 401 => 20 }, 'B: 401 on every worker');
}

# --- rotate through B: the old token fails at once on A
my $t2 = create('u2');
hits($A, $t2->{token}, 10); hits($B, $t2->{token}, 10);
my $r = api($B, POST => "/$t2->{id}/rotate", user => 'u2');
is($r->{status}, 201, 'rotate via B');
is($A->get('/static/protected.txt', { Authorization => "Bearer $t2->{token}" })->{status}, 401,
   'A: the rotated-out token fails on the very next request');
is_deeply(hits($A, $t2->{token}, 20), { 401 => 20 }, 'A: on every worker');
is_deeply(hits($A, $r->{json}{data}{token}, 10), { 200 => 10 }, 'A: the new token works');

# --- the subscription of B killed, a revoke meanwhile: B never says 200
my $t3 = create('u3');
hits($B, $t3->{token}, 10);
my %bpids = map { $_ => 1 } $B->worker_pids;
my @ids = map { /\bid=(\d+)\b/ ? $1 : () }
          grep { /name=auth_pat:sub:(\d+)/ && $bpids{$1} } split /\n/, $A->redis_cmd('CLIENT', 'LIST');
is(scalar @ids, scalar keys %bpids, "found B's subscriber connections");
$A->redis_cmd('CLIENT', 'KILL', 'ID', $_) for @ids;
is(api($A, DELETE => "/$t3->{id}", user => 'u3')->{status}, 200, 'revoke via A while B is unsubscribed');
my %seen;
my $until = time + 2;
while (time < $until) { my $s = hits($B, $t3->{token}, 8); $seen{$_} += $s->{$_} for keys %$s }
ok(!$seen{200}, 'B never answered 200 for the revoked token while resubscribing')
    or diag explain \%seen;
ok(wait_subscribed($B), 'B resubscribed');
is_deeply(hits($B, $t3->{token}, 10), { 401 => 10 }, 'B: 401 after resubscribing');
like($B->error_log, qr/\[notice\].*(invalidations were missed|connection restored)/, 'B noticed');

# after resubscribing, the cache is trusted again
my $t4 = create('u4');
ok(warm($B, $t4->{token}), 'B caches again after resubscribing');
$h = hmgets();
is_deeply(hits($B, $t4->{token}, 20), { 200 => 20 }, 'B after resubscribe: 200');
is(hmgets() - $h, 0, 'B after resubscribe: served from the cache');

# --- an entry never outlives the token's expiry (A's ttl is 60 s)
my @g = gmtime(int((now_ms() + 2000) / 1000) + 1);
my $exp = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
my $t5 = api($A, POST => '', user => 'u5', body => { name => 'short', expiresAt => $exp })->{json}{data};
is_deeply(hits($A, $t5->{token}, 10), { 200 => 10 }, 'short-lived token cached');
sleep((parse_ms($t5->{expiresAt}) - now_ms()) / 1000 + 0.2);
is_deeply(hits($A, $t5->{token}, 10), { 401 => 10 }, 'expired: 401 though the ttl is 60 s');
sub parse_ms { require PatApi; return PatApi::parse_rfc3339($_[0]) }

# --- nor its ttl: B (ttl 2 s) keeps serving a record deleted behind its back
my $t6 = create('u6');
hits($B, $t6->{token}, 10);
$A->redis_cmd('DEL', "pat:v:" . PatToken::token_digest($A->key, $t6->{token}));
is_deeply(hits($B, $t6->{token}, 10), { 200 => 10 }, 'within the ttl, B serves from its cache');
sleep 2.2;
is_deeply(hits($B, $t6->{token}, 10), { 401 => 10 }, 'after the ttl, B asks Redis again');

# --- LRU: B's 32 KB zone holds about two hundred tokens
my @seeded = map { seed_token($A, user => "lru$_", name => "n$_") } 1..400;
my $res = burst(port => $B->port, concurrency => 8,
    requests => [ map { { path => '/static/protected.txt', headers => { Authorization => "Bearer $_->{token}" } } } @seeded ]);
is(scalar(grep { $_->{status} == 200 } @$res), 400, '400 distinct tokens through B');
$h = hmgets();
hits($B, $seeded[$_]{token}, 1) for reverse 350 .. 399;
is(hmgets() - $h, 0, 'the 50 most recently used are still cached');
$h = hmgets();
hits($B, $seeded[$_]{token}, 1) for 0 .. 49;
is(hmgets() - $h, 50, 'the 50 least recently used were evicted');
like($B->error_log, qr/\[notice\].*cache zone "patcache" is full at (\d+) tokens/, 'a full zone is noted once');

# --- entries whose user and name fit in the node but whose scopes do not:
# evicting one frees its chunk of strings (it leaked once, and the zone
# filled up with nothing in it)
my @scoped = map { seed_token($A, user => "s$_", name => "n", scopes => 'scope:one scope:two') }
             1 .. 1500;
$res = burst(port => $B->port, concurrency => 8,
    requests => [ map { { path => '/static/protected.txt', headers => { Authorization => "Bearer $_->{token}" } } } @scoped ]);
is(scalar(grep { $_->{status} == 200 } @$res), 1500, '1500 distinct tokens with scopes through B');
$h = hmgets();
hits($B, $scoped[$_]{token}, 1) for reverse 1450 .. 1499;
is(hmgets() - $h, 0, '... and the 50 most recently used are still cached');

# --- Redis down: the check fails closed, even with a warm cache
my $t7 = create('u7');
ok(warm($A, $t7->{token}), 'token cached');
$A->kill_redis($redis, 'KILL');
# the workers learn of it when the kernel hands them the FIN (well under
# 100 ms on loopback); a lookup in that instant still sees a valid token
sleep 0.1;
my $down = hits($A, $t7->{token}, 10);
ok(!$down->{200}, 'Redis down: no 200 from the cache') or diag explain $down;
is($down->{503}, 10, 'Redis down: 503');
$A->restart_redis($redis);
my $ok = 0;
for (1..60) { my $s = hits($A, $t7->{token}, 4); if (($s->{200} // 0) == 4) { $ok = 1; last } sleep 0.1 }
ok($ok, 'back after Redis restarted');

# --- the cache survives a reload of A
ok(wait_subscribed($A), 'A subscribed');
my $t8 = create('u8');
ok(warm($A, $t8->{token}), 'token cached before the reload');
$A->reload;
ok(wait_subscribed($A), 'A reloaded and subscribed');
sleep 0.5;
$h = hmgets();
is_deeply(hits($A, $t8->{token}, 20), { 200 => 20 }, 'after reload: 200');
is(hmgets() - $h, 0, 'after reload: still cached');

# --- lastUsedAt: reported once a minute per token per nginx, never waited for
my $t9 = create('u9');
my $t10 = create('u9', 'unused');
is(api($A, GET => '', user => 'u9')->{json}{items}[0]{lastUsedAt}, undef, 'lastUsedAt null before use');
hits($A, $t9->{token}, 5);
sleep 0.2;
my %l = map { $_->{id} => $_ } @{ api($A, GET => '', user => 'u9')->{json}{items} };
ok(defined $l{ $t9->{id} }{lastUsedAt}, 'lastUsedAt set after use');
is($l{ $t10->{id} }{lastUsedAt}, undef, 'an unused token stays null');
my $e = evalshas();
hits($A, $t9->{token}, 30);
sleep 0.2;
is(evalshas() - $e, 0, 'no more reports within the minute');
my %l2 = map { $_->{id} => $_ } @{ api($A, GET => '', user => 'u9')->{json}{items} };
is($l2{ $t9->{id} }{lastUsedAt}, $l{ $t9->{id} }{lastUsedAt}, 'lastUsedAt unchanged within the minute');
is(api($A, GET => '?sort_by=lastUsedAt', user => 'u9')->{json}{items}[0]{id}, $t9->{id}, 'sortable by lastUsedAt');

$B->done;
secrecy_scan($A);
$A->done;
done_testing;
