# Redis killed mid-traffic, and Redis hung (SIGSTOP): the check fails
# closed with 503 within timeout + 1 s, then recovers without a reload.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use PatTest;
use PatToken qw(seed_token make_token);
use PatLoad qw(burst);

my $t = PatTest->new;
my $redis = $t->start_redis(aof => 1);
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { auth_pat "t"; alias %%HTML%%/; }
}
EOF2
$t->start_nginx;

my $tok = seed_token($t, user => 'alice');
my %auth = (Authorization => "Bearer $tok->{token}");
is($t->get('/protected.txt', \%auth)->{status}, 200, 'valid token before the failure');

sub statuses { my %n; $n{ $_->{status} }++ for @{ $_[0] }; return join ' ', map { "$_=$n{$_}" } sort keys %n }

# --- killed mid-traffic
my $killed = 0;
my $res = burst(port => $t->port, concurrency => 20, timeout => 10,
    requests => [ map { { path => '/protected.txt', headers => \%auth } } 1..400 ],
    on_progress => sub { if ($_[0] == 100 && !$killed) { $t->kill_redis($redis, 'KILL'); $killed = 1 } });
my @bad = grep { $_->{status} != 200 && $_->{status} != 503 } @$res;
is(scalar @bad, 0, 'killed mid-traffic: every answer is 200 or 503') or diag statuses($res);
ok((grep { $_->{status} == 503 } @$res) > 0, 'killed mid-traffic: 503s after the kill') or diag statuses($res);
my ($slowest) = sort { $b <=> $a } map { $_->{elapsed} } @$res;
cmp_ok($slowest, '<=', 2.0, 'killed: no answer later than timeout + 1 s');

$res = burst(port => $t->port, concurrency => 20,
    requests => [ map { { path => '/protected.txt', headers => \%auth } } 1..50 ]);
is(scalar(grep { $_->{status} == 503 } @$res), 50, 'Redis down: 503 for a valid token') or diag statuses($res);
is($res->[0]{body} =~ /"error":"unavailable"/ ? 1 : 0, 1, 'Redis down: JSON error "unavailable"');
$res = burst(port => $t->port, concurrency => 5,
    requests => [ map { { path => '/protected.txt', headers => { Authorization => 'Bearer ' . make_token() } } } 1..5 ]);
is(scalar(grep { $_->{status} == 503 } @$res), 5, 'Redis down: unknown tokens get 503, never 401');
is($t->get('/protected.txt', { Authorization => 'Bearer garbage' })->{status}, 401,
   'Redis down: a token with a bad checksum is still 401 (no Redis needed)');

$t->restart_redis($redis);
my $t0 = time;
my $ok = 0;
while (time - $t0 < 5) {
    # both workers must be back: two answers in a row on fresh connections
    my @s = map { $t->get('/protected.txt', \%auth)->{status} } 1..4;
    if (!grep { $_ != 200 } @s) { $ok = 1; last }
    sleep 0.05;
}
my $took = time - $t0;
ok($ok, 'recovered after Redis restarted, without a reload');
cmp_ok($took, '<=', 3.0, 'recovered within 3 s') or diag "took $took s";

# --- hung (SIGSTOP)
$t->kill_redis($redis, 'STOP');
$res = burst(port => $t->port, concurrency => 30, timeout => 10,
    requests => [ map { { path => '/protected.txt', headers => \%auth } } 1..60 ]);
is(scalar(grep { $_->{status} == 503 } @$res), 60, 'hung Redis: every answer is 503') or diag statuses($res);
($slowest) = sort { $b <=> $a } map { $_->{elapsed} } @$res;
cmp_ok($slowest, '<=', 2.0, 'hung Redis: no request waits beyond timeout + 1 s');
cmp_ok($slowest, '>=', 0.8, 'hung Redis: the in-flight lookups waited for the deadline');
$res = burst(port => $t->port, concurrency => 10,
    requests => [ map { { path => '/protected.txt', headers => \%auth } } 1..20 ]);
($slowest) = sort { $b <=> $a } map { $_->{elapsed} } @$res;
is(scalar(grep { $_->{status} == 503 } @$res), 20, 'still hung: 503');
cmp_ok($slowest, '<=', 2.0, 'still hung: bounded wait');

$t->kill_redis($redis, 'CONT');
$t0 = time;
$ok = 0;
while (time - $t0 < 6) {
    my @s = map { $t->get('/protected.txt', \%auth)->{status} } 1..4;
    if (!grep { $_ != 200 } @s) { $ok = 1; last }
    sleep 0.05;
}
ok($ok, 'recovered after SIGCONT') or diag "after " . (time - $t0) . " s";

like($t->error_log, qr/did not answer within 1000 ms/, 'the timeout is logged');
unlike($t->error_log, qr/\Q$tok->{token}\E/, 'the token is not logged');

$t->done;
done_testing;
