# Load: 2,000 requests over 200 connections, valid and invalid tokens
# mixed, every answer right; the same under `nginx -s reload`; clients
# that disconnect while their lookup is in flight.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use JSON::PP ();
use PatTest;
use PatToken qw(seed_token make_token now_ms);
use PatLoad qw(burst);

my $t = PatTest->new;
my $redis = $t->start_redis;
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=2s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%% backlog=1024;
    location / {
        auth_pat "t";
        proxy_set_header X-User-Id $pat_user_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
}
server {
    listen 127.0.0.1:%%PORT2%%;
    location / { return 200 "user=$http_x_user_id\n"; }
}
EOF2
$t->start_nginx;

my @valid = map { seed_token($t, user => "user$_", expires => now_ms() + 3600_000) } 1..20;
my @revoked = map { make_token() } 1..20;

sub mixed {
    my ($n) = @_;
    my (@reqs, @want);
    for my $i (0 .. $n - 1) {
        my $k = $i % 4;
        if ($k == 0 || $k == 1) {
            my $v = $valid[$i % @valid];
            push @reqs, { path => "/r$i", headers => { Authorization => "Bearer $v->{token}" } };
            push @want, [200, 'user=user' . (($i % @valid) + 1)];
        } elsif ($k == 2) {
            # well-formed, unknown to Redis
            push @reqs, { path => "/r$i", headers => { Authorization => "Bearer $revoked[$i % @revoked]" } };
            push @want, [401, 'unauthorized', 'invalid_token'];
        } else {
            # a b64token that is no token: refused before Redis
            push @reqs, { path => "/r$i", headers => { Authorization => "Bearer not-a-token-$i" } };
            push @want, [401, 'unauthorized', 'invalid_token'];
        }
    }
    return (\@reqs, \@want);
}

# A 200 must carry the upstream's body; a 401 the JSON body
# {"error": CODE, "message": text} and WWW-Authenticate with the realm
# "t" and error="ATTR".
sub check {
    my ($name, $res, $want) = @_;
    my $wrong = 0;
    my $json = JSON::PP->new->utf8;
    for my $i (0 .. $#$res) {
        my ($st, @w) = @{ $want->[$i] };
        my $r = $res->[$i];
        my $why;
        if ($r->{status} != $st) {
            $why = "status $r->{status}" . ($r->{error} ? " ($r->{error})" : '');
        } elsif ($st == 200) {
            $why = "body '$r->{body}'" if $r->{body} ne "$w[0]\n";
        } else {
            my ($code, $attr) = @w;
            my $ct = $r->{headers}{'content-type'} // '';
            my $b  = eval { $json->decode($r->{body}) };
            my $wa = $r->{headers}{'www-authenticate'} // '';
            if ($ct !~ m{^application/json\b}) { $why = "content type '$ct'" }
            elsif (ref $b ne 'HASH') { $why = "body not a JSON object: '$r->{body}'" }
            elsif (($b->{error} // '') ne $code) { $why = "error '" . ($b->{error} // '') . "'" }
            elsif (!defined $b->{message} || ref $b->{message} || !length $b->{message}) { $why = 'no message' }
            elsif ($wa ne qq{Bearer realm="t", error="$attr"}) { $why = "WWW-Authenticate '$wa'" }
        }
        if (defined $why) {
            diag "$name #$i: got $why, want $st @w" if $wrong < 5;
            $wrong++;
        }
    }
    is($wrong, 0, "$name: every one of " . scalar(@$res) . " answers is right");
}

sub redis_stats {
    my %s = $t->redis_cmd('INFO', 'stats') =~ /^(\w+):(\d+)\r?$/mg;
    return \%s;
}

my ($reqs, $want) = mixed(2000);
my $before = redis_stats();
# the harness opens a connection per command: count what INFO costs
my $own = redis_stats()->{total_connections_received} - $before->{total_connections_received};
$before = redis_stats();
my $res = burst(port => $t->port, requests => $reqs, concurrency => 200, timeout => 20);
check('burst', $res, $want);

# the lookups shared each worker's one connection: Redis saw no new
# connection, and one command connection per worker
{
    my $after = redis_stats();
    my ($conns, $cmds) = map { $after->{$_} - $before->{$_} }
        qw(total_connections_received total_commands_processed);
    is($conns - $own, 0, 'no connection to Redis was made for the burst');
    cmp_ok($cmds, '>=', 1500, "the burst's lookups reached Redis ($cmds commands)");
    my @cmd_clients = grep { /name=auth_pat:cmd:/ } split /\n/, $t->redis_cmd('CLIENT', 'LIST');
    is(scalar @cmd_clients, 2, 'one command connection per worker');
}

# pipelining, made visible: with Redis stopped, 200 concurrent lookups
# wait on the workers' two connections; when it resumes, it finds their
# commands in its sockets and reads them in a few reads, not one each
{
    my $s0 = redis_stats();
    my $v = $valid[0];
    my $out = $t->path('stopped-burst.txt');
    $t->kill_redis($redis, 'STOP');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $r = burst(port => $t->port, concurrency => 200, timeout => 20,
            requests => [ map { { path => "/p$_", headers => { Authorization => "Bearer $v->{token}" } } } 1..200 ]);
        open my $f, '>', $out or POSIX::_exit(1);
        print $f join(',', map { $_->{status} } @$r);
        close $f;
        POSIX::_exit(0);
    }
    sleep 1;    # the commands are written; the check's timeout is 2 s
    $t->kill_redis($redis, 'CONT');
    waitpid $pid, 0;
    my @st = split /,/, $t->read_file('stopped-burst.txt');
    is(scalar(grep { $_ == 200 } @st), 200, 'the 200 lookups held up by a stopped Redis all pass once it resumes');
    my $s1 = redis_stats();
    my ($cmds, $reads) = map { $s1->{$_} - $s0->{$_} } qw(total_commands_processed total_reads_processed);
    cmp_ok($reads * 3, '<=', $cmds, "pipelined: $cmds commands arrived in $reads reads");
}

# the same burst with a reload in the middle
my $reloaded = 0;
my @old = $t->worker_pids;
$res = burst(port => $t->port, requests => $reqs, concurrency => 200, timeout => 20,
    on_progress => sub { if ($_[0] == 600 && !$reloaded++) { $t->reload } });
check('burst with reload', $res, $want);
my %old = map { $_ => 1 } @old;
ok(!grep({ $old{$_} } $t->worker_pids), 'new workers serve after the reload');

# clients that go away while their lookup waits on a hung Redis
$t->kill_redis($redis, 'STOP');
for (1..50) {
    $t->raw_http("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $valid[0]{token}\r\n\r\n",
                 close_after_send => 1);
}
# and while Redis answers
$t->kill_redis($redis, 'CONT');
sleep 3;   # let the hung lookups time out and the connection come back
for (1..100) {
    $t->raw_http("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $valid[$_ % 20]{token}\r\n\r\n",
                 close_after_send => 1);
}
my $ok = 0;
for (1..60) {
    my $r = $t->get('/after', { Authorization => "Bearer $valid[1]{token}" });
    if ($r->{status} == 200) { $ok = 1; last }
    select undef, undef, undef, 0.1;
}
ok($ok, 'requests after the disconnects are served');
($reqs, $want) = mixed(400);
$res = burst(port => $t->port, requests => $reqs, concurrency => 100, timeout => 20);
check('burst after disconnects', $res, $want);

# `nginx -s quit` with lookups in flight on a hung Redis: the workers
# answer them (503 at the deadline) and exit; nothing hangs
$t->kill_redis($redis, 'STOP');
my $pid = fork // die;
if ($pid == 0) {
    burst(port => $t->port, concurrency => 20, timeout => 10,
          requests => [ map { { path => '/q', headers => { Authorization => "Bearer $valid[0]{token}" } } } 1..20 ]);
    POSIX::_exit(0);
}
select undef, undef, undef, 0.3;
my $master = $t->nginx_pid;
my @workers = $t->worker_pids;
kill 'QUIT', $master;
my $gone = 0;
for (1..100) {
    if (!grep { PatTest::pid_alive($_) } $master, @workers) { $gone = 1; last }
    select undef, undef, undef, 0.05;
}
ok($gone, 'nginx -s quit with lookups in flight: all processes exit within 5 s');
waitpid $pid, 0;

# `nginx -s stop` (SIGTERM) likewise: the workers exit at once, and no
# request is resumed from the exit handler
$t->kill_redis($redis, 'CONT');
$t->start_nginx;
$t->kill_redis($redis, 'STOP');
$pid = fork // die;
if ($pid == 0) {
    burst(port => $t->port, concurrency => 20, timeout => 10,
          requests => [ map { { path => '/s', headers => { Authorization => "Bearer $valid[1]{token}" } } } 1..20 ]);
    POSIX::_exit(0);
}
select undef, undef, undef, 0.3;
$master = $t->nginx_pid;
@workers = $t->worker_pids;
kill 'TERM', $master;
$gone = 0;
for (1..40) {
    if (!grep { PatTest::pid_alive($_) } $master, @workers) { $gone = 1; last }
    select undef, undef, undef, 0.05;
}
ok($gone, 'nginx -s stop with lookups in flight: all processes exit within 2 s');
waitpid $pid, 0;
$t->kill_redis($redis, 'CONT');

$t->done;
done_testing;
