# auth_pat_redis options: password, ACL user, db, unix socket, namespace;
# a wrong password and an ACL that denies the check fail closed with one
# log line per (re)connect, not one per request.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use PatTest;
use PatToken qw(seed_token);
use PatLoad qw(burst);

my $t = PatTest->new;
my $redis = $t->start_redis(unix => 1, password => 'adminpw');
$t->redis_cmd('ACL', 'SETUSER', 'app', 'on', '>apppw', '~pat:*', '~ns2:*', '+@all');
$t->redis_cmd('ACL', 'SETUSER', 'nohmget', 'on', '>nopw', '~*', '+@all', '-hmget');

sub with_conf {
    my ($redis_line, $extra) = @_;
    $extra //= '';
    $t->stop_nginx if $t->nginx_pid;
    $t->write_file('error.log', '');
    $t->nginx_conf(http => <<"EOF2");
auth_pat_redis $redis_line;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { auth_pat "t"; alias %%HTML%%/; }
    $extra
}
EOF2
    $t->start_nginx;
}

sub poll_status {
    my ($auth) = @_;
    my $s;
    for (1..40) {
        $s = $t->get('/protected.txt', $auth)->{status};
        last if $s == 200;
        select undef, undef, undef, 0.05;
    }
    return $s;
}

my $tok = seed_token($t, user => 'alice');
my %auth = (Authorization => "Bearer $tok->{token}");

with_conf('%%REDIS%% password=adminpw');
is(poll_status(\%auth), 200, 'password= (default user)');

with_conf('%%REDIS%% user=app password=apppw');
is(poll_status(\%auth), 200, 'user= and password= (ACL user)');

with_conf('%%REDIS_UNIX%% password=adminpw');
is(poll_status(\%auth), 200, 'unix socket');

# a token that lives in db 3 under another namespace
my $tok3 = seed_token($t, user => 'carol', ns => 'ns2:');
$t->redis_cmd('MOVE', $tok3->{key}, 3);
with_conf('%%REDIS_UNIX%% db=3 user=app password=apppw namespace=ns2:');
is(poll_status({ Authorization => "Bearer $tok3->{token}" }), 200, 'db= and namespace=');
is($t->get('/protected.txt', \%auth)->{status}, 401, 'a token of db 0 is unknown in db 3');

sub fails_quietly {
    my ($name, $re) = @_;
    my $res = burst(port => $t->port, concurrency => 10,
        requests => [ map { { path => '/protected.txt', headers => \%auth } } 1..200 ]);
    is(scalar(grep { $_->{status} == 503 } @$res), 200, "$name: every request gets 503");
    my @lines = grep { /$re/ } split /\n/, $t->error_log;
    cmp_ok(scalar @lines, '>=', 1, "$name: the cause is logged");
    cmp_ok(scalar @lines, '<', 40, "$name: once per (re)connect, not per request")
        or diag scalar(@lines) . " lines";
    like($lines[0] // '', qr/\[error\].*auth_pat: redis ".*" refused the connection setup/, "$name: a clear line");
}

with_conf('%%REDIS%% password=wrong');
fails_quietly('wrong password', qr/WRONGPASS/);

with_conf('%%REDIS%% user=app password=wrong');
fails_quietly('wrong ACL password', qr/WRONGPASS/);

with_conf('%%REDIS%% user=nohmget password=nopw');
fails_quietly('ACL denies the check command', qr/NOPERM/);

with_conf('%%REDIS%%');
fails_quietly('no password where one is required', qr/NOAUTH/);

# Requests that arrive while the connection setup is still in flight are
# held in nginx, not pipelined behind it: when SELECT is refused, none of
# their writes may run in db 0.  Redis is stopped so that the setup stays
# in flight while 20 creates arrive, then resumed.
{
    $t->stop_nginx;
    $t->kill_redis($redis, 'STOP');
    with_conf('%%REDIS%% password=adminpw db=20 timeout=5s', <<'EOF2');
location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
EOF2
    my $out = $t->path('held.txt');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $r = burst(port => $t->port, concurrency => 20, timeout => 20,
            requests => [ map { { method => 'POST', path => '/v1/personal-access-tokens',
                                  headers => { 'X-User' => 'mallory', 'Content-Type' => 'application/json' },
                                  body => qq({"name":"held $_"}) } } 1..20 ]);
        open my $f, '>', $out or POSIX::_exit(1);
        print $f join(',', map { $_->{status} } @$r);
        close $f;
        POSIX::_exit(0);
    }
    select undef, undef, undef, 1;
    $t->kill_redis($redis, 'CONT');
    waitpid $pid, 0;
    my @st = split /,/, $t->read_file('held.txt');
    is(scalar(grep { $_ == 503 } @st), 20, 'creates during a refused connection setup: 503')
        or diag "statuses: @st";
    my $all = $t->redis_cmd('KEYS', '*');
    my @keys = grep { /mallory/ } @$all;
    is(scalar @keys, 0, 'and nothing of theirs was written to db 0') or diag "@keys";
    like($t->error_log, qr/refused the connection setup: ERR DB index is out of range/, 'the refused SELECT is logged');
}

# the password never shows in the log
unlike($t->error_log, qr/apppw|adminpw|nopw/, 'passwords are not logged');

$t->done;
done_testing;
