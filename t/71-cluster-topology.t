# Redis Cluster topology, with scripted nodes (PatProxy::serve) that
# record what they receive, one worker:
# 1. CLUSTER SLOTS naming a master by a nil or an empty endpoint: the
#    IP of the node that answered, with the port given (the check
#    reaches that port's node);
# 2. MOVED to ":PORT" (no IP): the node that redirected, at that port;
#    the command follows it, and the table is asked again soon after;
# 3. a master the table names that says ROLE "slave": the table is
#    asked every second meanwhile (not every 10 s);
# 4. a master the table no longer names is retired: its command
#    connection is closed, and not connected again;
# 5. a partial table logs "serves N of 16384 slots: no table yet" once
#    per 10 s, however often it is asked.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use Digest::SHA qw(sha1_hex);
use PatTest;
use PatCluster ();
use PatProxy qw(serve stop resp_commands);
use PatToken qw(make_token token_digest);
use PatApi qw(gateway_conf);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

# ---------------------------------------------------------------- RESP

sub bulk { defined $_[0] ? '$' . length($_[0]) . "\r\n$_[0]\r\n" : "\$-1\r\n" }
sub nils { my ($n) = @_; "*$n\r\n" . ("\$-1\r\n" x $n) }

# CLUSTER SLOTS of ranges [from, to, ip (undef: nil), port]
sub slots_resp {
    my (@r) = @_;
    return '*' . @r . "\r\n" . join '', map {
        "*3\r\n:$_->[0]\r\n:$_->[1]\r\n*2\r\n" . bulk($_->[2]) . ":$_->[3]\r\n"
    } @r;
}

my $MASTER = "*3\r\n\$6\r\nmaster\r\n:0\r\n*0\r\n";

# ------------------------------------------------------- scripted node

# node($t, NAME, PORT, ANSWER): a cluster node on 127.0.0.1:PORT.
# ANSWER->(\@argv, $client) gives the reply to a command (undef: the
# default one; CLUSTER has none).  Every connection records into
# node-NAME.log, a line an event: time, connection id, "open" | "cmd
# CLIENT-NAME VERB ARG1" | "close CLIENT-NAME"
sub node {
    my ($t, $name, $port, $answer) = @_;
    my $log = $t->path("node-$name.log");
    return serve($port, sub {
        my ($c) = @_;
        $SIG{PIPE} = 'IGNORE';
        binmode $c;
        my $client = '-';
        my $rec = sub {
            open my $fh, '>>', $log or return;
            syswrite $fh, join("\t", sprintf('%.4f', time), $$, @_) . "\n";
            close $fh;
        };
        eval {
            $rec->('open');
            my $buf = '';
            my $end = time + 60;
            while (time < $end) {
                my $rin = '';
                vec($rin, fileno($c), 1) = 1;
                next unless select(my $rout = $rin, undef, undef, 0.05);
                my $got = sysread($c, $buf, 65536, length $buf);
                if (!$got) { $rec->('close', $client); return }
                for my $a (resp_commands(\$buf)) {
                    my $verb = uc $a->[0];
                    my $sub = uc($a->[1] // '');
                    $client = $a->[2] // '-' if $verb eq 'CLIENT' && $sub eq 'SETNAME';
                    $rec->('cmd', $client, $verb, $verb eq 'SCRIPT' ? $sub : $a->[1] // '');
                    my $out = $answer->($a, $client);
                    $out //= $verb eq 'SCRIPT' && $sub eq 'LOAD' ? bulk(sha1_hex($a->[2] // ''))
                           : $verb eq 'ROLE'    ? $MASTER
                           : $verb eq 'PING'    ? "+PONG\r\n"
                           : $verb eq 'HMGET'   ? nils(@$a - 2)
                           : $verb eq 'CLUSTER' ? "-ERR not scripted\r\n"
                           : "+OK\r\n";
                    if (!defined syswrite($c, $out)) { $rec->('close', $client); return }
                }
            }
            1;
        };
        POSIX::_exit(0);
    });
}

# the events node NAME recorded: [{ t, id, ev, client, verb, arg }, ...]
sub events {
    my ($t, $name) = @_;
    my @e;
    for my $line (split /\n/, $t->read_file("node-$name.log") // '') {
        my ($tm, $id, $ev, $client, $verb, $arg) = split /\t/, $line, -1;
        push @e, { t => $tm, id => $id, ev => $ev, client => $client // '',
                   verb => $verb // '', arg => $arg // '' };
    }
    return @e;
}

# how many commands VERB node NAME received from $since on
sub received {
    my ($t, $name, $verb, $since) = @_;
    return scalar grep { $_->{ev} eq 'cmd' && $_->{verb} eq $verb && $_->{t} >= ($since // 0) }
                       events($t, $name);
}

# node NAME has a command connection of nginx, its handshake done
sub linked {
    my ($t, $name) = @_;
    return scalar grep { $_->{ev} eq 'cmd' && $_->{verb} eq 'ROLE' && $_->{client} =~ /^auth_pat:cmd:/ }
                       events($t, $name);
}

sub start {
    my ($t, $redis) = @_;
    $t->nginx_conf(workers => 1, http => gateway_conf(redis => $redis, timeout => '1s'));
    $t->start_nginx;
}

sub check {
    my ($t, $tok) = @_;
    return $t->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
}

sub vslot { my ($t, $tok) = @_; PatCluster::slot('pat:v:' . token_digest($t->key, $tok)) }

# --------------------------------- 1. a nil or "" endpoint: the answerer's IP

for my $v ([ 'nil', undef ], [ 'empty', '' ]) {
    my ($label, $ip) = @$v;
    my $t = PatTest->new;
    my ($pa, $pb) = ($t->free_port, $t->free_port);
    my $table = slots_resp([ 0, 16383, $ip, $pb ]);
    my $answer = sub { uc $_[0][0] eq 'CLUSTER' ? $table : undef };
    my @pids = (node($t, 'A', $pa, $answer), node($t, 'B', $pb, $answer));
    start($t, "127.0.0.1:$pa cluster");
    my $tok = make_token();
    ok(PatTest::until_ok(5 * $slack, sub { check($t, $tok) == 401 }),
       "$label endpoint of port B in A's table: the check is answered (401)");
    cmp_ok(received($t, 'B', 'HMGET'), '>=', 1, "$label endpoint: the check's HMGET reached B (A's IP, B's port)");
    is(received($t, 'A', 'HMGET'), 0, "$label endpoint: and not A");
    unlike($t->error_log, qr/names .* as the master of slots/, "$label endpoint: not refused");
    $t->done;
    stop($_) for @pids;
}

# ------------------------------------------ 2. MOVED to ":PORT": the redirector's IP

{
    my $t = PatTest->new;
    my ($pa, $pb) = ($t->free_port, $t->free_port);
    my $table = slots_resp([ 0, 16383, '127.0.0.1', $pa ]);
    my @pids = (
        node($t, 'A', $pa, sub {
            my ($a) = @_;
            my $verb = uc $a->[0];
            return $table if $verb eq 'CLUSTER';
            return '-MOVED ' . PatCluster::slot($a->[1]) . " :$pb\r\n" if $verb eq 'HMGET';
            return undef;
        }),
        node($t, 'B', $pb, sub { uc $_[0][0] eq 'CLUSTER' ? $table : undef }),
    );
    start($t, "127.0.0.1:$pa cluster");
    ok(PatTest::until_ok(5 * $slack, sub { linked($t, 'A') }), 'MOVED: A has its command connection');
    my $quiet = time;
    sleep 1.5;   # the table was read, A is up: no refresh due for 10 s
    my $t0 = time;
    is(received($t, 'A', 'CLUSTER', $quiet), 0, 'MOVED: no CLUSTER SLOTS while nothing changes (1.5 s)');
    my $st = check($t, make_token());
    is($st, 401, 'MOVED to ":PORT_B": the check follows it and is answered (401)');
    cmp_ok(received($t, 'A', 'HMGET'), '>=', 1, 'MOVED: A got the HMGET (and redirected it)');
    cmp_ok(received($t, 'B', 'HMGET'), '>=', 1, 'MOVED: B, at A\'s IP, got it next');
    my $asked = PatTest::until_ok(2 * $slack, sub { received($t, 'A', 'CLUSTER', $t0) >= 1 });
    my ($first) = grep { $_->{ev} eq 'cmd' && $_->{verb} eq 'CLUSTER' && $_->{t} >= $t0 } events($t, 'A');
    ok($asked, sprintf('MOVED: A is asked CLUSTER SLOTS again soon after (%s)',
                       $first ? sprintf('%.2f s after the check began', $first->{t} - $t0) : 'not within 2 s'));
    $t->done;
    stop($_) for @pids;
}

# --------------------------------- 3. a demoted master: a refresh every second

{
    my $t = PatTest->new;
    my $pa = $t->free_port;
    my $switch = $t->path('demoted');
    my $table = slots_resp([ 0, 16383, '127.0.0.1', $pa ]);
    my $slave = "*5\r\n\$5\r\nslave\r\n\$9\r\n127.0.0.1\r\n:$pa\r\n\$9\r\nconnected\r\n:0\r\n";
    my @pids = (node($t, 'A', $pa, sub {
        my ($a) = @_;
        my $verb = uc $a->[0];
        return $table if $verb eq 'CLUSTER';
        return $slave if $verb eq 'ROLE' && -e $switch;
        return undef;
    }));
    # keepalive: ROLE on the command connection every 500 ms
    start($t, "127.0.0.1:$pa cluster keepalive=500ms");
    ok(PatTest::until_ok(5 * $slack, sub { linked($t, 'A') }), 'demoted: A has its command connection');
    sleep 1.2;   # past any refresh of the start (A not yet up)
    my $t0 = time;
    sleep 4;
    my $before = received($t, 'A', 'CLUSTER', $t0);
    cmp_ok($before, '<=', 1, "demoted: while A is a master, at most 1 CLUSTER SLOTS in 4 s ($before)");
    my $t1 = time;
    $t->write_file($switch, '1');
    sleep 4;
    my $after = received($t, 'A', 'CLUSTER', $t1);
    cmp_ok($after, '>=', 2, "demoted: once A's ROLE says slave, CLUSTER SLOTS at least twice in 4 s ($after)");
    cmp_ok(received($t, 'A', 'ROLE', $t1), '>=', 2, 'demoted: (keepalive asked ROLE meanwhile)');
    like($t->error_log, qr/"127\.0\.0\.1:$pa" is a replica/, 'demoted: the worker saw the replica');
    $t->done;
    stop($_) for @pids;
}

# ------------------------------------------------ 4. a master retired

{
    my $t = PatTest->new;
    my ($pa, $pb) = ($t->free_port, $t->free_port);
    my $tablef = $t->path('table');
    $t->write_file($tablef, 'split');
    my %table = (
        split => slots_resp([ 0, 8191, '127.0.0.1', $pb ], [ 8192, 16383, '127.0.0.1', $pa ]),
        all   => slots_resp([ 0, 16383, '127.0.0.1', $pa ]),
    );
    my $slots = sub { $table{ $t->read_file($tablef) // 'split' } // $table{split} };
    my @pids = (
        node($t, 'A', $pa, sub { uc $_[0][0] eq 'CLUSTER' ? $slots->() : undef }),
        node($t, 'B', $pb, sub {
            my ($a) = @_;
            my $verb = uc $a->[0];
            return $slots->() if $verb eq 'CLUSTER';
            # B's slots went to A (forces the refresh, instead of 10 s)
            return '-MOVED ' . PatCluster::slot($a->[1]) . " 127.0.0.1:$pa\r\n" if $verb eq 'HMGET';
            return undef;
        }),
    );
    start($t, "127.0.0.1:$pa cluster");
    ok(PatTest::until_ok(5 * $slack, sub { linked($t, 'B') && linked($t, 'A') }),
       'retired: a table naming B (0-8191) and A: nginx connects to both');
    ok((grep { $_->{ev} eq 'cmd' && $_->{verb} eq 'CLIENT' && $_->{client} =~ /^auth_pat:cmd:\d+$/ } events($t, 'B')),
       'retired: B saw CLIENT SETNAME auth_pat:cmd:PID');
    # a token of B's slots
    my $tok;
    for (1 .. 200) { my $x = make_token(); if (vslot($t, $x) < 8192) { $tok = $x; last } }
    ok($tok, 'retired: a token of a slot of B');
    $t->write_file($tablef, 'all');
    my $t0 = time;
    is(check($t, $tok), 401, 'retired: the check (MOVED from B to A) is answered');
    cmp_ok(received($t, 'B', 'HMGET'), '>=', 1, 'retired: B got the HMGET');
    cmp_ok(received($t, 'A', 'HMGET'), '>=', 1, 'retired: A got it next');
    my $closed;
    PatTest::until_ok(12 * $slack, sub {
        ($closed) = grep { $_->{ev} eq 'close' && $_->{client} =~ /^auth_pat:cmd:/ } events($t, 'B');
        $closed;
    });
    ok($closed, 'retired: B\'s command connection is closed once the table names A alone'
                . ($closed ? sprintf(' (%.2f s)', $closed->{t} - $t0) : ''));
    if ($closed) {
        my $tc = $closed->{t};
        # checks meanwhile, served by A
        my $ok = 0;
        while (time < $tc + 3) {
            $ok++ if check($t, make_token()) == 401;
            sleep 0.25;
        }
        cmp_ok($ok, '>=', 1, 'retired: the checks go on (401) on A');
        my @again = grep { $_->{ev} eq 'open' && $_->{t} > $tc } events($t, 'B');
        is(scalar @again, 0, 'retired: nginx does not connect to B again (3 s)');
        is(scalar(grep { $_->{ev} eq 'cmd' && $_->{t} > $tc && $_->{client} =~ /^auth_pat:cmd:/ } events($t, 'B')),
           0, 'retired: and sends B no command');
    }
    $t->done;
    stop($_) for @pids;
}

# ----------------------------- 5. a partial table: its line once per 10 s

{
    my $t = PatTest->new;
    my $pa = $t->free_port;
    my $table = slots_resp([ 0, 100, '127.0.0.1', $pa ]);
    my @pids = (node($t, 'A', $pa, sub { uc $_[0][0] eq 'CLUSTER' ? $table : undef }));
    my $t0 = time;
    start($t, "127.0.0.1:$pa cluster");
    is(check($t, make_token()), 503, 'partial: no table, a check is 503');
    sleep 4 - (time - $t0) if time - $t0 < 4;
    my $asks = received($t, 'A', 'CLUSTER');
    cmp_ok($asks, '>=', 3, "partial: the table was asked again and again ($asks CLUSTER SLOTS in 4 s)");
    my @lines = grep { /serves 101 of 16384 slots: no table yet/ } split /\n/, $t->error_log;
    is(scalar @lines, 1, 'partial: "serves 101 of 16384 slots: no table yet" logged once');
    like($lines[0] // '', qr/\[warn\]/, 'partial: as a warning');
    $t->done;
    stop($_) for @pids;
}

done_testing;
