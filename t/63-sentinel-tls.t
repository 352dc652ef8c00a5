# Redis Sentinel over TLS: `auth_pat_redis S1 S2 S3 sentinel=NAME ssl` on a
# PatSentinel group with TLS only (master, replica and the three
# sentinels have no plaintext port; replication and the sentinels' links
# are on TLS too).
#
# 1. With the CA trusted: create, check, revoke through the TLS master
#    the sentinels name (verified against 127.0.0.1 as an IP SAN); the
#    workers' command connections are on the master, their watch and
#    query connections on the sentinels, all over TLS.
# 2. kill -9 of the master: checks answer 200 or 503 only, then 200 on
#    the promoted replica, reached over TLS, without a reload.
# 3. Verification failure never falls back to plaintext: a name mismatch
#    (auth_pat_redis_ssl_name wrong.example) answers 503 with an error
#    line naming a sentinel address and the reason; the plain config
#    against the TLS-only sentinels answers 503 with its error line too;
#    neither ever connects to a sentinel or a data node.
# 4. No alert, crit, emerg or crash in any error.log.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatTLS;
use PatSentinel;
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $T0 = time;

my $t = PatTest->new;
my $pki = PatTLS::make_pki($t->path('pki'));
my $ca = $pki->{ca}{crt};
my $tls = { cert => $pki->{server}{crt}, key => $pki->{server}{key},
            ca => $ca, client_cert => $pki->{client}{crt},
            client_key => $pki->{client}{key} };

my $t1 = time;
my $g = PatSentinel->new($t, tls => $tls);
diag sprintf 'TLS sentinel group up in %.1f s', time - $t1;
my $m0 = $g->master;
my $r0 = $g->replica;
is($g->named, $m0->{port}, 'the sentinels name the TLS master');

my $sentinel_ports = join '|', map { $_->{port} } $g->sentinels;
my $redis_ssl = $g->addrs . ' sentinel=' . $g->name . ' ssl';

$t->nginx_conf(workers => 2, http => gateway_conf(
    redis => $redis_ssl, timeout => '1s',
    extra => "auth_pat_redis_ssl_trusted_certificate $ca;"));
$t->start_nginx;

sub check {
    my ($x, $tok) = @_;
    return $x->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
}

# retries while the workers find the master and connect
sub create { create_retry($t, user => 'tina', name => $_[0]) }

sub watch { PatSentinel::poll_checks($t, @_) }
sub seen { PatSentinel::counts(@_) }

# CLIENT LIST lines of one node (through redis-cli over TLS) with a
# name auth_pat:ROLE:PID, PID a worker of nginx $x
sub clients {
    my ($x, $node, $role) = @_;
    my %pids = map { $_ => 1 } $x->worker_pids;
    my $list = $t->redis_cmd_on($node, 'CLIENT', 'LIST');
    die "CLIENT LIST on $node->{name}: " . PatTest::redis_err($list) . "\n"
        if ref $list;
    return grep { /name=auth_pat:$role:(\d+)/ && $pids{$1} } split /\n/, $list;
}

sub sentinel_clients {
    my ($x, $role) = @_;
    return map { clients($x, $_, $role) } grep { $_->{running} } $g->sentinels;
}

sub until_ok { PatTest::until_ok(@_) }

# the first [error] line of $x's error.log matching re, within 5 s
sub error_line {
    my ($x, $re) = @_;
    my $line;
    until_ok(5 * $slack, sub {
        ($line) = grep { /\[error\]/ && $_ =~ $re } split /\n/, $x->error_log;
        return defined $line;
    });
    note $line if defined $line;
    return $line;
}

# --- 1. create, check, revoke through the TLS master
my $c = create('a');
is($c->{status}, 201, 'create through the TLS master') or diag $c->{content};
my $a = $c->{json}{data} // {};
is(check($t, $a->{token} // ''), 200, 'the token works');
my $b = create('b')->{json}{data} // {};
is(check($t, $b->{token} // ''), 200, 'a second token works');
is(api($t, DELETE => "/$b->{id}", user => 'tina')->{status}, 200, 'revoke');
is(check($t, $b->{token} // ''), 401, 'the revoked token is refused');
like($t->redis_cmd_on($m0, 'HGET', 'pat:{u:tina}:m', $b->{id} // '') // '',
     qr/"r":\d+/, 'the revoke is in the master (read over TLS)');

ok(until_ok(5, sub { clients($t, $m0, 'cmd') == 2 }),
   'the master lists a command connection per worker (auth_pat:cmd:)')
    or diag $t->redis_cmd_on($m0, 'CLIENT', 'LIST');
is(scalar(clients($t, $r0, 'cmd')), 0, 'none on the replica');
ok(until_ok(5, sub { sentinel_clients($t, 'watch') == 2 }),
   'the sentinels list a watch connection per worker (auth_pat:watch:)')
    or diag join "\n", map { $t->redis_cmd_on($_, 'CLIENT', 'LIST') } $g->sentinels;
my @q = sentinel_clients($t, 'sentinel');
cmp_ok(scalar @q, '>=', 1,
       'and the query connections that asked for the master (auth_pat:sentinel:): '
       . scalar @q)
    or diag join "\n", map { $t->redis_cmd_on($_, 'CLIENT', 'LIST') } $g->sentinels;
like($t->error_log, qr/sentinel "127\.0\.0\.1:(?:$sentinel_ports)" connected \(TLSv1\.3, new session\)/,
     'error.log: a sentinel connected over TLS 1.3');
like($t->error_log, qr/redis "127\.0\.0\.1:$m0->{port}" connected \(TLSv1\.3, (?:new|resumed) session\)/,
     'error.log: the master connected over TLS 1.3');
unlike($t->error_log, qr/\[(?:error|crit|alert)\]/, 'no error so far')
    or diag $t->error_log;

# --- 2. kill -9 of the master: 503, never 401, then the promoted replica
{
    $g->wait_synced($r0);
    $t->kill_redis($m0, 'KILL');
    my ($seen, $after) = watch(30, $a->{token}, sub { $_[0] == 200 && $_[1]{503} });
    ok(defined $after, 'kill -9 of the TLS master: checks work again without a reload')
        or diag seen($seen);
    is(join(',', grep { $_ != 200 && $_ != 503 } sort keys %$seen), '',
       'and answered 200 or 503 only meanwhile (' . seen($seen) . ')');
    diag sprintf('kill -9 of the TLS master: 503 for %.2f s (%s), down-after-milliseconds 1000',
                 $after // -1, seen($seen));
    ok($g->wait_master($r0->{port}, 10), 'the sentinels name the promoted replica');
    is(check($t, $b->{token}), 401, 'the revoked token is still refused');
    my $d = create('d');
    is($d->{status}, 201, 'a create after the failover') or diag $d->{content};
    is(check($t, $d->{json}{data}{token} // ''), 200, 'and its token works');
    is(api($t, GET => '', user => 'tina')->{json}{totalCount}, 3, 'the list holds all three');
    ok(until_ok(5, sub { clients($t, $r0, 'cmd') == 2 }),
       'the workers are connected to the promoted replica (auth_pat:cmd:)')
        or diag $t->redis_cmd_on($r0, 'CLIENT', 'LIST');
    like($t->error_log, qr/redis "127\.0\.0\.1:$r0->{port}" (?:connected|connection restored) \(TLSv1\.3, (?:new|resumed) session\)/,
         'error.log: the promoted replica reached over TLS 1.3');
}

# --- 3. no fallback to plaintext
my $u = PatTest->new;
$u->{key} = $t->key;

sub restart_u {
    my (%o) = @_;
    $u->stop_nginx if $u->nginx_pid;
    $u->write_file('error.log', '');
    $u->nginx_conf(workers => 2, http => gateway_conf(%o, timeout => '1s'));
    $u->start_nginx;
}

sub fails_closed {
    my ($what, $re) = @_;
    my %st;
    $st{ check($u, $a->{token}) }++ for 1 .. 3;
    my $r = api($u, POST => '', user => 'tina', body => { name => 'x' });
    my $line = error_line($u, $re);
    ok(defined $line, "$what: an error line with a sentinel address and the reason")
        or diag $u->error_log;
    $st{ check($u, $a->{token}) }++ for 1 .. 3;
    is(seen(\%st), '503: 6', "$what: checks answer 503");
    is($r->{status}, 503, "$what: create answers 503");
    is($r->{json}{error}, 'unavailable', "$what: error \"unavailable\"");
    unlike($u->error_log, qr/"127\.0\.0\.1:\d+" (?:connected|connection restored)/,
           "$what: never connected to a sentinel or a node");
    is(scalar(map { clients($u, $_, '\w+') } grep { $_->{running} } $g->sentinels, $r0),
       0, "$what: no connection of it in any CLIENT LIST");
}

restart_u(redis => $redis_ssl,
          extra => "auth_pat_redis_ssl_trusted_certificate $ca;\n"
                 . "auth_pat_redis_ssl_name wrong.example;");
fails_closed('name mismatch',
    qr/sentinel "127\.0\.0\.1:(?:$sentinel_ports)" TLS certificate does not match the name "wrong\.example"/);

restart_u(redis => $g->addrs . ' sentinel=' . $g->name);
fails_closed('plain TCP to the TLS sentinels',
    qr/sentinel "127\.0\.0\.1:(?:$sentinel_ports)" closed the connection during its setup \(if it is a TLS port, add "ssl"\)/);

is(check($t, $a->{token}), 200, 'the TLS nginx still works meanwhile');

# --- 4. no alert, no crash
$u->done;
$t->done;
diag sprintf 'whole file: %.1f s', time - $T0;
done_testing;
