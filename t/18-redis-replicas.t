# replicas=N: revoke and rotate answer 2xx only after WAIT N confirms
# them on N replicas, on a connection of the API's own: with the replica
# stopped (SIGSTOP) they answer 503 within the timeout, checks keep
# flowing meanwhile, a retried revoke completes once the replica is back,
# and a rotation that could not be confirmed leaves both tokens revoked.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

my $t = PatTest->new;
my $master = $t->start_redis(name => 'master',
                             conf => 'repl-diskless-sync-delay 0');
my $replica = $t->start_redis(name => 'replica',
                              conf => "replicaof 127.0.0.1 $master->{port}");
# in sync as both see it: a replica that has not yet acknowledged an
# offset (it does every second) is not counted by WAIT, even "online"
sub link_up {
    for (1 .. 600) {
        return 1 if $t->redis_cmd_on($replica, 'INFO', 'replication')
                    =~ /master_link_status:up/
                 && $t->redis_cmd_on($master, 'INFO', 'replication')
                    =~ /^slave0:.*state=online,offset=[1-9]/m;
        sleep 0.05;
    }
    return 0;
}
ok(link_up(), 'the replica is in sync');

# one worker: the requests below meet on one API connection
$t->nginx_conf(workers => 1, http => gateway_conf(
    redis => "127.0.0.1:$master->{port} replicas=1", timeout => '1s'));
$t->start_nginx;

sub check {
    my ($tok) = @_;
    return $t->get('/static/protected.txt',
                   { Authorization => "Bearer $tok" })->{status};
}
sub create {
    my $r = create_retry($t, user => 'rita', name => $_[0]);
    die "create: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}

# --- the replica answers: revoke and rotate work
my $a = create('a');
is(api($t, DELETE => "/$a->{id}", user => 'rita')->{status}, 200,
   'revoke: confirmed by the replica');
is(check($a->{token}), 401, 'and the token is refused');
my $b = create('b');
my $rot = api($t, POST => "/$b->{id}/rotate", user => 'rita');
is($rot->{status}, 201, 'rotate: confirmed by the replica');
is(check($rot->{json}{data}{token} // ''), 200, 'the new token works');
my @clients = split /\n/, $t->redis_cmd_on($master, 'CLIENT', 'LIST');
is(scalar(grep { /name=auth_pat:api:/ } @clients), scalar($t->worker_pids),
   'each worker has an API connection of its own');

# --- the replica stops: 503 within the timeout, checks keep flowing
my $c = create('c');
my $d = create('d');
kill 'STOP', $replica->{pid};
$replica->{stopped} = 1;

my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
    or die "connect: $!";
my $t0 = time;
print {$sock} "DELETE /v1/personal-access-tokens/$c->{id} HTTP/1.1\r\n"
            . "Host: x\r\nX-User: rita\r\nConnection: close\r\n\r\n";
sleep 0.2;
my $sel = IO::Select->new($sock);
my @during = map { check($d->{token}) } 1 .. 3;
ok(!$sel->can_read(0), 'the revoke still waits for its replica');
is_deeply(\@during, [200, 200, 200],
          'checks are answered meanwhile (their own connection)');
my $resp = '';
while ($sel->can_read(5 * $slack)) {
    last unless sysread($sock, $resp, 65536, length $resp);
}
my $took = time - $t0;
like($resp, qr{^HTTP/1\.1 503 }, 'revoke: 503 while the replica is stopped');
like($resp, qr{\r\nRetry-After: 1\r\n}i, 'with Retry-After');
like($resp, qr{"error":"unavailable"}, 'error "unavailable"');
cmp_ok($took, '<', 1 + $slack, 'within the timeout (1 s) + slack')
    or diag "took $took s";
like($t->error_log, qr/\[error\].*token \Q$c->{id}\E of user "rita": 0 of 1 replicas confirmed/,
     'an error line names the token');
is(check($c->{token}), 401,
   'the token is refused on this master all the same');

# a rotation now: answered 503, and nobody holds a working token
my $r503 = api($t, POST => "/$d->{id}/rotate", user => 'rita');
is($r503->{status}, 503, 'rotate: 503 while the replica is stopped');
ok(!defined $r503->{json}{data}, 'and no plaintext in the answer');

kill 'CONT', $replica->{pid};
$replica->{stopped} = 0;
ok(link_up(), 'the replica is back');

my $list = api($t, GET => '?page_size=100', user => 'rita');
my ($new) = grep { ($_->{rotatedFrom} // '') eq $d->{id} } @{ $list->{json}{items} // [] };
ok($new, 'the unconfirmed rotation left its new token in the list');
is($new && $new->{status}, 'revoked', 'revoked');
my ($old) = grep { $_->{id} eq $d->{id} } @{ $list->{json}{items} // [] };
is($old && $old->{status}, 'revoked', 'and the old one revoked too');
is(check($d->{token}), 401, 'the old token is refused');

# --- two revokes at once behind a stopped replica: the second WAIT waits
# behind the first on the server, and its deadline allows for it
my @two = (create('e'), create('f'));
kill 'STOP', $replica->{pid};
$replica->{stopped} = 1;
$t->write_file('error.log', '');
my @socks = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
        or die "connect: $!";
    print {$s} "DELETE /v1/personal-access-tokens/$_->{id} HTTP/1.1\r\n"
             . "Host: x\r\nX-User: rita\r\nConnection: close\r\n\r\n";
    $s;
} @two;
my @answers = map {
    my ($s, $buf) = ($_, '');
    my $sel2 = IO::Select->new($s);
    while ($sel2->can_read(5 * $slack)) { last unless sysread($s, $buf, 65536, length $buf) }
    $buf =~ m{^HTTP/1\.1 (\d+)} ? $1 : 'none';
} @socks;
is_deeply(\@answers, [503, 503], 'two revokes at once: both 503');
unlike($t->error_log, qr/did not answer|reconnecting/,
       'and the API connection was not reset for the second WAIT');

# the API connection reset during a rotation's WAIT: the new token goes too
my $g = create('g');
my $rs = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
    or die "connect: $!";
print {$rs} "POST /v1/personal-access-tokens/$g->{id}/rotate HTTP/1.1\r\n"
          . "Host: x\r\nX-User: rita\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
sleep 0.3;
my ($api_id) = map { /\bid=(\d+) .*name=auth_pat:api:/ ? $1 : () }
               split /\n/, $t->redis_cmd_on($master, 'CLIENT', 'LIST');
$t->redis_cmd_on($master, 'CLIENT', 'KILL', 'ID', $api_id) if $api_id;
my ($rbuf, $rsel) = ('', IO::Select->new($rs));
while ($rsel->can_read(5 * $slack)) { last unless sysread($rs, $rbuf, 65536, length $rbuf) }
like($rbuf, qr{^HTTP/1\.1 503 }, 'rotate with its API connection killed: 503');
kill 'CONT', $replica->{pid};
$replica->{stopped} = 0;
ok(link_up(), 'the replica is back again');
my $gl;
for (1 .. 100) {    # the API connection reconnects after its backoff
    $gl = api($t, GET => '?page_size=100', user => 'rita');
    last if $gl->{status} == 200;
    sleep 0.05;
}
my ($gnew) = grep { ($_->{rotatedFrom} // '') eq $g->{id} } @{ $gl->{json}{items} // [] };
is($gnew && $gnew->{status}, 'revoked',
   'its new token was revoked all the same (on the command connection)');

# the retried revoke completes
is(api($t, DELETE => "/$c->{id}", user => 'rita')->{status}, 200,
   'a retried revoke answers 200 once the replica is back');
like($t->redis_cmd_on($replica, 'HGET', 'pat:{u:rita}:m', $c->{id}) // '',
     qr/"r":\d+/, 'the replica holds the revoke');

# --- nginx -t
for my $bad ('replicas=x', 'replicas=17', 'replicas=-1') {
    $t->nginx_conf(http => gateway_conf(redis => "127.0.0.1:1 $bad"));
    my ($rc, $out) = $t->nginx_test;
    ok($rc != 0 && $out =~ /invalid redis "\Q$bad\E": use 0 to 16 replicas/,
       "nginx -t: $bad") or diag $out;
}

$t->done;
done_testing;
