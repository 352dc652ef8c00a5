# Redis Cluster, with a scripted node: a command retried on TRYAGAIN
# until little of its deadline is left, whose last answer comes late
# (the node is slow, not hung), gets its 503 by its deadline, and the
# connection to the node is not reset for it: it still has its whole
# timeout, and serves the next request.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use PatTest;
use PatProxy qw(serve stop resp_commands);
use PatToken qw(make_token);
use PatApi qw(gateway_conf);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

my $t = PatTest->new;
my $port = $t->free_port;
my $mode = $t->path('mode');   # "tryagain" or "slow"
$t->write_file($mode, 'ok');

# one node that serves every slot; the check's HMGET gets TRYAGAIN in
# mode "tryagain", and its answer (no such token) 0.3 s late in "slow"
my $pid = serve($port, sub {
    my ($c) = @_;
    binmode $c;
    my $buf = '';
    my $end = time + 60;
    my @late;   # [time, bytes]
    while (time < $end) {
        while (@late && $late[0][0] <= time) { syswrite($c, (shift @late)->[1]) or return }
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, 0.01);
        sysread($c, $buf, 65536, length $buf) or return;
        for my $a (resp_commands(\$buf)) {
            my @argv = @$a;
            my $cmd = uc $argv[0];
            my $out;
            if ($cmd eq 'CLUSTER') {
                $out = "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n\$9\r\n127.0.0.1\r\n:$port\r\n";
            } elsif ($cmd eq 'ROLE') {
                $out = "*3\r\n\$6\r\nmaster\r\n:0\r\n*0\r\n";
            } elsif ($cmd eq 'HMGET') {
                my $m = $t->read_file('mode') // '';
                if ($m eq 'tryagain') {
                    $out = "-TRYAGAIN Multiple keys request during rehashing of slot\r\n";
                } else {
                    my $nil = "*" . (@argv - 2) . "\r\n" . ("\$-1\r\n" x (@argv - 2));
                    if ($m eq 'slow') { push @late, [ time + 0.3, $nil ]; next }
                    $out = $nil;
                }
            } elsif ($cmd eq 'PING') {
                $out = "+PONG\r\n";
            } else {
                $out = "+OK\r\n";
            }
            # replies stay in order behind a late one
            if (@late) { push @late, [ $late[-1][0], $out ] } else { syswrite($c, $out) or return }
        }
    }
});

$t->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$port cluster", timeout => '1s'));
$t->start_nginx;
my $tok = make_token();
sub check { $t->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status} }

ok(PatTest::until_ok(5, sub { check() == 401 }), 'the node answers: an unknown token is 401');

# TRYAGAIN for 0.92 s (the retries: 50, 100, 200, 200, ... ms), then the
# answers come 0.3 s late: the last retry goes out with little of its
# deadline left
my $child = fork // die "fork: $!";
if (!$child) {
    sleep 0.92;
    $t->write_file($mode, 'slow');
    POSIX::_exit(0);
}
$t->write_file($mode, 'tryagain');
my $t0 = time;
my $st = check();
my $took = time - $t0;
waitpid $child, 0;
is($st, 503, 'a check retried on TRYAGAIN past its deadline answers 503');
cmp_ok($took, '<', 1 + 1 * $slack, sprintf('by its deadline (%.2f s, timeout 1 s)', $took));
$t->write_file($mode, 'ok');
sleep 0.5;   # the late answer arrives, and is dropped
is(check(), 401, 'the next check is answered on the same connection');
unlike($t->error_log, qr/did not answer within/, 'the connection was not reset as hung');
unlike($t->error_log, qr/connection restored/, 'and not connected again');

$t->done;
stop($pid);
done_testing;
