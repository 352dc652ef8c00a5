# The Redis transport: hiredis linked in with its symbols hidden (so that
# Debian's nchan, which exports its own hiredis, loads in either order),
# error replies by class (NOPERM named in the log, OOM, BUSY and LOADING
# answered 503), and
# the keepalive probe on an idle connection.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Select;
use IO::Socket::INET;
use PatTest;
use PatApi qw(api gateway_conf);

my $so = PatTest::module_path();

# --- no hiredis shared with anyone
my $dyn = `nm -D --defined-only $so 2>&1` . `nm -D --undefined-only $so 2>&1`;
my @hi = grep { /\s(redis|sds|hi_)\w*$/ } split /\n/, $dyn;
is(scalar @hi, 0, 'the module exports and imports no redis*/sds*/hi_* symbol')
    or diag join "\n", @hi[0 .. ($#hi < 9 ? $#hi : 9)];
unlike(`readelf -d $so`, qr/NEEDED.*libhiredis/, 'and needs no libhiredis');

# --- Debian's nchan, before and after this module
my $nchan = '/usr/lib/nginx/modules/ngx_nchan_module.so';
SKIP: {
    skip "$nchan is not installed (libnginx-mod-nchan)", 10 unless -f $nchan;
    for my $order ('nchan first', 'nchan last') {
        my $t = PatTest->new;
        $t->start_redis;
        my $load = $order eq 'nchan first'
                 ? "load_module $nchan;\nload_module $so;"
                 : "load_module $so;\nload_module $nchan;";
        $t->nginx_conf(load_module => 0, main => $load,
                       http => gateway_conf(redis => '%%REDIS%%'));
        $t->start_nginx;
        my $r = api($t, POST => '', user => 'n', body => { name => 'nchan' });
        is($r->{status}, 201, "$order: create");
        my $tok = $r->{json}{data}{token} // '';
        is($t->get('/static/protected.txt',
                   { Authorization => "Bearer $tok" })->{status}, 200,
           "$order: check");
        is(api($t, DELETE => "/$r->{json}{data}{id}", user => 'n')->{status},
           200, "$order: revoke");
        is($t->get('/static/protected.txt',
                   { Authorization => "Bearer $tok" })->{status}, 401,
           "$order: revoked");
        $t->done;
    }
}

my $t = PatTest->new;
my $redis = $t->start_redis;

# --- an ACL that refuses a command: 503, and one error line naming it
$t->redis_cmd('ACL', 'SETUSER', 'noeval', 'on', '>pw', '~*', '&*', '+@all',
              '-evalsha');
$t->nginx_conf(http => gateway_conf(
    redis => "%%REDIS%% user=noeval password=pw"));
$t->start_nginx;
my @r = map { api($t, POST => '', user => 'acl', body => { name => "x$_" }) }
        1 .. 5;
is(scalar(grep { $_->{status} == 503 } @r), 5,
   'NOPERM: every create answers 503');
is($r[0]{json}{error}, 'unavailable', 'NOPERM: error "unavailable"');
my @lines = grep { /\[error\].*refused EVALSHA to this user/ }
            split /\n/, $t->error_log;
cmp_ok(scalar @lines, '>=', 1, 'NOPERM: an error line names the command');
cmp_ok(scalar @lines, '<=', 2, 'NOPERM: once per connection, not per request');
unlike($t->error_log, qr/reconnecting/, 'NOPERM: the connection stays');
$t->stop_nginx;

# --- the ACL that README gives for user=: every flow, the cache included
$t->write_file('error.log', '');
$t->redis_cmd('ACL', 'SETUSER', 'nginx', 'on', '>npw', '~pat:*', '&pat:inval',
              map { "+$_" } qw(hmget hget hgetall hset hdel del get set incr
                               pexpireat zadd zrem zrangebyscore zcount zscore
                               zcard zrange zrevrange hlen
                               evalsha eval script|load publish subscribe ping
                               role client|setname));
$t->nginx_conf(http => gateway_conf(
    redis => "%%REDIS%% user=nginx password=npw",
    extra => 'auth_pat_cache zone=acl:1m ttl=10s;'));
$t->start_nginx;
my $c = api($t, POST => '', user => 'readme', body => { name => 'acl' });
is($c->{status}, 201, "README's ACL: create");
my %auth = (Authorization => "Bearer $c->{json}{data}{token}");
my %got;
$got{ $t->get('/static/protected.txt', \%auth)->{status} }++ for 1 .. 20;
is_deeply(\%got, { 200 => 20 }, "README's ACL: checks (and lastUsedAt)");
is(api($t, GET => '', user => 'readme')->{status}, 200, "README's ACL: list");
my $rot = api($t, POST => "/$c->{json}{data}{id}/rotate", user => 'readme');
is($rot->{status}, 201, "README's ACL: rotate");
is($t->get('/static/protected.txt', \%auth)->{status}, 401,
   "README's ACL: the rotated-out token fails at once");
is(api($t, DELETE => "/$rot->{json}{data}{id}", user => 'readme')->{status},
   200, "README's ACL: revoke");
unlike($t->error_log, qr/NOPERM|refused/, "README's ACL: nothing refused");
$t->stop_nginx;

# --- out of memory: API writes answer 503, never 500
$t->write_file('error.log', '');
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%'));
$t->start_nginx;
$t->redis_cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$t->redis_cmd('CONFIG', 'SET', 'maxmemory', '1');
my $r = api($t, POST => '', user => 'oom', body => { name => 'oom' });
is($r->{status}, 503, 'OOM: create answers 503');
is($r->{json}{error}, 'unavailable', 'OOM: error "unavailable"');
$t->redis_cmd('CONFIG', 'SET', 'maxmemory', '0');
is(api($t, POST => '', user => 'oom', body => { name => 'ok' })->{status}, 201,
   'OOM over: create works');

# --- a script that runs long (BUSY): 503 while it runs, then works
$t->write_file('error.log', '');
my $bt = api($t, POST => '', user => 'busy', body => { name => 'busy' });
my %busy = (Authorization => "Bearer $bt->{json}{data}{token}");
is($t->get('/static/protected.txt', \%busy)->{status}, 200, 'BUSY: before');
$t->redis_cmd('CONFIG', 'SET', 'busy-reply-threshold', '100');
$t->redis_cmd('CONFIG', 'RESETSTAT');
my $script = IO::Socket::INET->new(PeerAddr => $redis->{addr})
    or die "connect: $!";
my $spin = "local t = redis.call('TIME') "
         . "local e = t[1] * 1000000 + t[2] + 3000000 "
         . "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] > e "
         . "return 1";
print {$script} "*3\r\n\$4\r\nEVAL\r\n\$" . length($spin) . "\r\n$spin\r\n"
              . "\$1\r\n0\r\n";
sleep 0.4;
my %bs;
$bs{ $t->get('/static/protected.txt', \%busy)->{status} }++ for 1 .. 10;
my $bc = api($t, POST => '', user => 'busy', body => { name => 'busy 2' });
ok(!IO::Select->new($script)->can_read(0),
   'BUSY: (the script still runs)');
is_deeply(\%bs, { 503 => 10 }, 'BUSY: checks answer 503, not after it');
is($bc->{status}, 503, 'BUSY: create answers 503');
like($t->error_log, qr/\[error\].*refused \w+: BUSY/, 'BUSY: an error line');
my $end = <$script>;
is($end, ":1\r\n", 'BUSY: the script ended');
my $back = 0;
for (1 .. 60) {
    last if ($back = $t->get('/static/protected.txt', \%busy)->{status} == 200);
    sleep 0.05;
}
ok($back, 'BUSY over: checks work again within 3 s');
my ($nbusy) = $t->redis_cmd('INFO', 'errorstats') =~ /errorstat_BUSY:count=(\d+)/;
cmp_ok($nbusy // 0, '<', 11,
       'BUSY: backed off (fewer BUSY replies than commands)');
$t->redis_cmd('CONFIG', 'SET', 'busy-reply-threshold', '5000');

# --- a Redis still loading its data: 503, never 401, then works
$t->write_file('error.log', '');
$t->redis_cmd('EVAL', "for i = 1, 20000 do redis.call('SET', 'filler:' .. i, i) "
              . "end return 1", 0);
is($t->redis_cmd('SAVE'), 'OK', 'LOADING: (20000 keys saved)');
open my $rc, '>>', $redis->{conf_file} or die $!;
print {$rc} "key-load-delay 250\nloading-process-events-interval-bytes 1024\n";
close $rc;
$t->restart_redis($redis, loading => 1);
my %ls;
$ls{ $t->get('/static/protected.txt', \%busy)->{status} }++ for 1 .. 5;
like($t->redis_cmd('INFO', 'persistence'), qr/^loading:1/m,
     'LOADING: (Redis still loads)');
is_deeply(\%ls, { 503 => 5 }, 'LOADING: checks answer 503, never 401');
my $loaded = 0;
for (1 .. 400) {
    last if ($loaded = $t->redis_cmd('INFO', 'persistence') =~ /^loading:0/m);
    sleep 0.05;
}
ok($loaded, 'LOADING: (done within 20 s)');
like($t->error_log, qr/\[error\].*LOADING/, 'LOADING: an error line');
$back = 0;
for (1 .. 60) {
    last if ($back = $t->get('/static/protected.txt', \%busy)->{status} == 200);
    sleep 0.05;
}
ok($back, 'LOADING over: checks work again within 3 s (backoff up to 2 s)');

# --- an address that refuses: one line per connection per 10 s
$t->stop_nginx;
$t->write_file('error.log', '');
my $dead = $t->free_port;
$t->nginx_conf(http => gateway_conf(redis => "127.0.0.1:$dead"));
$t->start_nginx;
my $t0 = time;
is($t->get('/static/protected.txt', { Authorization => 'Bearer '
   . 'pat_0000000000000000000000000000000000' })->{status} =~ /^(401|503)$/
   ? 1 : 0, 1, 'refused address: the check answers');
sleep 3;
my @fail = grep { /connecting to redis/ } split /\n/, $t->error_log;
cmp_ok(scalar @fail, '>=', 1, 'refused address: logged');
cmp_ok(scalar @fail, '<=', 2,
       'at most once per worker in 3 s of retries (backoff up to 2 s)')
    or diag join "\n", @fail;
unlike($t->error_log, qr/\[crit\]/, 'and never at crit');
$t->stop_nginx;
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%'));
$t->start_nginx;

# --- TCP_NODELAY on the Redis connections, as hiredis set it
my ($w) = $t->worker_pids;
my @opt = split /\n/, `python3 t/lib/sockopt.py $w $redis->{port} 2>&1`;
ok(@opt && !(grep { !/^\d+ 1$/ } @opt), 'the Redis connection has TCP_NODELAY')
    or diag "@opt";

# --- an idle command connection is probed every keepalive
my $stats = sub {
    my $i = $t->redis_cmd('INFO', 'commandstats');
    return $i =~ /cmdstat_role:calls=(\d+)/ ? $1 : 0;
};
my $before = $stats->();
sleep 2.2;
cmp_ok($stats->() - $before, '>=', 2 * 2 - 1,
       'idle: each worker asks ROLE about every keepalive (1s)');

$t->done;
done_testing;
