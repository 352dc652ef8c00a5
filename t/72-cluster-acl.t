# Redis Cluster with an ACL user: README's rules for `user=` with the
# cluster's additions, set on every node (ACLs are per node):
# - every flow (create, check with the cache, list, rotate, revoke with
#   replicas=1) for users on all three masters, and a slot migrating
#   (ASK: ASKING at the target) runs with nothing refused;
# - without `+cluster|slots` no table is ever learnt: 503, and an error
#   line names the refused command;
# - without `+asking` a request for a migrating slot is 503 (never a
#   404 or an empty list), the line names ASKING, and the slot works
#   again once it has moved.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatCluster;
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

# README's ACL for user= (t/16), with the cluster's +cluster|slots +asking
my @readme = qw(hmget hget hgetall hset hdel del get set incr pexpireat
                zadd zrem zrangebyscore zcount zscore zcard zrange
                zrevrange hlen evalsha eval script|load publish subscribe
                ping role client|setname wait);
my @cluster = qw(cluster|slots asking);

my $t = PatTest->new;
my $c = PatCluster->new($t);

sub acl_user {
    my ($name, @cmds) = @_;
    $t->redis_cmd_on($_, 'ACL', 'SETUSER', $name, 'reset', 'on', ">$name-pw", '~pat:*',
                     '&pat:{inval}', map { "+$_" } @cmds)
        for $c->nodes;
}
acl_user('nginx', @readme, @cluster);
acl_user('noslots', @readme, 'asking');
acl_user('noasking', @readme, 'cluster|slots');

sub start {
    my ($user, %o) = @_;
    $t->write_file('error.log', '');
    $t->nginx_conf(workers => 2, http => gateway_conf(
        redis => $c->seeds . " cluster user=$user password=$user-pw" . ($o{replicas} ? ' replicas=1' : ''),
        timeout => '1s', extra => $o{extra} // ''));
    $t->start_nginx;
}
sub check {
    my ($tok) = @_;
    return $t->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
}
# a user whose keys live on each master
my %on;
for my $i (1 .. 100) {
    my $m = $c->owner(PatCluster::slot("pat:{u:acl$i}:m"))->{name};
    $on{$m} //= "acl$i";
    last if keys %on == 3;
}
is(scalar(keys %on), 3, 'a user on each master');
my %id = map { $_->{port} => $t->redis_cmd_on($_, 'CLUSTER', 'MYID') } $c->masters;

# the slot of $u's keys: IMPORTING/MIGRATING and its keys at the target,
# so that every command for it is answered ASK; returns the nodes
sub migrating {
    my ($u) = @_;
    my $slot = PatCluster::slot("pat:{u:$u}:m");
    my $from = $c->owner($slot);
    my ($to) = grep { $_->{port} != $from->{port} } $c->masters;
    $t->redis_cmd_on($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $id{ $from->{port} });
    $t->redis_cmd_on($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $id{ $to->{port} });
    my $keys = $t->redis_cmd_on($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    $t->redis_cmd_on($from, 'MIGRATE', '127.0.0.1', $to->{port}, '', 0, 5000, 'KEYS', @$keys)
        if @$keys;
    return ($slot, $from, $to);
}
sub migrated {
    my ($slot, $from, $to) = @_;
    $t->redis_cmd_on($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $id{ $to->{port} })
        for $to, $from, grep { $_->{port} != $to->{port} && $_->{port} != $from->{port} } $c->masters;
}
sub asking_calls {
    my ($n) = $t->redis_cmd_on($_[0], 'INFO', 'commandstats') =~ /cmdstat_asking:calls=(\d+)/;
    return $n // 0;
}

# --- README's rules: every flow, the cache, WAIT, an ASK
my $mport = $t->free_port;
start('nginx', replicas => 1, extra => "auth_pat_cache zone=acl:1m ttl=10s;\n"
      . "server { listen 127.0.0.1:$mport; location = /metrics { auth_pat_status; } }");
my %tok;
for my $m (sort keys %on) {
    my $u = $on{$m};
    my $a = create_retry($t, user => $u, name => 'a');
    my $b = api($t, POST => '', user => $u, body => { name => 'b' });
    my @st = ($a->{status}, $b->{status});
    my ($ta, $tb) = ($a->{json}{data}, $b->{json}{data});
    push @st, (map { check($ta->{token}) } 1 .. 3),
              api($t, GET => '', user => $u)->{json}{totalCount} // -1;
    my $rot = api($t, POST => "/$tb->{id}/rotate", user => $u);
    push @st, $rot->{status}, check($tb->{token}), check($rot->{json}{data}{token} // ''),
              api($t, DELETE => "/$ta->{id}", user => $u)->{status}, check($ta->{token});
    is("@st", '201 201 200 200 200 2 201 401 200 200 401',
       "README's cluster ACL, $u on $m: create, check (cached), list, rotate, revoke");
    $tok{$u} = $rot->{json}{data};
}
{
    # (a script's keys split between the nodes get TRYAGAIN until the
    # slot has moved: t/66 migrates within the deadline; here a get, one
    # key, is asked while the slot stays migrating)
    my $u = $on{ (sort keys %on)[0] };
    my @mig = migrating($u);
    my $before = asking_calls($mig[2]);
    is(api($t, GET => "/$tok{$u}{id}", user => $u)->{status}, 200,
       "README's cluster ACL: a get in a migrating slot");
    cmp_ok(asking_calls($mig[2]), '>', $before, "README's cluster ACL: ASK followed with ASKING");
    migrated(@mig);
    is(api($t, GET => '', user => $u)->{json}{totalCount}, 3, "README's cluster ACL: the list (a, b and b's successor) once moved");
}
# the metrics: a series per node
{
    my $m = $t->http(GET => '/metrics', { port => $mport })->{content} // '';
    my @up = grep { $m =~ /^auth_pat_redis_up\{addr="127\.0\.0\.1:$_->{port}"\} 1$/m } $c->masters;
    is(scalar @up, 3, 'metrics: every master up, by address');
    my $seeds_only = () = $m =~ /^auth_pat_redis_commands_total\{addr="127\.0\.0\.1:\d+"\} [1-9]/mg;
    cmp_ok($seeds_only, '>=', 3, 'metrics: commands counted per node');
}
unlike($t->error_log, qr/NOPERM|refused/, "README's cluster ACL: nothing refused")
    or diag $t->error_log;
$t->stop_nginx;

# --- no +cluster|slots: no table, 503, the refused command named
start('noslots');
my @r = map { api($t, POST => '', user => $on{ (sort keys %on)[1] }, body => { name => "s$_" }) } 1 .. 3;
is(join(' ', map { $_->{status} } @r), '503 503 503', 'no +cluster|slots: 503');
is($r[0]{json}{error}, 'unavailable', 'no +cluster|slots: error "unavailable"');
like($t->error_log, qr/\[error\].*refused CLUSTER to this user: NOPERM.*cluster\|slots/,
     'no +cluster|slots: an error line names the refused command') or diag $t->error_log;
$t->stop_nginx;

# --- no +asking: a migrating slot is 503 (not 401), then works once moved
start('noasking');
{
    my $u = $on{ (sort keys %on)[1] };
    my $k = create_retry($t, user => $u, name => 'k');
    is($k->{status}, 201, 'no +asking: a create before the migration');
    my $tk = $k->{json}{data}{token};
    is(check($tk), 200, 'no +asking: its check');
    my @mig = migrating($u);
    is(api($t, GET => "/$k->{json}{data}{id}", user => $u)->{status}, 503,
       'no +asking: a get in a migrating slot answers 503, never 404');
    is(check($tk), 200, 'no +asking: a check (its record in another slot) is unaffected');
    like($t->error_log, qr/\[error\].*refused ASKING to this user/,
         'no +asking: an error line names ASKING') or diag $t->error_log;
    migrated(@mig);
    my ($ok, $end) = (0, time + 5 * $slack);
    while (time < $end) {
        $ok = api($t, GET => '', user => $u)->{status} == 200 && check($tk) == 200;
        last if $ok;
        sleep 0.1;
    }
    ok($ok, 'no +asking: the slot works again once it has moved');
}
$t->stop_nginx;

done_testing;
