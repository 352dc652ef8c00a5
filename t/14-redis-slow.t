# Redis behind a bad or slow network: an endpoint that accepts and closes
# (a proxy with no backend, a TLS-only port) is retried with backoff and
# logged; a Redis whose round trip is most of the timeout still serves,
# with no connection reset, requests that arrive while it is being set up.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use PatTest;
use PatToken qw(seed_token);
use PatLoad qw(burst);
use PatProxy qw(serve delay_proxy stop);

my $t = PatTest->new;
my $redis = $t->start_redis;

sub conf {
    my ($port) = @_;
    $t->nginx_conf(workers => 1, http => <<"EOF2");
auth_pat_redis 127.0.0.1:$port timeout=1s;
auth_pat_key_file %%KEY%%;
server { listen 127.0.0.1:%%PORT%%; location / { auth_pat "t"; alias %%HTML%%/; } }
EOF2
}

# --- accepts, then closes at once: each attempt is logged and backed off
{
    my $port = $t->free_port;
    my $count = $t->path('accepted');
    my $pid = serve($port, sub {
        open my $f, '>>', $count or return;
        print $f "x";
        close $f;
        close $_[0];
    });
    conf($port);
    $t->start_nginx;
    sleep 3;
    $t->stop_nginx;
    stop($pid);
    my $n = -s $count // 0;
    my @lines = grep { /closed the connection during its setup/ } split /\n/, $t->error_log;
    cmp_ok($n, '>=', 2, "closed during the setup: nginx tries again ($n attempts in 3 s)");
    cmp_ok($n, '<=', 12, 'closed during the setup: with backoff, not in a loop');
    cmp_ok(scalar @lines, '>=', 1, 'closed during the setup: logged');
    cmp_ok(scalar @lines, '<=', $n, 'closed during the setup: once per attempt');
    $t->write_file('error.log', '');
}

# --- 300 ms each way between nginx and Redis, timeout=1s: a request held
# behind the connection setup waits for it, then gets a full timeout of its
# own, and the connection is not reset
{
    my $delay = 0.3;
    my $port = $t->free_port;
    my $pid = delay_proxy($port, $redis->{port}, $delay);
    conf($port);
    my $tok = seed_token($t, user => 'slow');
    $t->start_nginx;    # its requests below arrive during the setup
    # clients that give up while their lookup is held behind the setup
    for (1 .. 5) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port) or die $!;
        print {$c} "GET /protected.txt HTTP/1.0\r\nAuthorization: Bearer $tok->{token}\r\n\r\n";
        close $c;
    }
    my $res = burst(port => $t->port, concurrency => 4, timeout => 10,
        requests => [ map { { path => '/protected.txt', headers => { Authorization => "Bearer $tok->{token}" } } } 1..8 ]);
    my %st; $st{ $_->{status} }++ for @$res;
    is($st{200} // 0, 8, 'a slow Redis: requests that arrived during the setup all pass')
        or diag explain \%st;
    $res = burst(port => $t->port, concurrency => 4, timeout => 10,
        requests => [ map { { path => '/protected.txt', headers => { Authorization => "Bearer $tok->{token}" } } } 1..8 ]);
    %st = (); $st{ $_->{status} }++ for @$res;
    is($st{200} // 0, 8, 'a slow Redis: and so do later ones') or diag explain \%st;
    unlike($t->error_log, qr/did not answer/, 'a slow Redis: no deadline missed, no reset');
    $t->stop_nginx;
    stop($pid);
}

$t->done;
done_testing;
