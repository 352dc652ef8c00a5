# Redis Cluster: `auth_pat_redis SEED... cluster`.  A six-node cluster
# (t/lib/PatCluster.pm); commands go to the master of their first key's
# slot:
# - 300 users spread over the three masters: create, check, list,
#   rotate, revoke for each;
# - a slot migrated under traffic (SETSLOT MIGRATING/IMPORTING, MIGRATE,
#   SETSLOT NODE): ASK and MOVED followed, no error seen by a client;
# - a master killed: the checks whose keys it served answer 503 (never
#   401) until its replica is promoted, the others never fail, then all
#   work, without a reload;
# - a cluster that serves part of the slots at start: 503, then served
#   once it is whole;
# - a node reported by hostname: refused;
# - nginx -t: db=, a namespace with a brace and sentinel= with cluster
#   (the cache with cluster: t/68-cluster-cache.t; replicas=: t/70).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use PatTest;
use PatCluster;
use PatToken qw(token_digest);
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

# --- nginx -t
{
    my $u = PatTest->new;
    for my $c (
        [ '127.0.0.1:1 cluster db=1', qr/refuses "db=" with "cluster"/ ],
        [ '127.0.0.1:1 cluster "namespace=a{b}:"', qr/refuses a namespace with "\{" or "\}" with "cluster"/ ],
        [ '127.0.0.1:1 127.0.0.1:2 cluster sentinel=m', qr/takes "cluster" or "sentinel=", not both/ ],
        [ 'unix:/tmp/x.sock cluster', qr/needs "host:port" seeds with "cluster"/ ],
    ) {
        my ($args, $want) = @$c;
        $u->nginx_conf(http => gateway_conf(redis => $args));
        my ($rc, $out) = $u->nginx_test;
        ok($rc != 0 && $out =~ $want, "nginx -t refuses: $args") or diag $out;
    }
    $u->nginx_conf(http => gateway_conf(redis => '127.0.0.1:1 127.0.0.2:7000 cluster',
                                        extra => 'auth_pat_cache zone=c:1m;'));
    my ($rc, $out) = $u->nginx_test;
    is($rc, 0, 'nginx -t takes seeds with cluster, and a cache') or diag $out;
}

my $t = PatTest->new;
my $c = PatCluster->new($t);
$t->nginx_conf(workers => 2, http => gateway_conf(redis => $c->seeds . ' cluster', timeout => '1s'));
$t->start_nginx;

sub check {
    my ($tok) = @_;
    return $t->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
}
sub vslot { PatCluster::slot('pat:v:' . token_digest($t->key, $_[0])) }

# --- 300 users over all masters
my (%by_master, %tok, $wrong);
for my $i (1 .. 300) {
    my $u = "user$i";
    $by_master{ $c->owner(PatCluster::slot("pat:{u:$u}:m"))->{name} }++;
    my $r = create_retry($t, user => $u, name => 'a');
    my $r2 = api($t, POST => '', user => $u, body => { name => 'b' });
    if ($r->{status} != 201 || $r2->{status} != 201) { $wrong++; diag "create $u: $r->{status} $r2->{status}"; next }
    my ($a, $b) = ($r->{json}{data}, $r2->{json}{data});
    my @st = (check($a->{token}), api($t, GET => '', user => $u)->{json}{totalCount} // -1);
    my $rot = api($t, POST => "/$b->{id}/rotate", user => $u);
    push @st, $rot->{status}, api($t, DELETE => "/$a->{id}", user => $u)->{status},
              check($a->{token}), check($b->{token}), check($rot->{json}{data}{token} // '');
    if ("@st" ne '200 2 201 200 401 401 200') { $wrong++; diag "$u: @st" if $wrong < 5 }
    $tok{$u} = $rot->{json}{data};
}
is($wrong // 0, 0, '300 users: create, check, list, rotate, revoke all answer right');
is(scalar(keys %by_master), 3, 'their keys live on all three masters ('
   . join(' ', map { "$_: $by_master{$_}" } sort keys %by_master) . ')');

# --- a slot migrated under traffic: ASK, then MOVED.  As redis-cli
# --cluster reshard does it: IMPORTING and MIGRATING, MIGRATE of the
# slot's keys, then SETSLOT NODE on every master, here in about 0.6 s
# while requests for the slot's user keep coming; a script's keys split
# between the nodes get TRYAGAIN meanwhile, and are sent again within
# their deadline
{
    my $u = 'user7';
    my $slot = PatCluster::slot("pat:{u:$u}:m");
    my $from = $c->owner($slot);
    my ($to) = grep { $_ != $from } $c->masters;
    my %id = map { $_->{port} => $t->redis_cmd_on($_, 'CLUSTER', 'MYID') } $c->masters;
    my $asking = sub {
        my ($n) = $t->redis_cmd_on($to, 'INFO', 'commandstats') =~ /cmdstat_asking:calls=(\d+)/;
        $n // 0;
    };
    my $before = $asking->();
    my $done = $t->path('migrated');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $ok = eval {
            sleep 0.3;
            $t->redis_cmd_on($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $id{ $from->{port} });
            $t->redis_cmd_on($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $id{ $to->{port} });
            sleep 0.1;
            my $keys = $t->redis_cmd_on($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
            # one key first: the others are still at the source (TRYAGAIN)
            $t->redis_cmd_on($from, 'MIGRATE', '127.0.0.1', $to->{port}, $keys->[0], 0, 5000);
            sleep 0.1;
            $t->redis_cmd_on($from, 'MIGRATE', '127.0.0.1', $to->{port}, '', 0, 5000, 'KEYS',
                             @$keys[1 .. $#$keys]) if @$keys > 1;
            # every key at the target, the slot still migrating: ASK
            sleep 0.4;
            $t->redis_cmd_on($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $id{ $to->{port} })
                for $to, $from, grep { $_ != $to && $_ != $from } $c->masters;
            1;
        };
        $t->write_file($done, $ok ? 'ok' : "failed: $@");
        POSIX::_exit(0);
    }
    my ($n, @bad) = (0);
    my $end = time + 10 * $slack;
    while (time < $end) {
        my $fin = -e $done;
        my $l = api($t, GET => '', user => $u);
        my $g = api($t, GET => "/$tok{$u}{id}", user => $u);
        my $k = api($t, POST => '', user => $u, body => { name => "m$n" });
        my $s = $k->{status} == 201 ? check($k->{json}{data}{token}) : 0;
        $n++;
        push @bad, "list $l->{status}, get $g->{status}, create $k->{status}, check $s"
            unless $l->{status} == 200 && $g->{status} == 200 && $k->{status} == 201 && $s == 200;
        last if $fin && $n > 3;
    }
    waitpid $pid, 0;
    is($t->read_file('migrated'), 'ok', 'the slot migrated');
    is(scalar @bad, 0, "a slot migrated under traffic: $n rounds of list, get, create, check, "
                       . 'no error seen by the client') or diag join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
    cmp_ok($asking->(), '>', $before, 'the target was asked with ASKING meanwhile (ASK followed)');
    is($c->owner($slot)->{port}, $to->{port}, 'the slot is served by the target now');
    is(api($t, GET => '', user => $u)->{json}{totalCount}, 3 + $n, 'and every token of the user is there');
}

# --- a master killed: its checks 503, the others never fail
{
    ok($c->wait_ok(10), 'the cluster is ok');
    $c->wait_synced($_) for $c->replicas;
    my ($dead) = $c->masters;
    my (%on_dead, %elsewhere);
    for my $u (map { "user$_" } 1 .. 300) {
        my $x = $tok{$u} or next;
        ($c->owner(vslot($x->{token})) == $dead ? \%on_dead : \%elsewhere)->{$u} = $x->{token};
    }
    my @dead = (sort keys %on_dead)[0 .. 4];
    my @alive = (sort keys %elsewhere)[0 .. 9];
    my $k = time;
    $t->kill_redis($dead, 'KILL');
    my (%seen_dead, %seen_alive, $back);
    while (time - $k < 30 * $slack) {
        $seen_alive{ check($elsewhere{$_}) }++ for @alive;
        my @d = map { check($on_dead{$_}) } @dead;
        $seen_dead{$_}++ for @d;
        if ($seen_dead{503} && !grep { $_ != 200 } @d) { $back = time - $k; last }
        sleep 0.05;
    }
    ok(defined $back, sprintf('kill -9 of a master: its checks 503, then 200 again after %.2f s',
                              $back // -1));
    diag sprintf('kill -9 of a master: its slots answered 503 for %.2f s (cluster-node-timeout 2000)',
                 $back // -1);
    is(join(',', grep { $_ != 200 && $_ != 503 } keys %seen_dead), '',
       'its checks answered 200 or 503 only, never 401');
    is(join(',', keys %seen_alive), '200', 'the checks of the other masters\' slots never failed ('
       . join(' ', map { "$_: $seen_alive{$_}" } keys %seen_alive) . ')');
    ok(create_retry($t, user => $dead[0], name => 'after')->{status} == 201,
       'the API works for a user of the promoted replica');
}

$t->done;

# --- a cluster that serves part of the slots at start
{
    my $u = PatTest->new;
    my @bus = map { $u->free_port } 1 .. 3;
    my @n = map { $u->start_redis(name => "p$_", conf => "cluster-enabled yes\ncluster-port "
                                  . $bus[$_ - 1] . "\ncluster-config-file nodes.conf\n"
                                  . "cluster-node-timeout 2000\ncluster-require-full-coverage no") } 1 .. 3;
    # three masters, but the third one's slots are not assigned yet
    $u->redis_cmd_on($n[0], 'CLUSTER', 'MEET', '127.0.0.1', $n[$_]{port}, $bus[$_]) for 1, 2;
    $u->redis_cmd_on($n[0], 'CLUSTER', 'ADDSLOTSRANGE', 0, 5460);
    $u->redis_cmd_on($n[1], 'CLUSTER', 'ADDSLOTSRANGE', 5461, 10922);
    $u->nginx_conf(workers => 1, http => gateway_conf(
        redis => "127.0.0.1:$n[0]{port} cluster", timeout => '1s'));
    $u->start_nginx;
    sleep 1;
    my $r = api($u, POST => '', user => 'ann', body => { name => 'x' });
    is($r->{status}, 503, 'part of the slots served: the API answers 503');
    ok(PatTest::until_ok(5, sub { $u->error_log =~ /serves \d+ of 16384 slots: no table yet/ }),
       'and the log says how many slots are served');
    $u->redis_cmd_on($n[2], 'CLUSTER', 'ADDSLOTSRANGE', 10923, 16383);
    my $ok = PatTest::until_ok(15 * $slack, sub {
        api($u, POST => '', user => 'ann', body => { name => 'x' })->{status} == 201
    });
    ok($ok, 'once the cluster is whole, it serves, without a reload');
    $u->done;
}

# --- a node reported by hostname: refused
{
    my $u = PatTest->new;
    my $n = $u->start_redis(name => 'h', conf => "cluster-enabled yes\ncluster-port " . $u->free_port
        . "\ncluster-config-file nodes.conf\ncluster-announce-hostname localhost\n"
        . "cluster-preferred-endpoint-type hostname");
    $u->redis_cmd_on($n, 'CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
    $u->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$n->{port} cluster"));
    $u->start_nginx;
    ok(PatTest::until_ok(5, sub { $u->error_log =~ /names "localhost" as the master of slots 0-16383: refused/ }),
       'a node named by hostname: refused, with an [error] line');
    is(api($u, POST => '', user => 'ann', body => { name => 'x' })->{status}, 503, 'and 503');
    $u->done;
}

done_testing;
