# Redis over TLS: a Redis with a TLS port only (port 0), certificates made
# here with openssl.  The valid chain works for create, check, a list
# whose Redis reply exceeds 64 KB, and the cache's invalidation feed; a
# wrong CA, a wrong name, an expired certificate, plain TCP to the TLS
# port and TLS to a plain port each answer 503 with one error line that
# names the address and the reason; client certificates; password_file=.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use POSIX ();
use PatTest;
use PatTLS;
use PatApi qw(api);

my $t = PatTest->new;
my $pki = PatTLS::make_pki($t->path('pki'));
my %client = (client_cert => $pki->{client}{crt},
              client_key => $pki->{client}{key}, ca => $pki->{ca}{crt});
my $redis = $t->start_redis(name => 'tls', tls => {
    %client, cert => $pki->{server}{crt}, key => $pki->{server}{key} });
my $ca = $pki->{ca}{crt};

sub conf {
    my (%o) = @_;
    my $redis_args = $o{redis} // "127.0.0.1:$redis->{port} ssl";
    my $tls = $o{tls} // "auth_pat_redis_ssl_trusted_certificate $ca;";
    return <<"EOF";
auth_pat_redis $redis_args timeout=1s;
auth_pat_key_file %%KEY%%;
$tls
@{[ $o{extra} // '' ]}
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
        auth_pat_max_tokens 1000;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
}
EOF
}

sub restart {
    my ($tt, %o) = @_;
    $tt->stop_nginx if $tt->nginx_pid;
    $tt->write_file('error.log', '');
    $tt->nginx_conf(http => conf(%o));
    $tt->start_nginx;
}

sub check {
    my ($tt, $tok) = @_;
    return $tt->get('/static/protected.txt',
                    { Authorization => "Bearer $tok" })->{status};
}

# until Redis answers through nginx (the first connect may still run)
sub create_until {
    my ($tt, $user, $name) = @_;
    my ($r, $t0) = (undef, time);
    do {
        $r = api($tt, POST => '', user => $user, body => { name => $name });
        return $r if $r->{status} == 201;
        sleep 0.05;
    } while (time - $t0 < 5);
    return $r;
}

# the error line a failed setup gives, within a few seconds
sub error_line {
    my ($tt, $re) = @_;
    for (1 .. 100) {
        my @l = grep { /\[error\]/ && $_ =~ $re } split /\n/, $tt->error_log;
        note $l[0] if @l;
        return $l[0] if @l;
        sleep 0.05;
    }
    return undef;
}

# --- the valid chain: create, check, list
restart($t);
my $c = create_until($t, 'alice', 'over tls');
is($c->{status}, 201, 'valid chain: create');
my $tok = $c->{json}{data}{token} // '';
is(check($t, $tok), 200, 'valid chain: check');
is(check($t, 'pat_0000000000000000000000000000000000'), 401,
   'valid chain: an unknown token is 401');
my $l = api($t, GET => '', user => 'alice');
is($l->{status}, 200, 'valid chain: list');
is($l->{json}{totalCount}, 1, 'valid chain: the list has the token');
like($t->error_log, qr/redis "127\.0\.0\.1:\d+" connected \(TLSv1\.3, new session\)/,
     'valid chain: connected, TLS 1.3');
unlike($t->error_log, qr/\[(error|crit|alert)\]/, 'valid chain: no error');

# a reconnect resumes the TLS session
$t->redis_cmd('CLIENT', 'KILL', 'TYPE', 'normal');
my $resumed = 0;
for (1 .. 100) {
    last if ($resumed = $t->error_log =~ /connection restored \(TLSv1\.3, resumed session\)/);
    sleep 0.05;
}
ok($resumed, 'a reconnect resumes the TLS session') or diag $t->error_log;
ok($t->wait_linked(undef, subscriber => 0), 'every worker is back');
is(check($t, $tok), 200, 'and checks work on it');

# a list whose reply from Redis exceeds 64 KB: many TLS records
my $long = 'n' x 190;
my $made = 0;
for my $i (1 .. 300) {
    $made++ if api($t, POST => '', user => 'bulk',
                   body => { name => sprintf('%s %03d', $long, $i) })
                   ->{status} == 201;
}
is($made, 300, 'big list: 300 tokens with long names made');
my $out0 = ($t->redis_cmd('INFO', 'stats') =~ /total_net_output_bytes:(\d+)/)[0];
$l = api($t, GET => '?page_size=100&search_term=nnn', user => 'bulk');
my $out1 = ($t->redis_cmd('INFO', 'stats') =~ /total_net_output_bytes:(\d+)/)[0];
is($l->{status}, 200, 'big list: answered');
is($l->{json}{totalCount}, 300, 'big list: every token counted');
is(scalar @{ $l->{json}{items} // [] }, 100, 'big list: a full page');
cmp_ok($out1 - $out0, '>', 65536, 'big list: Redis sent over 64 KB for it')
    or diag "sent " . ($out1 - $out0);

# --- failures: 503 and one error line with the address and the reason
my $addr = qr/redis "127\.0\.0\.1:$redis->{port}"/;
my @cases = (
    [ 'wrong CA', (tls => "auth_pat_redis_ssl_trusted_certificate "
                          . "$pki->{ca2}{crt};"),
      qr/$addr TLS certificate verify error: \(\d+:[^)]+\)/ ],
    [ 'wrong name', (tls => "auth_pat_redis_ssl_trusted_certificate $ca;\n"
                            . "auth_pat_redis_ssl_name redis.example.com;"),
      qr/$addr TLS certificate does not match the name "redis\.example\.com"/ ],
    [ 'plain TCP to the TLS port', (redis => "127.0.0.1:$redis->{port}",
                                    tls => ''),
      qr/$addr closed the connection during its setup \(if it is a TLS port, add "ssl"\)/ ],
);
for my $case (@cases) {
    my ($what, %o) = @$case[0 .. $#$case - 1];
    my $re = $case->[-1];
    restart($t, %o);
    my %st;
    $st{ check($t, $tok) }++ for 1 .. 3;
    my $r = api($t, POST => '', user => 'alice', body => { name => 'x' });
    ok(defined error_line($t, $re), "$what: the error line")
        or diag $t->error_log;
    is_deeply(\%st, { 503 => 3 }, "$what: checks answer 503");
    is($r->{status}, 503, "$what: create answers 503");
    is($r->{json}{error}, 'unavailable', "$what: error \"unavailable\"");
}

# an expired certificate, on a Redis of its own
my $old = $t->start_redis(name => 'expired', tls => {
    %client, cert => $pki->{expired}{crt}, key => $pki->{expired}{key} });
restart($t, redis => "127.0.0.1:$old->{port} ssl");
is(check($t, $tok), 503, 'expired certificate: 503');
ok(defined error_line($t, qr/redis "127\.0\.0\.1:$old->{port}" TLS certificate verify error: \(10:certificate has expired\)/),
   'expired certificate: the error line names it');
$t->stop_redis($old);

# TLS to a plain port
my $plain = $t->start_redis(name => 'plain');
restart($t, redis => "127.0.0.1:$plain->{port} ssl");
is(check($t, $tok), 503, 'TLS to a plain port: 503');
ok(defined error_line($t, qr/redis "127\.0\.0\.1:$plain->{port}" TLS handshake failed: \S/),
   'TLS to a plain port: the error line')
    or diag $t->error_log;
unlike($t->redis_cmd_on($plain, 'KEYS', '*') // '', qr/pat:/,
       'TLS to a plain port: nothing was stored in plaintext');

# a peer that answers in plaintext at once, before any TLS: nothing it
# sends is ever read as a Redis reply
my $fport = $t->free_port;
my $fake = fork // die "fork: $!";
if (!$fake) {
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$fport",
                                  Listen => 16, ReuseAddr => 1) or POSIX::_exit(1);
    my @keep;
    my $until = time + 60;
    while (time < $until) {
        my $s = $l->accept or next;
        syswrite($s, "+OK\r\n" x 64 . "*1\r\n\$6\r\nmaster\r\n" x 8);
        push @keep, $s;
    }
    POSIX::_exit(0);
}
restart($t, redis => "127.0.0.1:$fport ssl");
my %fs;
$fs{ check($t, $tok) }++ for 1 .. 5;
ok(defined error_line($t, qr/redis "127\.0\.0\.1:$fport" TLS handshake failed/),
   'plaintext before TLS: the handshake fails on it');
$fs{ check($t, $tok) }++ for 1 .. 5;
is_deeply(\%fs, { 503 => 10 }, 'plaintext before TLS: every check is 503');
unlike($t->error_log, qr/"127\.0\.0\.1:$fport" (connected|connection restored)/,
       'plaintext before TLS: never taken for a Redis');
kill 'KILL', $fake;
waitpid $fake, 0;

# verification off: the wrong CA is accepted (README: never in production)
restart($t, tls => "auth_pat_redis_ssl_verify off;");
is(check($t, $tok), 200, 'auth_pat_redis_ssl_verify off: works without a CA');

# by host name: SNI and the name check use "localhost"
restart($t, redis => "localhost:$redis->{port} ssl");
is(check($t, $tok), 200, 'a host name: verified against DNS:localhost');

# --- client certificates (tls-auth-clients yes)
my $mtls = $t->start_redis(name => 'mtls', tls => {
    %client, cert => $pki->{server}{crt}, key => $pki->{server}{key},
    auth_clients => 1 });
restart($t, redis => "127.0.0.1:$mtls->{port} ssl");
my $r = api($t, POST => '', user => 'carol', body => { name => 'x' });
is($r->{status}, 503, 'tls-auth-clients yes, no client certificate: 503');
ok(defined error_line($t, qr/redis "127\.0\.0\.1:$mtls->{port}" .*(certificate|closed)/),
   'and an error line')
    or diag $t->error_log;
restart($t, redis => "127.0.0.1:$mtls->{port} ssl",
        tls => "auth_pat_redis_ssl_trusted_certificate $ca;\n"
             . "auth_pat_redis_ssl_certificate $pki->{client}{crt};\n"
             . "auth_pat_redis_ssl_certificate_key $pki->{client}{key};");
$r = create_until($t, 'carol', 'mtls');
is($r->{status}, 201, 'with the client certificate: create');
is(check($t, $r->{json}{data}{token} // ''), 200,
   'with the client certificate: check');
$t->stop_nginx;

# --- the cache over TLS: a revoke through another nginx is seen at once
my $u = PatTest->new;
$u->{key} = $t->key;
my $cache = 'auth_pat_cache zone=tls:1m ttl=60s;';
restart($t, extra => $cache);
restart($u, extra => $cache);
ok($t->wait_linked($t) && $u->wait_linked($t), 'cache: both nginx subscribed');
my $ct = create_until($t, 'dave', 'cached')->{json}{data};
my $hits = 0;
$hits++ for grep { $_ == 200 } map { check($t, $ct->{token}) } 1 .. 5;
is($hits, 5, 'cache: the token works (and is cached)');
is(api($u, DELETE => "/$ct->{id}", user => 'dave')->{status}, 200,
   'cache: revoked through the other nginx');
is(check($t, $ct->{token}), 401, 'cache: refused at once');
$u->done;
$t->stop_nginx;

# --- password_file=
my $pw = 'tls pass ' . PatTest::_random_alnum(24);
$t->redis_cmd_on($redis, 'CONFIG', 'SET', 'requirepass', $pw);
$redis->{password} = $pw;
my $pwfile = $t->write_file('redis.pass', "$pw\n", 0600);
restart($t, redis => "127.0.0.1:$redis->{port} ssl password_file=$pwfile");
is(create_until($t, 'erin', 'pw')->{status}, 201, 'password_file=: works');
my $bad = $t->write_file('bad.pass', "not the $pw\n", 0600);
restart($t, redis => "127.0.0.1:$redis->{port} ssl password_file=$bad");
is(check($t, $tok), 503, 'a wrong password: 503');
my $line = error_line($t, qr/redis "127\.0\.0\.1:$redis->{port}" refused the connection setup/);
ok(defined $line, 'a wrong password: an error line') or diag $t->error_log;
unlike($t->error_log, qr/\Q$pw\E/, 'the password appears in no log line');

# --- nginx -t
my @bad = (
    [ 'ssl on a unix socket', "unix:/tmp/x.sock ssl",
      qr/"ssl" needs a "host:port" address/ ],
    [ 'password= and password_file=',
      "127.0.0.1:1 password=x password_file=$pwfile",
      qr/"password=" and "password_file=" exclude each other/ ],
    [ 'a missing password file', "127.0.0.1:1 password_file=/nonexistent",
      qr/open\(\) "\/nonexistent" failed/ ],
);
for my $b (@bad) {
    $t->nginx_conf(http => conf(redis => $b->[1]));
    my ($rc, $out) = $t->nginx_test;
    ok($rc != 0 && $out =~ $b->[2], "nginx -t: $b->[0]") or diag $out;
}
$t->nginx_conf(http => conf(tls => "auth_pat_redis_ssl_trusted_certificate $ca;\n"
                                 . "auth_pat_redis_ssl_certificate $pki->{client}{crt};"));
my ($rc, $out) = $t->nginx_test;
ok($rc != 0 && $out =~ /no "auth_pat_redis_ssl_certificate_key" is defined/,
   'nginx -t: a certificate without its key') or diag $out;
$t->nginx_conf(http => conf(redis => "127.0.0.1:$redis->{port}"));
($rc, $out) = $t->nginx_test;
ok($rc != 0 && $out =~ /"auth_pat_redis_ssl_\*" directives need "ssl"/,
   'nginx -t: TLS settings without "ssl" (plaintext by mistake)') or diag $out;
$t->nginx_conf(http => conf(tls => "auth_pat_redis_ssl_name " . ('n' x 256) . ";"));
($rc, $out) = $t->nginx_test;
ok($rc != 0 && $out =~ /longer than 255 bytes/, 'nginx -t: a name over 255 bytes')
    or diag $out;
$t->nginx_conf(http => conf(tls => "auth_pat_redis_ssl_protocols TLSv1.3;"));
($rc, $out) = $t->nginx_test;
is($rc, 0, 'nginx -t: auth_pat_redis_ssl_protocols TLSv1.3') or diag $out;

$t->done;
done_testing;
