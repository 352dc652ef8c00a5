# Redis Sentinel: `auth_pat_redis S1 S2 S3 sentinel=NAME`.  Tokens are
# created, checked, listed and revoked through the master the sentinels
# name (with a password on the data nodes and another on the sentinels);
# `kill -9` of the master gives a window of 503 (never a 401 for a valid
# token), then everything works on the promoted replica, without a
# reload; one sentinel down changes nothing; all three down leave the
# open connections working and make a reconnect fail closed, until a
# sentinel is back; a sentinel that names a hostname is refused.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatSentinel;
use PatApi qw(api gateway_conf create_retry);

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;

# --- nginx -t
{
    my $u = PatTest->new;
    for my $c (
        [ '127.0.0.1:1 127.0.0.1:2', qr/several redis addresses need "sentinel="/ ],
        [ '127.0.0.1:1 sentinel_password=x', qr/"sentinel_user=" and "sentinel_password=" need "sentinel="/ ],
        [ '127.0.0.1:1 127.0.0.1:2 sentinel=m sentinel_user=u', qr/"sentinel_user=" needs "sentinel_password=" or "sentinel_password_file="/ ],
        [ '127.0.0.1:1 sentinel=m sentinel_password=a sentinel_password_file=/x', qr/"sentinel_password=" and "sentinel_password_file=" exclude each other/ ],
        [ '127.0.0.1:1 sentinel=', qr/invalid parameter "sentinel="/ ],
        [ 'unix:/tmp/x.sock 127.0.0.1:2 sentinel=m ssl', qr/"ssl" needs a "host:port" address/ ],
        [ 'sentinel=m', qr/"auth_pat_redis" needs an address first/ ],
    ) {
        my ($args, $want) = @$c;
        $u->nginx_conf(http => gateway_conf(redis => $args));
        my ($rc, $out) = $u->nginx_test;
        ok($rc != 0 && $out =~ $want, "nginx -t refuses: $args") or diag $out;
    }
    $u->write_file($u->path('sentinel.pass'), "from-a-file\n", 0600);
    $u->nginx_conf(http => gateway_conf(redis => '127.0.0.1:1 127.0.0.1:2 sentinel=m '
        . 'sentinel_user=u sentinel_password_file=' . $u->path('sentinel.pass')));
    my ($rc, $out) = $u->nginx_test;
    is($rc, 0, 'nginx -t accepts sentinels with a user and a password file') or diag $out;
}

my $t = PatTest->new;
my $g = PatSentinel->new($t, password => 'data-pass', sentinel_password => 'sentinel-pass');
my $m0 = $g->master;
is($g->named, $m0->{port}, 'the sentinels name the master');

$t->nginx_conf(workers => 2, http => gateway_conf(
    redis => $g->addrs . ' sentinel=' . $g->name
           . ' password=data-pass sentinel_password=sentinel-pass',
    timeout => '1s'));
$t->start_nginx;

sub check {
    my ($tok) = @_;
    return $t->get('/static/protected.txt', { Authorization => "Bearer $tok" })->{status};
}

sub create {
    my $r = create_retry($t, user => 'rita', name => $_[0]);
    die "create: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}

sub watch { PatSentinel::poll_checks($t, @_) }
sub seen { PatSentinel::counts(@_) }

sub our_clients {
    my ($r, $role) = @_;
    return grep { /name=auth_pat:$role:/ } split /\n/, $t->redis_cmd_on($r, 'CLIENT', 'LIST');
}

# --- through the master the sentinels name
my $a = create('a');
is(check($a->{token}), 200, 'a token created through the master works');
my $list = api($t, GET => '', user => 'rita');
is($list->{status}, 200, 'the list answers');
is($list->{json}{totalCount}, 1, 'and holds the token');
my $b = create('b');
is(api($t, DELETE => "/$b->{id}", user => 'rita')->{status}, 200, 'revoke');
is(check($b->{token}), 401, 'the revoked token is refused');
is($t->redis_cmd_on($m0, 'HGET', "pat:{u:rita}:m", $b->{id}) =~ /"r":\d+/ ? 1 : 0, 1,
   'the revoke is in the master');
is(scalar(our_clients($m0, 'cmd')), 2, 'each worker has a command connection to the master');
my @sc = map { our_clients($_, 'watch') } $g->sentinels;
is(scalar @sc, 2, 'each worker watches one sentinel');

# --- kill -9 of the master: 503, never 401, then the promoted replica
{
    my $r0 = $g->replica;
    $g->wait_synced($r0);
    my $k = time;
    $t->kill_redis($m0, 'KILL');
    my ($seen, $after) = watch(30, $a->{token}, sub { $_[0] == 200 && $_[1]{503} });
    ok(defined $after, 'kill -9 of the master: checks work again without a reload')
        or diag seen($seen);
    is(join(',', grep { $_ != 200 && $_ != 503 } keys %$seen), '',
       'and answered 200 or 503 only meanwhile (' . seen($seen) . ')');
    diag sprintf('kill -9 of the master: 503 for %.2f s (%d checks), down-after-milliseconds 1000',
                 $after // -1, $seen->{503} // 0);
    ok($g->wait_master($r0->{port}, 10), 'the sentinels name the promoted replica');
    is(check($b->{token}), 401, 'the revoked token is still refused');
    my $c = create('c');
    is(check($c->{token}), 200, 'a token created after the failover works');
    is(api($t, GET => '', user => 'rita')->{json}{totalCount}, 3, 'the list holds all three');
    ok(scalar(our_clients($r0, 'cmd')) == 2, 'the workers are connected to the promoted replica');
}
my $m1 = $g->replica;

# forces every worker to connect again, as a lost link would
sub drop_links {
    for my $line (our_clients($m1, 'cmd'), our_clients($m1, 'sub')) {
        my ($id) = $line =~ /\bid=(\d+)/;
        $t->redis_cmd_on($m1, 'CLIENT', 'KILL', 'ID', $id);
    }
}

# --- one sentinel of three down: no effect
{
    my ($s1) = $g->sentinels;
    $t->kill_redis($s1, 'KILL');
    is(check($a->{token}), 200, 'one sentinel down: checks work');
    drop_links();
    my ($seen, $after) = watch(5 * $slack, $a->{token}, sub { $_[0] == 200 });
    ok(defined $after, 'and a reconnect finds the master through the others ('
                       . seen($seen) . ')');
    is(create('d')->{name}, 'd', 'the API works');
    $t->restart_redis($s1);
}

# --- all three down while the master lives
{
    $t->kill_redis($_, 'KILL') for $g->sentinels;
    my ($seen) = watch(2.5, $a->{token}, sub { 0 });
    is(seen($seen), '200: ' . ($seen->{200} // 0),
       'all sentinels down: checks keep working on the open connections for 2.5 s');
    drop_links();
    ($seen) = watch(1.5, $a->{token}, sub { 0 });
    is(join(',', sort keys %$seen), '503', 'a reconnect fails closed: 503 (' . seen($seen) . ')');
    like($t->error_log, qr/\[error\].*no sentinel named the master of "mymaster"/,
         'and says why in the error log');

    $t->restart_redis(($g->sentinels)[1]);
    my $after;
    ($seen, $after) = watch(10 * $slack, $a->{token}, sub { $_[0] == 200 });
    ok(defined $after, sprintf('a sentinel back: checks work again after %.2f s, no reload',
                               $after // -1));
    $t->restart_redis($_) for grep { !$_->{running} } $g->sentinels;
}

# --- no sentinel up at all: each one's failure is logged (once per 10 s
# each), not only the first of the connection that asks them in turn
{
    my $u = PatTest->new;
    my @ports = map { $u->free_port } 1 .. 3;
    $u->nginx_conf(workers => 1, http => gateway_conf(
        redis => join(' ', map { "127.0.0.1:$_" } @ports) . ' sentinel=m'));
    $u->start_nginx;
    my %named;
    for (1 .. 40) {
        %named = map { $_ => 1 } $u->error_log =~ /connecting to sentinel "127\.0\.0\.1:(\d+)" failed/g;
        last if keys %named == 3;
        sleep 0.05;
    }
    is(join(' ', sort keys %named), join(' ', sort @ports),
       'three sentinels refused: each named in an [error] line');
    is($u->get('/static/protected.txt', { Authorization => "Bearer $a->{token}" })->{status}, 503,
       'and checks answer 503');
    $u->done;
}

# --- a sentinel that names a hostname: refused
{
    my $u = PatTest->new;
    my $r = $u->start_redis(name => 'node');
    my $s = $u->start_redis(name => 'sentinel', sentinel =>
        "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"
        . "sentinel monitor h localhost $r->{port} 1\n");
    $u->nginx_conf(http => gateway_conf(redis => "127.0.0.1:$s->{port} sentinel=h"));
    $u->start_nginx;
    my $st;
    for (1 .. 20) {
        $st = $u->get('/static/protected.txt', { Authorization => "Bearer $a->{token}" })->{status};
        last if $u->error_log =~ /names "localhost"/;
        sleep 0.1;
    }
    is($st, 503, 'a master named by hostname: 503');
    like($u->error_log, qr/\[error\].*sentinel "127\.0\.0\.1:$s->{port}" names "localhost" port "$r->{port}" as the master of "h": refused/,
         'and an error line that says so');
    $u->done;
}

$t->done;
done_testing;
