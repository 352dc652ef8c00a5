#!/usr/bin/perl
# Tests of the PatTest harness itself (does not need the module).
use strict;
use warnings;
use lib 't/lib';
use PatTest;
use Test::More;
use File::Spec;
use IO::Socket::INET;
use Time::HiRes ();

my $t = PatTest->new;

# ---- temp dir / files
ok(-d $t->dir, 'temp dir exists');
is((stat $t->dir)[2] & 07777, 0755, 'temp dir is 0755');

my $f = $t->write_file('a/b.txt', "hello\n");
is($t->read_file('a/b.txt'), "hello\n", 'write_file/read_file');
is((stat $f)[2] & 07777, 0644, 'write_file default mode 0644');
is((stat $t->write_file('x.sh', "#!/bin/sh\n", 0755))[2] & 07777, 0755, 'write_file explicit mode');

my $kf = $t->key_file;
like($t->key, qr/^[A-Za-z0-9]{48}$/, 'key is 48 alnum chars');
is($t->read_file($kf), $t->key, 'key_file content');
is((stat $kf)[2] & 07777, 0644, 'key_file is 0644');
is($t->key_file, $kf, 'key_file written once');

my $p1 = $t->free_port;
my $p2 = $t->free_port;
ok($p1 > 0 && $p2 > 0 && $p1 != $p2, 'free_port gives distinct ports');
ok(PatTest::port_bindable($p1) && PatTest::port_bindable($p2), 'the ports free_port gives can be bound');
my @many = map { $t->free_port } 1 .. 20;
is(scalar(keys %{{ map { $_ => 1 } @many, $p1, $p2 }}), 22, 'free_port never hands out a port twice');
my $port = $t->port;
ok($port && $t->port2 && $port != $t->port2, 'port/port2');
ok(!grep({ $_ == $port || $_ == $t->port2 } $p1, $p2, @many), 'port/port2 are not ports handed out before');
ok(PatTest::port_bindable($port) && PatTest::port_bindable($t->port2), 'port/port2 can be bound');
$t->free_port for 1 .. 5;
is($t->port, $port, 'port is stable: the same after more free_port calls');

# ---- redis
my $r = $t->start_redis;
ok($r->{port} && $r->{pid} && -d $r->{dir}, 'redis started');
is($t->{redis}, $r, 'first redis is $t->{redis}');
ok(PatTest::pid_alive($r->{pid}), 'redis pid alive');
is($t->redis_cmd('PING'), 'PONG', 'PING');
is($t->redis_cmd('SET', 'k1', "v\r\n1"), 'OK', 'SET');
is($t->redis_cmd('GET', 'k1'), "v\r\n1", 'GET (binary safe)');
is($t->redis_cmd('GET', 'nope'), undef, 'GET missing -> undef');
is($t->redis_cmd('INCR', 'cnt'), 1, 'INCR -> integer');
is($t->redis_cmd('RPUSH', 'l', 'a', 'b', 'c'), 3, 'RPUSH');
is_deeply($t->redis_cmd('LRANGE', 'l', 0, -1), [qw(a b c)], 'LRANGE -> array');
is_deeply($t->redis_cmd('MGET', 'k1', 'nope'), ["v\r\n1", undef], 'MGET with nil');
is_deeply($t->redis_cmd('LRANGE', 'empty', 0, -1), [], 'empty array');
my $e = $t->redis_cmd('NOSUCHCOMMAND', 'x');
isa_ok($e, 'PatTest::RedisError');
like($t->redis_err($e), qr/unknown command/i, 'redis_err returns message');
is($t->redis_err('OK'), undef, 'redis_err on non-error');
is($t->redis_err(undef), undef, 'redis_err on nil');
like($t->redis_err($t->redis_cmd('INCR', 'k1')), qr/not an integer/, 'WRONGTYPE-ish error');
is($t->redis_cmd('SET', 'ttl', 'x', 'EX', 100), 'OK', 'SET EX');
ok($t->redis_cmd('TTL', 'ttl') > 90, 'TTL');
is(ref $t->redis_cmd('CONFIG', 'GET', 'save'), 'ARRAY', 'nested reply');
is($t->redis_cmd('CONFIG', 'GET', 'save')->[1], '', 'save ""');

# second redis: password + unix socket + aof
my $r2 = $t->start_redis(name => 'r2', password => 's3cret', unix => 1, aof => 1,
                         conf => "maxclients 100\n");
isnt($r2->{port}, $r->{port}, 'second redis other port');
is($t->{redis}, $r, 'first redis stays default');
ok(-S $r2->{unix}, 'unix socket exists');
is((stat $r2->{unix})[2] & 0777, 0777, 'unix socket perm 777');
is($t->redis_cmd_on($r2, 'PING'), 'PONG', 'PING with AUTH');
is($t->redis_cmd_on('r2', 'CONFIG', 'GET', 'maxclients')->[1], 100, 'extra conf applied');
is($t->redis_cmd_on($r2, 'CONFIG', 'GET', 'appendonly')->[1], 'yes', 'aof on');
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $r2->{port}) or die;
    print $s "*1\r\n\$4\r\nPING\r\n";
    my $l = <$s>;
    like($l, qr/^-NOAUTH/, 'password enforced');
}
{
    my $s = IO::Socket::UNIX->new(Peer => $r2->{unix}) or die "unix: $!";
    print $s "*2\r\n\$4\r\nAUTH\r\n\$6\r\ns3cret\r\n*1\r\n\$4\r\nPING\r\n";
    my $l1 = <$s>; my $l2 = <$s>;
    is("$l1$l2", "+OK\r\n+PONG\r\n", 'unix socket works');
}
is($t->redis_cmd_on($r2, 'SET', 'persist', 'yes'), 'OK', 'SET on r2');

# STOP / CONT
$t->kill_redis($r2, 'STOP');
is(PatTest::_proc_stat($r2->{pid})->{state}, 'T', 'redis stopped');
{
    local $PatTest::REDIS_TIMEOUT = 0.3;
    my $t0 = Time::HiRes::time();
    ok(!eval { $t->redis_cmd_on($r2, 'PING'); 1 }, 'redis_cmd times out on stopped redis');
    like($@, qr/timeout/, 'timeout error');
    ok(Time::HiRes::time() - $t0 < 3, 'timeout honoured');
}
$t->kill_redis($r2, 'CONT');
is($t->redis_cmd_on($r2, 'PING'), 'PONG', 'redis continued');

# restart keeps port/dir/config (and AOF data)
my ($oldpid, $oldport) = ($r2->{pid}, $r2->{port});
$t->restart_redis($r2);
isnt($r2->{pid}, $oldpid, 'restart: new pid');
is($r2->{port}, $oldport, 'restart: same port');
ok(!PatTest::pid_alive($oldpid), 'restart: old pid gone');
is($t->redis_cmd_on($r2, 'GET', 'persist'), 'yes', 'restart: AOF data kept');

# KILL then restart
$oldpid = $r2->{pid};
$t->kill_redis($r2, 'KILL');
ok(!PatTest::pid_alive($oldpid), 'KILL: pid gone');
ok(!eval { $t->redis_cmd_on($r2, 'PING'); 1 }, 'KILL: redis unreachable');
$t->restart_redis('r2');
is($t->redis_cmd_on($r2, 'PING'), 'PONG', 'restart after KILL');

# stop_redis
my $r3 = $t->start_redis(name => 'r3');
my $r3pid = $r3->{pid};
$t->stop_redis($r3);
ok(!PatTest::pid_alive($r3pid), 'stop_redis: pid gone');
ok($t->stop_redis($r3), 'stop_redis idempotent');

# ---- nginx
my $conf = $t->nginx_conf(load_module => 0, http => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%HTML%%;
        location = /json {
            default_type application/json;
            return 200 '{"a":1,"b":[1,2]}';
        }
        location = /badjson {
            default_type application/json;
            return 200 '{"a":';
        }
        location = /hdr { return 200 "x=$http_x_test\n"; }
        location = /method { return 200 "$request_method\n"; }
        location = /echo { proxy_pass http://127.0.0.1:%%PORT2%%/echo2; }
        location = /where { return 200 "%%DIR%%|%%KEY%%|%%REDIS%%|%%REDIS_UNIX:r2%%|%%REDIS:r2%%\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        location = /echo2 { return 200 "$request_method $content_type $content_length\n"; }
    }
EOF
ok(-f $conf, 'nginx_conf written');
my $ctext = $t->read_file($conf);
unlike($ctext, qr/load_module/, 'no load_module with load_module => 0');
like($ctext, qr/listen 127\.0\.0\.1:${\ $t->port};/, '%%PORT%% substituted');
unlike($ctext, qr/%%/, 'all placeholders substituted');
like($ctext, qr/worker_processes 2;/, 'worker_processes 2');
like($ctext, qr/error_log \S+error\.log info;/, 'error_log level info');
is($t->read_file('html/index.html'), "ok\n", 'html/index.html');
is($t->read_file('html/protected.txt'), "secret\n", 'html/protected.txt');

{
    my $c2 = PatTest->new;    # conf with module, only checked textually
    local $ENV{PAT_MODULE};
    my $c = $c2->read_file($c2->nginx_conf(http => '', error_log_level => 'debug', workers => 1,
                                          main => 'env FOO;'));
    my $mp = File::Spec->catfile($t->repo_root, 'build', 'ngx_http_auth_pat_module.so');
    like($c, qr/^load_module \Q$mp\E;/m, 'load_module with absolute default path');
    like($c, qr/^env FOO;/m, 'main snippet');
    like($c, qr/error_log \S+ debug;/, 'error_log_level');
    like($c, qr/worker_processes 1;/, 'workers');
    ok(!eval { $c2->nginx_conf(http => '%%REDIS%%'); 1 }, 'placeholder without redis dies');
    $c2->done;
}

my ($rc, $out) = $t->nginx_test;
is($rc, 0, 'nginx -t ok') or diag $out;
like($out, qr/syntax is ok/, 'nginx -t output');

# broken config -> nginx_test fails, error.log stays clean
$t->write_file('nginx.conf', $ctext . "\nbogus_directive;\n");
($rc, $out) = $t->nginx_test;
isnt($rc, 0, 'nginx -t fails on bad conf');
like($out, qr/unknown directive "bogus_directive"/, 'nginx -t error output');
$t->write_file('nginx.conf', $ctext);

my $master = $t->start_nginx;
ok(PatTest::pid_alive($master), 'nginx master alive');
is($t->nginx_pid, $master, 'nginx_pid from pid file');
my @w = $t->worker_pids;
is(scalar @w, 2, 'two workers');

my $res = $t->get('/index.html');
is($res->{status}, 200, 'GET /index.html status');
is($res->{content}, "ok\n", 'GET /index.html body');
is($res->{json}, undef, 'no json for html');
is($t->get('/protected.txt')->{content}, "secret\n", 'GET /protected.txt');
is($t->get('/missing')->{status}, 404, 'missing file -> 404');
is_deeply($t->get('/json')->{json}, { a => 1, b => [1, 2] }, 'json decoded');
$res = $t->get('/badjson');
is($res->{status}, 200, 'bad json status');
is($res->{json}, undef, 'bad json -> json undef');
is($t->get('/hdr', { 'X-Test' => 'abc' })->{content}, "x=abc\n", 'request headers');
is($t->delete('/method')->{content}, "DELETE\n", 'delete');
is($t->http('PUT', '/method', { content => 'x' })->{content}, "PUT\n", 'http generic');
is($t->post_json('/echo', { a => 1 })->{content}, "POST application/json 7\n", 'post_json data');
is($t->post_json('/echo', '{"x"', { 'content-type' => 'text/plain' })->{content},
   "POST text/plain 4\n", 'post_json raw string + own content type');
is($t->http('GET', '/echo2', { port => $t->port2 })->{status}, 200, 'port option');
is($t->url('/a'), 'http://127.0.0.1:' . $t->port . '/a', 'url');
my $where = $t->get('/where')->{content};
is($where, join('|', $t->dir, $t->key_file, "127.0.0.1:$r->{port}", "unix:$r2->{unix}",
                "127.0.0.1:$r2->{port}") . "\n", 'placeholders');

# raw_http
my $raw = $t->raw_http("GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n");
like($raw, qr{^HTTP/1\.1 200 OK\r\n}, 'raw_http status line');
like($raw, qr/\r\n\r\nok\n\z/, 'raw_http body');
$raw = $t->raw_http(["GET /index.html HTTP/1.1\r\n", "Host: x\r\nConnection: close\r\n\r\n"], pause => 0.05);
like($raw, qr{^HTTP/1\.1 200 .*ok\n\z}s, 'raw_http chunks');
is($t->raw_http("GET /index.html HTTP/1.1\r\nHo", close_after_send => 1), '', 'close_after_send');
{
    my $t0 = Time::HiRes::time();
    is($t->raw_http("GET /index.html HTTP/1.1\r\nHost: x\r\n", timeout => 0.3), '', 'partial request: no reply');
    ok(Time::HiRes::time() - $t0 < 2, 'raw_http timeout honoured');
}
like($t->raw_http("GARBAGE\r\n\r\n"), qr{^HTTP/1\.1 400}, 'raw_http bad request');
is($t->get('/index.html')->{content}, "ok\n", 'still serving after raw requests');

# reload
(my $ctext2 = $ctext) =~ s{(location = /method)}{location = /reloaded { return 200 "v2\\n"; }\n        $1};
$t->write_file('nginx.conf', $ctext2);
my %old = map { $_ => 1 } $t->worker_pids;
ok($t->reload, 'reload');
my @nw = $t->worker_pids;
is(scalar @nw, 2, 'two workers after reload');
ok(!grep({ $old{$_} } @nw), 'all workers replaced');
ok(!grep({ PatTest::pid_alive($_) } keys %old), 'old workers gone');
is($t->nginx_pid, $master, 'same master after reload');
is($t->get('/reloaded')->{content}, "v2\n", 'new config active');

# reload with broken config dies, nginx keeps running
$t->write_file('nginx.conf', $ctext2 . "\nbogus_directive;\n");
ok(!eval { $t->reload; 1 }, 'reload with bad config dies');
like($@, qr/bogus_directive/, 'reload error message');
$t->write_file('nginx.conf', $ctext2);
is($t->get('/reloaded')->{content}, "v2\n", 'still serving after failed reload');

# error log checks
like($t->error_log, qr/\[notice\].*(start worker|signal process started)/, 'error_log readable');
my @p = $t->error_log_problems(text => "2024 [info] fine\n2024 [alert] bad thing\n"
                                     . "x [crit] allowed thing\nworker process 1 exited on signal 11\n",
                                allow => [qr/allowed thing/]);
is_deeply(\@p, ["2024 [alert] bad thing", "worker process 1 exited on signal 11"], 'error_log_problems');
$t->check_error_log;

# ---- done tears everything down
my @pids = ($master, $t->worker_pids, map { $_->{pid} } $r, $r2);
is(scalar @pids, 5, 'collected pids');
$t->done;    # runs check_error_log as one test
ok(!grep({ PatTest::pid_alive($_) } @pids), 'all processes gone after done')
    or diag "alive: @{[ grep { PatTest::pid_alive($_) } @pids ]}";
ok(!-e File::Spec->catfile($t->dir, 'nginx.pid'), 'pid file removed');
ok($t->done, 'done is idempotent');

# ---- teardown when a test script dies / is killed
for my $how (qw(die term)) {
    my $script = $t->write_file("child-$how.pl", <<'EOF');
use strict; use warnings;
use lib 't/lib';
use PatTest;
$| = 1;
my $how = shift;
my $t = PatTest->new;
my $r = $t->start_redis;
$t->nginx_conf(load_module => 0, http => "server { listen 127.0.0.1:%%PORT%%; root %%HTML%%; }");
my $m = $t->start_nginx;
print join(' ', 'PIDS', $m, $t->worker_pids, $r->{pid}, $t->dir), "\n";
if ($how eq 'die') { open STDERR, '>', '/dev/null'; die "deliberate\n" }
sleep 30;
EOF
    my $pid = open(my $fh, '-|', $^X, $script, $how) or die "spawn: $!";
    my $line = <$fh>;
    kill 'TERM', $pid if $how eq 'term';
    close $fh;
    my ($m, @rest) = ($line || '') =~ /^PIDS (.*)$/ ? split(' ', $1) : ();
    my $dir = pop @rest;
    is(scalar @rest, 3, "child ($how): got pids");
    ok(!grep({ PatTest::pid_alive($_) } $m, @rest), "child ($how): no leaked processes");
    ok($dir && !-e $dir, "child ($how): temp dir removed");
}

done_testing;
