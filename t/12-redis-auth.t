# auth_pat_redis options: password, ACL user, db, unix socket, namespace;
# a wrong password and an ACL that denies the check fail closed with one
# log line per (re)connect, not one per request.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatToken qw(seed_token);
use PatLoad qw(burst);

my $t = PatTest->new;
my $redis = $t->start_redis(unix => 1, password => 'adminpw');
$t->redis_cmd('ACL', 'SETUSER', 'app', 'on', '>apppw', '~pat:*', '~ns2:*', '+@all');
$t->redis_cmd('ACL', 'SETUSER', 'nohmget', 'on', '>nopw', '~*', '+@all', '-hmget');

sub with_conf {
    my ($redis_line) = @_;
    $t->stop_nginx if $t->nginx_pid;
    $t->write_file('error.log', '');
    $t->nginx_conf(http => <<"EOF2");
auth_pat_redis $redis_line;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { auth_pat "t"; alias %%HTML%%/; }
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

# the password never shows in the log
unlike($t->error_log, qr/apppw|adminpw|nopw/, 'passwords are not logged');

$t->done;
done_testing;
