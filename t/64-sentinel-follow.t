# Sentinel's answers that disagree, with scripted sentinels (two real,
# independent Redis masters A and B behind them):
# - the connections of a worker stay on one node: a subscriber that
#   reconnects goes where the command connection is, not wherever a
#   sentinel points now (a cache trusted on invalidations of another
#   node would serve revoked tokens);
# - after +switch-master, the sentinel that sent it is asked first: one
#   that has not heard of the switch yet does not send the worker back
#   to the old master;
# - a watch that comes back checks the followers against the master
#   named now (a switch missed while it was away);
# - `+switch-master` of a master name holding a space.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatProxy qw(serve stop resp_commands);
use PatApi qw(gateway_conf);

# a scripted sentinel.  answer->($n): [ip, port] for the n-th question on
# a connection (from 1); refuse_subscribe: SUBSCRIBE gets an error;
# publish => [file, message]: once file exists, message goes to a
# subscriber of +switch-master; drop => file: connections close while
# it exists
sub fake_sentinel {
    my ($port, %o) = @_;
    return serve($port, sub {
        my ($c) = @_;
        binmode $c;
        my ($buf, $n, $subscribed, $published) = ('', 0, 0, 0);
        my $end = time + 120;
        while (time < $end) {
            return if $o{drop} && -e $o{drop};
            if ($subscribed && !$published && $o{publish} && -e $o{publish}[0]) {
                my $m = $o{publish}[1];
                syswrite($c, "*3\r\n\$7\r\nmessage\r\n\$14\r\n+switch-master\r\n\$"
                             . length($m) . "\r\n$m\r\n") or return;
                $published = 1;
            }
            my $rin = '';
            vec($rin, fileno($c), 1) = 1;
            next unless select(my $rout = $rin, undef, undef, 0.02);
            my $got = sysread($c, $buf, 65536, length $buf);
            return unless $got;
            for my $a (resp_commands(\$buf)) {
                my @argv = @$a;
                my $cmd = uc $argv[0];
                my $out;
                if ($cmd eq 'SENTINEL') {
                    my $a = $o{answer}->(++$n);
                    $out = "*2\r\n\$" . length($a->[0]) . "\r\n$a->[0]\r\n\$"
                         . length($a->[1]) . "\r\n$a->[1]\r\n";
                } elsif ($cmd eq 'SUBSCRIBE') {
                    if ($o{refuse_subscribe}) {
                        $out = "-ERR not here\r\n";
                    } else {
                        $subscribed = 1;
                        $out = "*3\r\n\$9\r\nsubscribe\r\n\$" . length($argv[1])
                             . "\r\n$argv[1]\r\n:1\r\n";
                    }
                } elsif ($cmd eq 'PING') {
                    $out = $subscribed ? "*2\r\n\$4\r\npong\r\n\$0\r\n\r\n" : "+PONG\r\n";
                } else {
                    $out = "+OK\r\n";
                }
                syswrite($c, $out) or return;
            }
        }
    });
}

my $t = PatTest->new;
my $A = $t->start_redis(name => 'a');
my $B = $t->start_redis(name => 'b');
my @A = ('127.0.0.1', $A->{port});
my @B = ('127.0.0.1', $B->{port});

# the workers' connections on a node: { cmd => n, sub => n, ... }
sub on {
    my ($r) = @_;
    my %n;
    $n{$_}++ for $t->redis_cmd_on($r, 'CLIENT', 'LIST') =~ /name=auth_pat:(\w+):/g;
    return \%n;
}
sub where {
    my ($a, $b) = (on($A), on($B));
    return join ' ', (map { "A.$_=$a->{$_}" } sort keys %$a),
                     (map { "B.$_=$b->{$_}" } sort keys %$b);
}

sub nginx_on {
    my ($x, @sentinels) = @_;
    $x->nginx_conf(workers => 1, http => gateway_conf(
        redis => join(' ', map { "127.0.0.1:$_" } @sentinels) . ' sentinel=m',
        extra => 'auth_pat_cache zone=c:1m ttl=30s;'));
    $x->start_nginx;
}

# --- the subscriber goes where the command connection is
{
    my $p = $t->free_port;
    # the first question names A, every later one B
    my $pid = fake_sentinel($p, answer => sub { $_[0] == 1 ? \@A : \@B });
    nginx_on($t, $p);
    ok(PatTest::until_ok(5, sub { my $a = on($A); ($a->{cmd} // 0) == 1 && ($a->{sub} // 0) == 1 }),
       'both connections on A, the first answer') or diag where();
    $t->redis_cmd_on($A, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    ok(PatTest::until_ok(5, sub { (on($A)->{sub} // 0) == 1 }),
       'the subscriber, killed, reconnects to the command connection\'s node')
        or diag where();
    is(join(',', sort keys %{ on($B) }), '', 'and nothing went to B (which a new question names)');
    $t->stop_nginx;
    stop($pid);
}

# --- after +switch-master, its sentinel first
{
    my $u = PatTest->new;
    my ($p1, $p2) = ($u->free_port, $u->free_port);
    my $go = $u->path('switch');
    # S1 never hears of the switch and refuses the watch; S2 watches
    my $s1 = fake_sentinel($p1, answer => sub { \@A }, refuse_subscribe => 1);
    my $s2 = fake_sentinel($p2, answer => sub { -e $go ? \@B : \@A },
                           publish => [ $go, "m 127.0.0.1 $A->{port} 127.0.0.1 $B->{port}" ]);
    nginx_on($u, $p1, $p2);
    ok(PatTest::until_ok(5, sub { (on($A)->{cmd} // 0) == 1 }), 'on A, which both name');
    $u->write_file($go, '');
    ok(PatTest::until_ok(5, sub { my $b = on($B); ($b->{cmd} // 0) == 1 && ($b->{sub} // 0) == 1 }),
       'a switch to B: the command connection and the subscriber move there, '
       . 'though S1, asked first until now, still names A') or diag where();
    is(on($A)->{cmd} // 0, 0, 'nothing stays on A');
    like($u->error_log, qr/\[warn\].*sentinel "127\.0\.0\.1:$p2" reports a new master of "m": 127\.0\.0\.1 port $B->{port}/,
         'the switch is logged');
    $u->done(allow => [qr/refused the connection setup/]);
    stop($_) for $s1, $s2;
}

# --- a watch that comes back checks the followers
{
    my $u = PatTest->new;
    my $p = $u->free_port;
    my $moved = $u->path('moved');
    my $drop = $u->path('drop');
    # a switch happens while the watch is away: no message, only the answer
    my $s = fake_sentinel($p, answer => sub { -e $moved ? \@B : \@A }, drop => $drop);
    nginx_on($u, $p);
    ok(PatTest::until_ok(5, sub { (on($A)->{cmd} // 0) == 1 }), 'on A');
    $u->write_file($drop, '');
    sleep 0.3;
    $u->write_file($moved, '');
    unlink $drop;
    ok(PatTest::until_ok(8, sub { (on($B)->{cmd} // 0) == 1 }),
       'the watch back, the master named now is B: the command connection moves') or diag where();
    $u->done;
    stop($s);
}

# --- a master name with a space
{
    my $u = PatTest->new;
    my $p = $u->free_port;
    my $go = $u->path('switch');
    my $s = fake_sentinel($p, answer => sub { -e $go ? \@B : \@A },
                          publish => [ $go, "my master 127.0.0.1 $A->{port} 127.0.0.1 $B->{port}" ]);
    $u->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$p 'sentinel=my master'"));
    $u->start_nginx;
    ok(PatTest::until_ok(5, sub { (on($A)->{cmd} // 0) == 1 }), '"my master" on A');
    $u->write_file($go, '');
    ok(PatTest::until_ok(5, sub { (on($B)->{cmd} // 0) == 1 }),
       'its +switch-master is understood');
    $u->done;
    stop($s);
}

$t->done;
done_testing;
