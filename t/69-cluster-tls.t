# Redis Cluster over TLS: `auth_pat_redis SEEDS cluster ssl` on a
# six-node cluster with TLS only (no plaintext port; `tls-cluster yes`,
# `tls-replication yes`), with the cache.
# 1. With the CA trusted: create, check, list, rotate, revoke for users
#    on every master; every worker's command connections, subscriber
#    and topology connection are TLS (the nodes have no other port), the
#    log says TLS 1.3; a revoke is refused at once from the cache.
# 2. kill -9 of a master: its checks 503 (never 401), then 200 on the
#    promoted replica, reached over TLS; the other masters' checks never
#    fail.
# 3. No fallback to plaintext: a name mismatch answers 503 with an
#    [error] line naming the reason; the plain configuration against the
#    TLS-only nodes answers 503 too; neither ever gets a table.  Each
#    seed's failure is logged, though the first seed's (refused) came
#    first.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatTLS;
use PatCluster;
use PatToken qw(token_digest);
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $T0 = time;

my $t = PatTest->new;
my $pki = PatTLS::make_pki($t->path('pki'));
my $ca = $pki->{ca}{crt};
my $tls = { cert => $pki->{server}{crt}, key => $pki->{server}{key},
            ca => $ca, client_cert => $pki->{client}{crt},
            client_key => $pki->{client}{key} };

my $c = PatCluster->new($t, tls => $tls);
diag sprintf 'TLS cluster up in %.1f s', time - $T0;

$t->nginx_conf(workers => 2, http => gateway_conf(
    redis => $c->seeds . ' cluster ssl', timeout => '1s',
    extra => "auth_pat_redis_ssl_trusted_certificate $ca;\n"
           . "auth_pat_cache zone=patcache:1m ttl=30s;"));
$t->start_nginx;

sub check { $t->get('/static/protected.txt', { Authorization => "Bearer $_[0]" })->{status} }
sub vslot { PatCluster::slot('pat:v:' . token_digest($t->key, $_[0])) }
sub until_ok { PatTest::until_ok(@_) }

# --- 1.
my (%tok, %by_master, @bad);
for my $i (1 .. 12) {
    my $u = "tls$i";
    my $r = create_retry($t, user => $u, name => 'a');
    my $r2 = api($t, POST => '', user => $u, body => { name => 'b' });
    if ($r->{status} != 201 || $r2->{status} != 201) { push @bad, "create $u: $r->{status} $r2->{status}"; next }
    my ($a, $b) = ($r->{json}{data}, $r2->{json}{data});
    $by_master{ $c->owner(vslot($a->{token}))->{port} }++;
    my @st = (check($a->{token}), check($a->{token}),
              api($t, GET => '', user => $u)->{json}{totalCount} // -1);
    my $rot = api($t, POST => "/$b->{id}/rotate", user => $u);
    push @st, $rot->{status}, api($t, DELETE => "/$a->{id}", user => $u)->{status},
              check($a->{token}), check($b->{token}), check($rot->{json}{data}{token} // '');
    push @bad, "$u: @st" if "@st" ne '200 200 2 201 200 401 401 200';
    $tok{$u} = $rot->{json}{data};
}
is(scalar @bad, 0, 'over TLS: create, check (cached), list, rotate, revoke (refused at once) for 12 users')
    or diag join "\n", @bad;
is(scalar(keys %by_master), 3, 'their records live on all three masters');

# the module's connections on each master, by role, of this nginx's workers
sub clients {
    my ($node, $role) = @_;
    my %pids = map { $_ => 1 } $t->worker_pids;
    my $l = eval { $t->redis_cmd_on($node, 'CLIENT', 'LIST') } // '';
    return () if ref $l;
    return grep { /name=auth_pat:$role:(\d+)/ && $pids{$1} } split /\n/, $l;
}
my @m = $c->masters;
ok(until_ok(5 * $slack, sub { !grep { clients($_, 'cmd') != 2 } @m }),
   'every master lists a command connection per worker, on its only (TLS) port');
my $feed = $c->owner(PatCluster::slot('pat:{inval}:seq'));
is(scalar(clients($feed, 'sub')), 2, 'the subscribers are on the feed\'s master');
like($t->error_log, qr/redis "127\.0\.0\.1:\d+" connected \(TLSv1\.3, (?:new|resumed) session\)/,
     'error.log: the nodes connected over TLS 1.3');
unlike($t->error_log, qr/\[(?:error|crit|alert)\]/, 'no error so far');

# --- 2. kill -9 of a master
my $dead_port;
{
    my ($dead) = grep { $_ != $feed } $c->masters;
    $dead_port = $dead->{port};
    my ($replica) = grep {
        my $i = eval { $t->redis_cmd_on($_, 'INFO', 'replication') } // '';
        !ref $i && $i =~ /^master_port:$dead->{port}\r?$/m
    } $c->replicas;
    ok($replica && $c->wait_caught_up($dead, $replica), 'its replica holds every write');
    my (@on_dead, @elsewhere);
    for my $u (sort keys %tok) {
        my $x = $tok{$u} or next;
        push @{ $c->owner(vslot($x->{token})) == $dead ? \@on_dead : \@elsewhere }, $x->{token};
    }
    my $k = time;
    $t->kill_redis($dead, 'KILL');
    my (%sd, %se, $back);
    while (time - $k < 30 * $slack) {
        $se{ check($_) }++ for @elsewhere;
        my @d = map { check($_) } @on_dead;
        $sd{$_}++ for @d;
        if ($sd{503} && !grep { $_ != 200 } @d) { $back = time - $k; last }
        sleep 0.05;
    }
    ok(defined $back, sprintf 'kill -9 of a TLS master: its checks 503, then 200 after %.2f s', $back // -1);
    diag sprintf 'kill -9 of a TLS master: its slots answered 503 for %.2f s', $back // -1;
    is(join(',', grep { $_ != 200 && $_ != 503 } keys %sd), '', 'never 401 meanwhile');
    is(join(',', sort keys %se), '200', 'the other masters\' checks never failed');
    ok(until_ok(5 * $slack, sub { clients($replica, 'cmd') == 2 }),
       'the promoted replica lists a command connection per worker, over TLS');
}
# --- 3. no fallback to plaintext.  The dead node is the first seed, so
# that its "connection refused" comes first: each seed's own failure is
# logged all the same (one line per seed per 10 s, not per connection)
my $seeds = "127.0.0.1:$dead_port " . join ' ', grep { !/:$dead_port$/ } split ' ', $c->seeds;
for my $case (
    [ 'a name mismatch', "cluster ssl", "auth_pat_redis_ssl_trusted_certificate $ca;\nauth_pat_redis_ssl_name wrong.example;",
      qr/\[error\].*redis "127\.0\.0\.1:\d+".*(?:certificate|verif)/i ],
    [ 'the plain configuration', 'cluster', '',
      qr/\[error\].*redis "127\.0\.0\.1:\d+" closed the connection during its setup .*add "ssl"/ ],
) {
    my ($what, $flags, $extra, $re) = @$case;
    my $u = PatTest->new;
    $u->{key} = $t->key;
    $u->nginx_conf(workers => 1, http => gateway_conf(redis => "$seeds $flags",
                                                      timeout => '1s', extra => $extra));
    $u->start_nginx;
    sleep 1;
    is(api($u, POST => '', user => 'ann', body => { name => 'x' })->{status}, 503, "$what: 503");
    ok(until_ok(5 * $slack, sub { $u->error_log =~ $re }), "$what: an [error] line says why");
    unlike($u->error_log, qr/masters serve 16384 slots/, "$what: no slot table was ever read");
    $u->done;
}

$t->done;
diag sprintf 'total %.1f s', time - $T0;
done_testing;
