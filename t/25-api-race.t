# A revoke that lands between a new token's metadata and its validation
# record: the two live in different Cluster slots, so no script writes
# both.  Nginx A reaches Redis through a proxy that delays every byte by
# 0.4 s; nginx B does not.  A creates (or rotates into) a token, B lists
# and revokes the new token before A has written its validation record:
# whatever the order, the token must end up dead, and A must not hand out
# a token that the list shows as revoked.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api secrecy_scan gateway_conf);
use PatProxy qw(delay_proxy stop);

my $B = PatTest->new;
my $redis = $B->start_redis;
my $A = PatTest->new;
$A->{key} = $B->key;
$A->{issued} = $B->{issued} = [];

my $slow = $A->free_port;
my $proxy = delay_proxy($slow, $redis->{port}, 0.4);

$A->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$slow", timeout => '3s'));
$B->nginx_conf(workers => 1, http => gateway_conf(redis => "127.0.0.1:$redis->{port}", timeout => '3s'));
$A->start_nginx;
$B->start_nginx;

# A's request, in a child; its status and body come back through a file
sub in_background {
    my ($name, @req) = @_;
    my $out = $A->path("$name.out");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $r = api($A, @req);
        open my $f, '>', $out or POSIX::_exit(1);
        print $f "$r->{status}\n$r->{content}";
        close $f;
        POSIX::_exit(0);
    }
    return sub {
        waitpid $pid, 0;
        my ($st, $body) = split /\n/, $A->read_file("$name.out"), 2;
        push @{ $A->{issued} }, $1 if ($body // '') =~ /"token":"([^"]+)"/;
        return ($st, $body // '');
    };
}

# B sees the new token in the list, and revokes it
sub revoke_new_via_b {
    my ($user, $known) = @_;
    my $until = time + 10;
    while (time < $until) {
        my $items = api($B, GET => '', user => $user)->{json}{items} || [];
        my ($new) = grep { !$known->{ $_->{id} } && $_->{status} eq 'active' } @$items;
        return api($B, DELETE => "/$new->{id}", user => $user)->{status} if $new;
        sleep 0.02;
    }
    return 0;
}

# no validation record of the user's may remain, but those of tokens that
# are active in the list
sub live_records {
    my ($user) = @_;
    my $keys = $B->redis_cmd('KEYS', 'pat:v:*');
    return scalar grep { ($B->redis_cmd('HGET', $_, 'u') // '') eq $user } @$keys;
}

sub works {
    my ($token) = @_;
    return $B->get('/static/protected.txt', { Authorization => "Bearer $token" })->{status};
}

# --- create through A, revoke through B in between
{
    my $done = in_background('create', POST => '', user => 'racer', body => { name => 'raced' });
    is(revoke_new_via_b('racer', {}), 200, 'B revoked the token A was still issuing');
    my ($st, $body) = $done->();
    is($st, 409, 'A: 409, not a token that is already revoked') or diag $body;
    like($body, qr/"error":"conflict"/, 'A: the conflict error');
    unlike($body, qr/"token"/, 'A: no plaintext handed out');
    is(live_records('racer'), 0, 'no validation record is left for the revoked token');
    my $items = api($B, GET => '', user => 'racer')->{json}{items};
    is_deeply([ map { $_->{status} } @$items ], ['revoked'], 'the list shows it revoked');
}

# --- rotate through A, revoke the new token through B in between
{
    my $old = api($B, POST => '', user => 'rotor', body => { name => 'old' })->{json}{data};
    my $done = in_background('rotate', POST => "/$old->{id}/rotate", user => 'rotor');
    is(revoke_new_via_b('rotor', { $old->{id} => 1 }), 200, 'B revoked the token A was rotating into');
    my ($st, $body) = $done->();
    is($st, 409, 'A: 409 for the rotation') or diag $body;
    unlike($body, qr/"token"/, 'A: no plaintext handed out');
    is(works($old->{token}), 401, 'the rotated-out token is dead');
    is(live_records('rotor'), 0, 'no validation record is left for either token');
}

# --- without a race, A still issues working tokens
{
    my $r = api($A, POST => '', user => 'calm', body => { name => 'calm' });
    is($r->{status}, 201, 'A: create without a race');
    is(works($r->{json}{data}{token}), 200, 'and the token works');
    my $rot = api($A, POST => "/$r->{json}{data}{id}/rotate", user => 'calm');
    is($rot->{status}, 201, 'A: rotate without a race');
    is(works($rot->{json}{data}{token}), 200, 'the new token works');
    is(works($r->{json}{data}{token}), 401, 'the old one does not');
}

secrecy_scan($B);
stop($proxy);
$A->done;
$B->done;
done_testing;
