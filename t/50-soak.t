# A soak with faults.  Mixed traffic (checks through an nginx with the
# cache and through one without, create / list / revoke / rotate) while,
# in turn, Redis is killed (kill -9) and restarted on its port and data
# directory 20 times (appendonly yes, appendfsync always: a kill loses no
# acknowledged write), paused (SIGSTOP, SIGCONT), its clients killed
# (CLIENT KILL TYPE normal, TYPE pubsub), its scripts flushed, and both
# nginx reloaded 10 times.  Every response is recorded with the time
# before its request was sent and the time after it was received.
#
# Afterwards: no worker exited on a signal; worker fds (and, in the normal
# build, RSS) within 10% of their values after warm-up; no revoked token
# answered 200 by a request sent after its revoke's (or rotate's) 2xx was
# received; no token refused 401 between its create's 2xx and the first
# attempt to revoke it; no acknowledged create or revoke lost; and a
# consistency scan finds no validation record in Redis for a token that
# the list shows revoked.
#
# SOAK_TRACE=1 prints how long each fault and its recovery took.
# SOAK_SECONDS=600 (the long mode): the second phase, after the last
# reload, goes round the faults for that many seconds.  PAT_SANITIZE=1
# (./build.sh asan) paces the traffic 3 times slower; the faults are the
# same.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use JSON::PP ();
use List::Util qw(max min sum0 shuffle);
use Time::HiRes qw(sleep clock_gettime CLOCK_MONOTONIC);
use PatTest;
use PatToken qw(token_digest);
use PatLoad qw(burst);

my $SAN     = $ENV{PAT_SANITIZE} ? 1 : 0;
my $LONG    = $ENV{SOAK_SECONDS} // 0;    # s of the second phase, long mode
my $SLOW    = $SAN ? 3 : 1;               # traffic pacing
my $KILLS   = 20;
my $RELOADS = 10;
my $PAUSE   = 1.5;    # s of SIGSTOP: past timeout (1 s), so links are reset
my $GAP     = 0.25;   # s of traffic after each fault has settled
my $NAPI    = 2;      # traffic processes running token lifecycles
my $NCHK    = 3;      # traffic processes checking tokens of the pool
my $API     = '/v1/personal-access-tokens';

# one clock for every process: CLOCK_MONOTONIC is system-wide
sub now { clock_gettime(CLOCK_MONOTONIC) }
sub fmt { sprintf '%.6f', $_[0] }
my $WALL = Time::HiRes::time() - now();
sub wall {    # a monotonic instant as error.log's clock shows it
    my $w = $_[0] + $WALL;
    return POSIX::strftime('%Y/%m/%d %H:%M:%S', localtime $w) . sprintf('.%03d', ($w - int $w) * 1000);
}

my $A = PatTest->new;    # cache on
my $redis = $A->start_redis(aof => 1, conf => 'auto-aof-rewrite-percentage 0');
my $B = PatTest->new;    # cache off
$B->{key} = $A->key;

# auth_pat_cache is http-wide: the cache on and off are two nginx on the
# one Redis.  A 64 KB zone fills during warm-up (its LRU then recycles it),
# so a zone being filled does not show as worker RSS growth later.
sub conf {
    my ($extra) = @_;
    return <<"EOF";
auth_pat_redis 127.0.0.1:$redis->{port} timeout=1s;
auth_pat_key_file %%KEY%%;
$extra
server {
    listen 127.0.0.1:%%PORT%%;
    access_log off;
    location $API {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
    }
    location /static/ { auth_pat "soak"; alias %%HTML%%/; }
}
EOF
}
$A->nginx_conf(http => conf('auth_pat_cache zone=soak:64k ttl=10s;'), error_log_level => 'notice');
$B->nginx_conf(http => conf(''), error_log_level => 'notice');
$A->start_nginx;
$B->start_nginx;

my $PARENT = $$;
my $DIR    = $A->dir;
my $POOL   = "$DIR/soak-pool";     # "id \t token \t user" of every token issued
my $QUIET  = "$DIR/soak-quiet";    # while it exists, traffic holds
my $STOP   = "$DIR/soak-stop";     # traffic ends
my %PORT   = (A => $A->port, B => $B->port);
my $HARD;                          # a traffic process's last moment

# ---------------------------------------------------------------------------
# traffic processes

my $LOG;    # a traffic process's record of its responses

sub rec { syswrite $LOG, join("\t", @_) . "\n" }
sub go  { !-e $STOP && now() < $HARD && getppid() == $PARENT }
sub nap { sleep($_[0] * $SLOW * (0.5 + rand)) }
sub hold {
    sleep 0.01 while -e $QUIET && now() < $HARD && getppid() == $PARENT;
}

# one HTTP/1.0 request on its own connection: ($t0, $t1, $status, $body),
# $t0 taken before the connect, $t1 after the end of the response;
# status 0 for a transport error or no answer within 15 s
sub http1 {
    my ($port, $method, $path, $hdr, $body) = @_;
    my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n";
    $req .= "$_: $hdr->{$_}\r\n" for sort keys %$hdr;
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if defined $body;
    $req .= "\r\n" . ($body // '');
    hold();
    my $t0 = now();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5);
    return ($t0, now(), 0, "connect: $!") unless $s;
    binmode $s;
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off);
        return ($t0, now(), 0, "write: $!") unless defined $n;
        $off += $n;
    }
    my $sel = IO::Select->new($s);
    my $in  = '';
    while (1) {
        my $left = $t0 + 15 - now();
        return ($t0, now(), 0, 'timeout') if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $in, 65536, length $in);
        return ($t0, now(), 0, "read: $!") unless defined $n;
        last if $n == 0;
    }
    my $t1 = now();
    close $s;
    my ($status) = $in =~ m{\AHTTP/1\.[01] (\d{3})};
    return ($t0, $t1, $status // 0, $in =~ /\r\n\r\n(.*)\z/s ? $1 : '');
}

# where a token is checked: the static location of either nginx, and the
# API's /self (the caller is the bearer) of either
my %WHERE = (A  => [A => '/static/protected.txt'], B  => [B => '/static/protected.txt'],
             SA => [A => "$API/self"],              SB => [B => "$API/self"]);
my @WEIGHTED = qw(A A A B B B SA SB);

sub check {
    my ($w, $id, $tok) = @_;
    my ($inst, $path) = @{ $WHERE{$w} };
    my ($t0, $t1, $st) = http1($PORT{$inst}, 'GET', $path, { Authorization => "Bearer $tok" });
    rec('C', fmt($t0), fmt($t1), $w, $id, $st);
    return $st;
}

sub api1 {
    my ($inst, $method, $path, $user, $body) = @_;
    my ($t0, $t1, $st, $b) = http1($PORT{$inst}, $method, "$API$path", { 'X-User' => $user }, $body);
    my $j = ($st == 200 || $st == 201) ? eval { JSON::PP::decode_json($b) } : undef;
    return ($t0, $t1, $st, $j && ref $j eq 'HASH' ? $j : undef);
}

sub either { $_[ int rand @_ ] }

# create, use, rotate up to 3 times, revoke (retried on 503), listing now
# and then; each revoked or rotated-out token is checked everywhere at
# once after the 2xx.  A new user every 8 lifecycles keeps lists short.
sub lifecycle {
    my ($n) = @_;
    open my $pool, '>>', $POOL or die "$POOL: $!";
    my ($user, $k, $made) = ('', 0, 0);
    my $add = sub { syswrite $pool, "$_[0]\t$_[1]\t$_[2]\n" };
    while (go()) {
        $user = "soak$n-" . $k++ if $made++ % 8 == 0;
        my $inst = either('A', 'B');
        my ($t0, $t1, $st, $j) = api1($inst, 'POST', '', $user, '{"name":"soak"}');
        my ($id, $tok) = $j && ref $j->{data} eq 'HASH' ? @{ $j->{data} }{qw(id token)} : ();
        rec('N', fmt($t0), fmt($t1), $inst, $id // '-', $st, $user);
        if ($st != 201 || !defined $tok) { nap(0.05); next }
        $add->($id, $tok, $user);
        check(either(@WEIGHTED), $id, $tok) for 1 .. 2;
        my $gen = 0;
        while (1) {
            nap(0.01);
            $inst = either('A', 'B');
            if ($gen < 3 && rand() < 0.6) {
                ($t0, $t1, $st, $j) = api1($inst, 'POST', "/$id/rotate", $user);
                my ($nid, $ntok) = $j && ref $j->{data} eq 'HASH' ? @{ $j->{data} }{qw(id token)} : ();
                rec('O', fmt($t0), fmt($t1), $inst, $id, $st, $nid // '-', $user);
                if ($st == 201 && defined $ntok) {
                    check($_, $id, $tok) for sort keys %WHERE;    # never 200 again
                    $add->($nid, $ntok, $user);
                    ($id, $tok) = ($nid, $ntok);
                    check(either(@WEIGHTED), $id, $tok);
                    $gen++;
                    next;
                }
                # a rotate that failed: the old token is revoked instead
            }
            for (1 .. 8) {
                ($t0, $t1, $st) = api1($inst, 'DELETE', "/$id", $user);
                rec('R', fmt($t0), fmt($t1), $inst, $id, $st, $user);
                last if $st == 200 || !go();
                nap(0.25);
            }
            if ($st == 200) {
                check($_, $id, $tok) for sort keys %WHERE;        # never 200 again
            }
            last;
        }
        if (rand() < 0.3) {
            $inst = either('A', 'B');
            my $q = either('?page_size=100', '?status=revoked&page_size=10', '?sort_by=name');
            ($t0, $t1, $st) = api1($inst, 'GET', $q, $user);
            rec('L', fmt($t0), fmt($t1), $inst, $user, $st);
        }
    }
}

# checks of the pool's tokens, mostly of the newest (the ones being
# revoked and rotated right now), some of any age
sub checker {
    my ($n) = @_;
    open my $fh, '<', $POOL or die "$POOL: $!";
    my (@pool, $buf);
    $buf = '';
    while (go()) {
        while (1) {
            my $got = sysread($fh, $buf, 65536, length $buf);
            last unless $got;
        }
        push @pool, [ split /\t/, $1 ] while $buf =~ s/\A([^\n]*)\n//;
        if (!@pool) { sleep 0.02; next }
        my $e = rand() < 0.6 ? $pool[ -1 - int rand(min(16, scalar @pool)) ]
                             : $pool[ int rand @pool ];
        check(either(@WEIGHTED), $e->[0], $e->[1]);
        nap(0.003);
    }
}

sub spawn {
    my ($n, $fn) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    # the child: never back into the test, never through END blocks
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
    srand($$ ^ int(now() * 1000));
    my $ok = open($LOG, '>>', "$DIR/soak-$n.log")
        && eval { $fn->($n); 1 };
    syswrite STDERR, "# soak traffic process $n: " . ($@ || $!) . "\n" unless $ok;
    POSIX::_exit($ok ? 0 : 1);
}

# ---------------------------------------------------------------------------
# faults, recovery, measures

my (%count, @events);
my $T0;

sub fault {
    my ($name, $code) = @_;
    my $t = now();
    $code->();
    push @events, [ $t - $T0, now() - $T0, $name ];
    $count{$name}++;
}

# every worker of $t has its command connection (and, with a cache, its
# subscriber, subscribed) named in Redis' CLIENT LIST, within 6 s (x3
# under the sanitizer; the reconnect backoff tops out at 2 s)
sub linked {
    my ($t, $sub) = @_;
    my $end = now() + 6 * $SLOW;
    while (now() < $end) {
        my %pids = map { $_ => 1 } $t->worker_pids;
        my $list = eval { $A->redis_cmd('CLIENT', 'LIST') };
        if (keys %pids && defined $list && !ref $list) {
            my (%cmd, %subd);
            for (split /\n/, $list) {
                $cmd{$1} = 1 if /name=auth_pat:cmd:(\d+)/ && $pids{$1};
                $subd{$1} = 1 if / sub=[1-9]/ && /name=auth_pat:sub:(\d+)/ && $pids{$1};
            }
            return 1 if keys %cmd == keys %pids && (!$sub || keys %subd == keys %pids);
        }
        sleep 0.05;
    }
    return 0;
}

my @unsettled;
sub settle {
    my $after = @events ? $events[-1][2] : 'start';
    push @unsettled, "A after $after" unless linked($A, 1);
    push @unsettled, "B after $after" unless linked($B, 0);
}

sub fds { opendir(my $d, "/proc/$_[0]/fd") or return -1; my $n = grep { /^\d+$/ } readdir $d; return $n }
sub rss { open(my $f, '<', "/proc/$_[0]/status") or return -1; local $/; my $s = <$f>; return $s =~ /^VmRSS:\s+(\d+)/m ? $1 : -1 }

# traffic held, links up, then each process's fds (until two readings
# agree) and RSS in kB
sub snapshot {
    open my $q, '>', $QUIET or die "$QUIET: $!";
    close $q;
    sleep 0.3 * $SLOW;    # requests in flight end (Redis is up: well under 1 s)
    settle();
    my %snap;
    for my $try (1 .. 20) {
        my %s;
        for my $x ([A => $A], [B => $B]) {
            my ($name, $t) = @$x;
            $s{$name}{master} = { pid => $t->{nginx_pid}, fds => fds($t->{nginx_pid}) };
            $s{$name}{workers} = { map { $_ => { fds => fds($_), rss => rss($_) } } $t->worker_pids };
        }
        my $same = %snap && join(',', map { my $n = $_; map { "$_=$s{$n}{workers}{$_}{fds}" } sort keys %{ $s{$n}{workers} } } qw(A B))
                         eq join(',', map { my $n = $_; map { "$_=$snap{$n}{workers}{$_}{fds}" } sort keys %{ $snap{$n}{workers} } } qw(A B));
        %snap = %s;
        last if $same;
        sleep 0.1;
    }
    unlink $QUIET;
    return \%snap;
}

sub show_snap {
    my ($s) = @_;
    return join '; ', map {
        my $n = $_;
        "$n master fds=$s->{$n}{master}{fds}, workers "
            . join(' ', map { "$_:fds=$s->{$n}{workers}{$_}{fds},rss=$s->{$n}{workers}{$_}{rss}kB" }
                        sort keys %{ $s->{$n}{workers} })
    } qw(A B);
}

my $kill = sub {
    $A->kill_redis($redis, 'KILL');
    $A->restart_redis($redis);
    $count{kills}++;
};
my $kill_reload = sub {    # the new workers start while Redis is down
    $A->kill_redis($redis, 'KILL');
    $A->reload;
    $B->reload;
    $A->restart_redis($redis);
    $count{kills}++;
    $count{reloads}++;
};
my $reload = sub { $A->reload; $B->reload; $count{reloads}++ };
my @OTHER = (
    [ 'client kill pubsub' => sub { $A->redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub') } ],
    [ pause                => sub { $A->kill_redis($redis, 'STOP'); sleep $PAUSE; $A->kill_redis($redis, 'CONT') } ],
    [ 'client kill normal' => sub { $A->redis_cmd('CLIENT', 'KILL', 'TYPE', 'normal') } ],
    [ 'script flush'       => sub { $A->redis_cmd('SCRIPT', 'FLUSH') } ],
    # both at once: the subscribers come back before the command
    # connections have finished their handshake (SCRIPT LOAD ...)
    [ 'client kill all'    => sub { $A->redis_cmd('CLIENT', 'KILL', 'TYPE', 'normal');
                                    $A->redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub') } ],
);

my @steps;
sub step {
    my ($name, $code) = @_;
    my $t = now();
    fault($name, $code);
    my $t2 = now();
    settle();
    push @steps, sprintf('%s %.2f+%.2f', $name, $t2 - $t, now() - $t2) if $ENV{SOAK_TRACE};
    sleep $GAP;
}

# ---------------------------------------------------------------------------
# the soak

# the cache is on in A: once warm, checks there reach Redis no more
sub hmgets { my $i = $A->redis_cmd('INFO', 'commandstats'); $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0 }
{
    my $r = $A->post_json($API, { name => 'warm' }, { 'X-User' => 'warm' });
    my $tok = $r->{json} && $r->{json}{data}{token};
    my $auth = { Authorization => 'Bearer ' . ($tok // '') };
    my $warm = 0;
    for (1 .. 50) {
        $A->get('/static/protected.txt', $auth) for 1 .. 6;
        my $h = hmgets();
        my @s = map { $A->get('/static/protected.txt', $auth)->{status} } 1 .. 6;
        if (hmgets() == $h && !grep { $_ != 200 } @s) { $warm = 1; last }
        sleep 0.05;
    }
    ok($warm, 'A answers checks from its cache');
    my $h = hmgets();
    $B->get('/static/protected.txt', $auth) for 1 .. 4;
    is(hmgets() - $h, 4, 'B asks Redis for each check');
}

{ open my $p, '>', $POOL or die "$POOL: $!" }
$T0   = now();
$HARD = $T0 + 150 * $SLOW + $LONG;    # the traffic ends by then whatever happens
my @kids = map { spawn($_, $_ <= $NAPI ? \&lifecycle : \&checker) } 1 .. $NAPI + $NCHK;
my ($gen1, $base, $end, $p2);
my $ok = eval {
    settle();
    sleep 2;
    $gen1 = snapshot();

    # phase 1: the reloads, half of them while Redis is down, between kills
    # and the other faults
    for my $i (0 .. 4) {
        step(reload => $reload);
        step(kill => $kill);
        step('kill + reload' => $kill_reload);
        step(@{ $OTHER[ $i % @OTHER ] });
    }

    # warm-up of the last generation: once through every fault, then the
    # measures that the end is compared with
    step(kill => $kill);
    step(@$_) for @OTHER;
    sleep 1;
    $base = snapshot();

    # phase 2: the remaining kills, each followed by another fault; in the
    # long mode, round and round for SOAK_SECONDS
    $p2 = now();
    my $i = 0;
    while ($count{kills} < $KILLS || now() - $p2 < $LONG) {
        step(kill => $kill);
        step(@{ $OTHER[ $i++ % @OTHER ] });
    }
    sleep 1;
    $end = snapshot();
    1;
};
my $err = $@;
diag join "\n", @steps if $ENV{SOAK_TRACE};
my $soak_secs = now() - $T0;

# the traffic ends: a stop flag, then (bounded) TERM and KILL
{ open my $s, '>', $STOP or die "$STOP: $!" }
my %exit;
my $until = now() + 20 * $SLOW;
while (keys %exit < @kids && now() < $until) {
    for my $k (@kids) {
        next if exists $exit{$k};
        $exit{$k} = $? if waitpid($k, POSIX::WNOHANG()) == $k;
    }
    sleep 0.05;
}
for my $k (grep { !exists $exit{$_} } @kids) {
    kill 'KILL', $k;
    waitpid($k, 0);
    $exit{$k} = $?;
}
die "soak aborted after " . sprintf('%.1f', $soak_secs) . " s: $err" unless $ok;
is(scalar(grep { $exit{$_} != 0 } @kids), 0, 'every traffic process ended cleanly')
    or diag explain \%exit;

is($count{kills}, $KILLS, "Redis killed and restarted $KILLS times") unless $LONG;
cmp_ok($count{kills}, '>=', $KILLS, "Redis killed and restarted at least $KILLS times") if $LONG;
is($count{reloads}, $RELOADS, "both nginx reloaded $RELOADS times");
cmp_ok($count{$_->[0]} // 0, '>=', 2, "$_->[0]: done at least twice") for @OTHER;
is(scalar @unsettled, 0, 'after every fault, every worker was linked again (command and subscriber connections)')
    or diag join "\n", @unsettled;

# ---------------------------------------------------------------------------
# the record

my (%revoked_at, %revoke_line, %born, %first_try, %user_of, %tokens);
my (%by, @unexpected, $nreq);
my @logs = map { "$DIR/soak-$_.log" } 1 .. $NAPI + $NCHK;
my %allowed = (C => [200, 401, 503], N => [201, 503], O => [201, 409, 503],
               R => [200, 503], L => [200, 503]);

# pass 1: creates, revokes and rotations
for my $f (@logs) {
    open my $fh, '<', $f or next;
    while (my $l = <$fh>) {
        chomp $l;
        my ($k, $t0, $t1, $w, $id, $st, @x) = split /\t/, $l;
        if ($k eq 'N' && $st == 201) {
            $born{$id} = $t1;
            $user_of{$id} = $x[0];
        }
        elsif ($k eq 'O' || $k eq 'R') {
            $first_try{$id} = $t0 if !defined $first_try{$id} || $t0 < $first_try{$id};
            if (($k eq 'O' && $st == 201) || ($k eq 'R' && $st == 200)) {
                if (!defined $revoked_at{$id} || $t1 < $revoked_at{$id}) {
                    $revoked_at{$id} = $t1;
                    $revoke_line{$id} = $l;
                }
            }
            if ($k eq 'O' && $st == 201) {
                $born{ $x[0] } = $t1;
                $user_of{ $x[0] } = $x[1];
            }
        }
    }
}

# pass 2: every answer by kind and status; the checks against pass 1
my (@late200, @false401, %checked_after, $nafter, $nlive);
for my $f (@logs) {
    open my $fh, '<', $f or next;
    while (my $l = <$fh>) {
        chomp $l;
        my ($k, $t0, $t1, $w, $id, $st) = split /\t/, $l;
        $nreq++;
        $by{$k eq 'C' ? "check $w" : $k}{$st}++;
        push @unexpected, $l unless grep { $_ == $st } @{ $allowed{$k} || [] };
        next unless $k eq 'C';
        if (defined $revoked_at{$id} && $t0 > $revoked_at{$id}) {
            $checked_after{$id}++;
            $nafter++;
            push @late200, $l if $st == 200;
        }
        if (defined $born{$id} && $t0 > $born{$id} && (!defined $first_try{$id} || $t1 < $first_try{$id})) {
            $nlive++;
            push @false401, $l if $st == 401;
        }
    }
}

sub near_events {    # the faults around a moment (monotonic s)
    my ($t) = @_;
    $t -= $T0;
    return join ', ', map { sprintf '%s [%.3f, %.3f]', $_->[2], $_->[0], $_->[1] }
                      grep { $_->[1] >= $t - 3 && $_->[0] <= $t + 1 } @events;
}
sub show_lines {
    my (@l) = @_;
    return join "\n", map {
        my @f = split /\t/, $_;
        my $rv = $revoke_line{ $f[4] } ? "\n    revoked by: $revoke_line{ $f[4] }" : '';
        sprintf("%s (sent at %s, T0+%.3f s)%s\n    faults near (T0+s): %s", $_, wall($f[1]), $f[1] - $T0, $rv,
                near_events($f[1]))
    } @l[0 .. min(9, $#l)];
}

is(scalar @unexpected, 0, 'every answer was one of the expected statuses (no 5xx but 503, no transport error)')
    or diag show_lines(@unexpected);
is(scalar @late200, 0, "no revoked token was answered 200 by a request sent after its revoke's 2xx")
    or diag "kind t0 t1 where id status:\n" . show_lines(@late200);
is(scalar @false401, 0, 'no token was refused 401 between its create and the first attempt to revoke it ('
                        . ($nlive // 0) . ' checks)')
    or diag show_lines(@false401);
my $min_revoked = $LONG ? 100 : 40;
cmp_ok(scalar keys %checked_after, '>=', $min_revoked, "at least $min_revoked revoked tokens checked after their revoke");

# ---------------------------------------------------------------------------
# workers: none crashed, fds and RSS

my @signalled = grep { /exited on signal/ } split /\n/, $A->error_log . $B->error_log;
is(scalar @signalled, 0, 'no worker exited on a signal') or diag join "\n", @signalled[0 .. min(9, $#signalled)];
for my $n (qw(A B)) {
    is_deeply([ sort keys %{ $end->{$n}{workers} } ], [ sort keys %{ $base->{$n}{workers} } ],
              "$n: the same workers at the end as after the warm-up (none died and was replaced)");
}

# Fair measures.  A worker's fds are structural (listening sockets, logs,
# channels, epoll, its Redis connections): with the traffic held and every
# link up, a worker of any generation has the same count, so the end is
# compared with the first generation too (that catches an fd the master
# leaks on each reload, which every new worker inherits), and the master
# with itself.  RSS is not comparable across generations (a new worker
# starts from the master's pages, copy-on-write): it is compared within
# the last generation, after a warm-up that took it through every fault
# once (each code path touches its pages for the first time) and filled
# the cache zone.  Not in the sanitizer build: ASan's quarantine grows it.
sub within10 { my ($v, $ref) = @_; return abs($v - $ref) <= 0.1 * $ref }
for my $n (qw(A B)) {
    my @b1 = sort { $a <=> $b } map { $_->{fds} } values %{ $gen1->{$n}{workers} };
    for my $pid (sort keys %{ $end->{$n}{workers} }) {
        my $e = $end->{$n}{workers}{$pid};
        my $w = $base->{$n}{workers}{$pid} or next;
        ok(within10($e->{fds}, $w->{fds}), "$n worker $pid: fds $e->{fds}, within 10% of $w->{fds} after warm-up");
        ok(within10($e->{fds}, max(@b1)), "$n worker $pid: fds $e->{fds}, within 10% of the first generation's (@b1)");
        next if $SAN;
        ok(within10($e->{rss}, $w->{rss}), "$n worker $pid: RSS $e->{rss} kB, within 10% of $w->{rss} kB after warm-up");
    }
    ok(within10($end->{$n}{master}{fds}, $gen1->{$n}{master}{fds}),
       "$n master: fds $end->{$n}{master}{fds} after $RELOADS reloads, within 10% of $gen1->{$n}{master}{fds}");
}
diag 'first generation: ' . show_snap($gen1);
diag 'after warm-up:    ' . show_snap($base);
diag 'end:              ' . show_snap($end);

# ---------------------------------------------------------------------------
# afterwards: revoked tokens fail, acknowledged writes kept, Redis consistent

open my $pf, '<', $POOL or die "$POOL: $!";
while (<$pf>) { chomp; my ($id, $tok, $u) = split /\t/; $tokens{$id} = $tok; $user_of{$id} //= $u }
close $pf;

my @dead = grep { defined $tokens{$_} } keys %revoked_at;
@dead = (shuffle @dead)[0 .. 1999] if @dead > 2000;
my $res = burst(port => $A->port, concurrency => 8, timeout => 10,
    requests => [ map { { path => '/static/protected.txt', headers => { Authorization => "Bearer $tokens{$_}" } } } @dead ]);
my $res2 = burst(port => $B->port, concurrency => 8, timeout => 10,
    requests => [ map { { path => '/static/protected.txt', headers => { Authorization => "Bearer $tokens{$_}" } } } @dead ]);
my %fin;
$fin{ $_->{status} }++ for @$res, @$res2;
is_deeply(\%fin, { 401 => 2 * @dead }, 'afterwards: every revoked token gets 401 on both nginx (' . scalar(@dead) . ' tokens)')
    or diag explain \%fin;

# the list of every user, by id
my (%listed, %users, @list_fail);
$users{$_} = 1 for grep { defined } values %user_of;
for my $u (sort keys %users) {
    my @items;
    PAGE: for my $p (0 .. 100) {
        my $r;
        for (1 .. 20) {
            $r = $B->http(GET => "$API?page_size=100&page_index=$p", { headers => { 'X-User' => $u } });
            last if $r->{status} == 200;
            sleep 0.1;
        }
        if ($r->{status} != 200 || ref $r->{json} ne 'HASH') { push @list_fail, "$u: $r->{status}"; last PAGE }
        push @items, @{ $r->{json}{items} };
        last if !@{ $r->{json}{items} } || @items >= $r->{json}{totalCount};
    }
    $listed{ $_->{id} } = { status => $_->{status}, user => $u } for @items;
}
is(scalar @list_fail, 0, 'afterwards: the list answers for every user') or diag join "\n", @list_fail[0 .. min(9, $#list_fail)];
my @lost_create = grep { !$listed{$_} } sort keys %born;
my @lost_revoke = grep { !$listed{$_} || $listed{$_}{status} ne 'revoked' } sort keys %revoked_at;
is(scalar @lost_create, 0, 'no acknowledged create was lost (' . scalar(keys %born) . ' tokens)')
    or diag join "\n", @lost_create[0 .. min(9, $#lost_create)];
is(scalar @lost_revoke, 0, 'no acknowledged revoke was lost: each is listed revoked (' . scalar(keys %revoked_at) . ' tokens)')
    or diag join "\n", map { "$_: " . ($listed{$_} ? $listed{$_}{status} : 'not listed') . "\n    $revoke_line{$_}" }
                       @lost_revoke[0 .. min(9, $#lost_revoke)];

# the consistency scan, on one Redis connection: the layout of the top of
# src/ngx_http_auth_pat_store.c (NS v:DIGEST, NS {u:UID}:m)
my $rs = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->{port},
                               Proto => 'tcp', Timeout => 5) or die "redis: $!";
binmode $rs;
my $rc = { sock => $rs, buf => '' };
sub rcmd {
    my (@a) = @_;
    $rc->{deadline} = Time::HiRes::time() + 10;
    PatTest::_resp_send($rc, @a);
    return PatTest::_resp_read($rc);
}
my (@valid_revoked, @no_meta, @bad_digest, $nscan);
for my $id (sort grep { $listed{$_}{status} eq 'revoked' } keys %listed) {
    $nscan++;
    my $m = rcmd('HGET', "pat:{u:$listed{$id}{user}}:m", $id);
    my $d = defined $m && !ref $m ? eval { JSON::PP::decode_json($m)->{d} } : undef;
    if (!defined $d) { push @no_meta, "$id: " . ($m // 'no metadata'); next }
    push @bad_digest, $id if defined $tokens{$id} && $d ne token_digest($A->key, $tokens{$id});
    my $v = rcmd('HMGET', "pat:v:$d", 'u', 'i');
    push @valid_revoked, "$id (user $listed{$id}{user}): pat:v:$d holds u=" . ($v->[0] // '') . ' i=' . ($v->[1] // '')
        if defined $v->[0] || defined $v->[1];
}
my (@rec_revoked, $nrec, $cursor, $scans);
$cursor = 0;
do {
    die "SCAN does not end\n" if ++$scans > 100000;
    my $r = rcmd('SCAN', $cursor, 'MATCH', 'pat:v:*', 'COUNT', 1000);
    $cursor = $r->[0];
    for my $k (@{ $r->[1] }) {
        $nrec++;
        my ($u, $i) = @{ rcmd('HMGET', $k, 'u', 'i') };
        next unless defined $i;
        my $m = rcmd('HGET', "pat:{u:$u}:m", $i);
        my $j = defined $m && !ref $m ? eval { JSON::PP::decode_json($m) } : undef;
        my $why = !$j ? 'no metadata'
                : defined $j->{r} ? "metadata revoked at $j->{r}"
                : $listed{$i} && $listed{$i}{status} ne 'active' ? "listed $listed{$i}{status}"
                : undef;
        push @rec_revoked, "$k (token $i of $u): $why" if $why;
    }
} while ($cursor ne '0');
close $rs;
cmp_ok($nscan, '>=', $min_revoked, "the scan looked at $nscan tokens that the list shows revoked");
is(scalar @no_meta, 0, 'each has its metadata, with its digest') or diag join "\n", @no_meta[0 .. min(9, $#no_meta)];
is(scalar @bad_digest, 0, 'the digests are those of the tokens issued');
is(scalar @valid_revoked, 0, 'consistency: no token the list shows revoked has a validation record in Redis')
    or diag join "\n", @valid_revoked[0 .. min(9, $#valid_revoked)];
is(scalar @rec_revoked, 0, "consistency: each of the $nrec validation records in Redis is of a token metadata and list show active")
    or diag join "\n", @rec_revoked[0 .. min(9, $#rec_revoked)];

# ---------------------------------------------------------------------------

my $st = join ', ', map { my $k = $_; "$k: " . join(' ', map { "$_=$by{$k}{$_}" } sort keys %{ $by{$k} }) } sort keys %by;
diag sprintf('soak: %.1f s%s%s, %d requests (%s); Redis kills %d, pauses %d, client kills normal %d / pubsub %d, '
             . 'both %d, script flushes %d, reloads %d (x2 nginx); %d tokens revoked (%d by rotation), %d of them checked '
             . '%d times after their revoke',
             $soak_secs, $SAN ? ' (sanitizer build)' : '', $LONG ? " (long mode, phase 2 $LONG s)" : '',
             $nreq, $st, $count{kills}, $count{pause}, $count{'client kill normal'},
             $count{'client kill pubsub'}, $count{'client kill all'}, $count{'script flush'}, $count{reloads},
             scalar(keys %revoked_at), scalar(grep { $revoke_line{$_} =~ /^O/ } keys %revoke_line),
             scalar(keys %checked_after), $nafter // 0);

$A->done;
$B->done;
done_testing;
