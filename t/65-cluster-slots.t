# The data model runs on Redis Cluster (DESIGN.md, data invariants): no
# multi-key command or script may touch keys of different slots.  Every
# command the module sends while it creates, checks, lists, rotates,
# revokes and introspects tokens of several users is read back from
# Redis' MONITOR; each command's keys (a script's KEYS, and every key its
# redis.call()s touch) must hash to one slot (CRC16 of the hash tag, as
# Redis Cluster computes it: t/lib/PatCluster.pm, checked here against a
# real cluster's CLUSTER KEYSLOT, independently of the module).  And the
# cluster harness itself: six nodes, three masters and their replicas.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api);
use PatCluster;

*crc16 = \&PatCluster::crc16;
*slot = \&PatCluster::slot;
is(sprintf('%04X', crc16('123456789')), '31C3', 'CRC16 of the cluster spec\'s test vector');
is(slot('{user1000}.following'), slot('{user1000}.followers'), 'a hash tag names the slot');
is(slot('foo{}{bar}'), crc16('foo{}{bar}') % 16384, 'an empty tag hashes the whole key');
is(slot('foo{{bar}}zap'), slot('{bar'), 'a tag ends at the first } after the first {');

my $t = PatTest->new;
my $r = $t->start_redis;
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
auth_pat_cache zone=c:1m ttl=10s;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
    location = /introspect { auth_pat_introspect; }
}
EOF2
$t->start_nginx;

# MONITOR on a connection of our own, read after the traffic
my $mon = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $r->{port}) or die "monitor: $!";
syswrite($mon, "MONITOR\r\n");
sysread($mon, my $ok, 5);
is($ok, "+OK\r\n", 'MONITOR');

# traffic: three users, every flow
my (%tok, @ids);
for my $u (qw(ann bob cyd)) {
    for my $n (1 .. 3) {
        my $c;
        for (1 .. 50) {
            $c = api($t, POST => '', user => $u, body => { name => "t$n", scopes => ['repo:read'] });
            last if $c->{status} == 201;
            sleep 0.05;
        }
        is($c->{status}, 201, "create $u/t$n");
        push @{ $tok{$u} }, $c->{json}{data};
    }
    is($t->get('/static/protected.txt', { Authorization => "Bearer $tok{$u}[0]{token}" })->{status}, 200, "check $u");
    is(api($t, GET => '', user => $u)->{status}, 200, "list $u");
    is(api($t, GET => '?status=revoked&search_term=t', user => $u)->{status}, 200, "list $u, searched");
    is(api($t, GET => "/$tok{$u}[0]{id}", user => $u)->{status}, 200, "get $u");
    is(api($t, POST => "/$tok{$u}[1]{id}/rotate", user => $u)->{status}, 201, "rotate $u");
    is(api($t, DELETE => "/$tok{$u}[2]{id}", user => $u)->{status}, 200, "revoke $u");
    is(api($t, GET => '/self', bearer => $tok{$u}[0]{token})->{status}, 200, "self $u");
    is($t->http(POST => '/introspect', { headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
                                           content => "token=$tok{$u}[0]{token}" })->{status}, 200, "introspect $u");
}

# and one script of our own that breaks the rule: the check must see it
$t->redis_cmd('EVAL', "redis.call('GET', KEYS[1]) return redis.call('GET', 'planted:elsewhere')",
              1, 'pat:{u:planted}:m');

# what MONITOR saw, until it has been quiet for 0.3 s
my $buf = '';
my $sel = IO::Select->new($mon);
my $end = time + 10;
while (time < $end && $sel->can_read(0.3)) {
    sysread($mon, $buf, 1 << 20, length $buf) or last;
}
close $mon;

# a MONITOR line: TIME [DB CLIENT] "ARG" "ARG" ... (C escapes inside)
sub args {
    my ($line) = @_;
    my @a;
    while ($line =~ /"((?:[^"\\]|\\.)*)"/g) {
        my $s = $1;
        $s =~ s/\\x([0-9a-f]{2})/chr hex $1/ge;
        $s =~ s/\\(.)/{ n => "\n", r => "\r", t => "\t" }->{$1} \/\/ $1/ge;
        push @a, $s;
    }
    return @a;
}

# the keys of a command the module (or its scripts) sends
my %FIRST = map { $_ => 1 } qw(HMGET HGET HGETALL HSET HDEL GET SET INCR PEXPIREAT ZADD ZREM
                               ZRANGEBYSCORE ZCOUNT ZSCORE ZCARD ZRANGE ZREVRANGE HLEN EXPIRE
                               SETNX HEXISTS HINCRBY ZREMRANGEBYSCORE EXISTS PEXPIRE);
my %NOKEY = map { $_ => 1 } qw(PUBLISH SUBSCRIBE PING ROLE CLIENT SCRIPT SELECT AUTH INFO WAIT MONITOR);
my ($n, $scripts, $calls, @bad, %unknown) = (0, 0, 0);
# a script's redis.call()s follow its EVALSHA ("[0 lua]"): they must stay
# in the slot of its KEYS
my $script;
for my $line (split /\r?\n/, $buf) {
    my ($client) = $line =~ /^\+?\d+\.\d+ \[\d+ ([^\]]+)\]/ or next;
    my ($cmd, @rest) = args($line);
    next unless defined $cmd;
    $cmd = uc $cmd;
    my @keys;
    if ($cmd eq 'EVALSHA' || $cmd eq 'EVAL') {
        my $nk = $rest[1];
        @keys = @rest[2 .. 1 + $nk];
        $scripts++;
    } elsif ($cmd eq 'DEL') {
        @keys = @rest;
    } elsif ($FIRST{$cmd}) {
        @keys = ($rest[0]);
    } elsif (!$NOKEY{$cmd}) {
        $unknown{$cmd}++;
    }
    if ($client eq 'lua') {
        $calls++;
        if (!$script) {
            push @bad, "a script's call without its script: $cmd @keys";
            next;
        }
        push @keys, @{ $script->{keys} };
    } else {
        $script = $cmd =~ /^EVAL/ ? { keys => [@keys] } : undef;
    }
    next unless @keys;
    $n++;
    my %slots = map { slot($_) => 1 } @keys;
    push @bad, "$cmd @keys" if keys %slots > 1;
}
cmp_ok($n, '>', 100, "MONITOR saw the traffic ($n commands with keys, $scripts scripts making $calls calls)");
cmp_ok($calls, '>', $scripts, 'and the scripts\' own calls');
is(join(', ', sort keys %unknown), '', 'every command seen is one whose keys this test knows');
my @planted = grep { /planted:elsewhere/ } @bad;
is(scalar @planted, 1, 'the planted script that reads another slot is caught');
@bad = grep { !/planted/ } @bad;
is(scalar @bad, 0, 'every command and script of the module touches keys of one slot')
    or diag join("\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);

$t->done;

# --- the cluster harness, and our CRC16 against the cluster's own
{
    my $u = PatTest->new;
    my $t0 = time;
    my $c = PatCluster->new($u);
    diag sprintf('a cluster of 6 nodes in %.1f s', time - $t0);
    is(scalar($c->masters), 3, 'three masters');
    is(scalar($c->replicas), 3, 'three replicas, in sync');
    my $covered = 0;
    $covered += $_->[1] - $_->[0] + 1 for @{ $c->slots };
    is($covered, 16384, 'every slot served');
    my ($m) = $c->masters;
    my @keys = ('pat:{u:ann}:m', 'pat:v:' . ('ab' x 32), 'pat:inval:seq', 'pat:epoch', 'pat:{inval}:seq',
                'foo{}{bar}', 'foo{{bar}}zap', '{user1000}.following', '123456789');
    is(join(' ', map { $u->redis_cmd_on($m, 'CLUSTER', 'KEYSLOT', $_) } @keys),
       join(' ', map { slot($_) } @keys), 'our slots are the cluster\'s');
    ok($c->owner(slot('pat:{u:ann}:m')), 'and each has an owner');
    $u->done;
}

done_testing;
