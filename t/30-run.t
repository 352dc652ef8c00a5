# `./build.sh run`: Redis and nginx from nginx.conf.example on 127.0.0.1,
# on free ports (PAT_PORT and PAT_PORT+1) and a private PAT_RUN_DIR; the
# curl lines it prints work as printed, and so does README's API block;
# Ctrl-C (and SIGTERM, and nginx quitting by itself) stops both; tokens survive a restart; a busy port
# makes it fail and leaves no Redis behind.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use PatTest;

my $t = PatTest->new;
my $rd = $t->path('run');
my $root = $t->repo_root;

sub answers {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    return $s ? 1 : 0;
}

# PAT_PORT, with PAT_PORT+1 (the example's upstream) free as well
my $port;
for (1 .. 50) {
    my $p = $t->free_port;
    next if $p >= 65535 || !PatTest::port_bindable($p + 1);
    $port = $p;
    last;
}
BAIL_OUT('no two consecutive free ports') unless $port;
my $up = $port + 1;
note "PAT_PORT=$port";

# build.sh run in its own session (so that a signal to -pid is the
# terminal's Ctrl-C); its output in $out
sub spawn_run {
    my ($dir, $out) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        POSIX::setsid();
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT or die;
        $ENV{PAT_RUN_DIR} = $dir;
        $ENV{PAT_PORT} = $port;
        exec "$root/build.sh", 'run' or POSIX::_exit(127);
    }
    return $pid;
}

sub start_run {
    my $pid = spawn_run($rd, $t->path('run.out'));
    my $text = '';
    for (1..200) {
        $text = $t->read_file('run.out') // '';
        last if $text =~ /^# 5\. Revoke/m && $text =~ /^\s*$/m && $text =~ /NEWID.*\n.*\n.*\n.*\n\s*\z/;
        sleep 0.05;
    }
    return ($pid, $text);
}

# the exit status of $pid within $secs (undef: still running)
sub wait_exit {
    my ($pid, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return $? if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    return undef;
}

# processes whose command line names the run dir (not zombies)
sub procs_under {
    my ($dir) = @_;
    my @found;
    opendir my $d, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $d) {
        next if $p == $$;
        open my $f, '<', "/proc/$p/cmdline" or next;
        local $/;
        my $cmd = <$f> // '';
        next unless length $cmd;
        $cmd =~ tr/\0/ /;
        push @found, "$p:$cmd" if index($cmd, "$dir/") >= 0;
    }
    return @found;
}

sub no_procs_left {
    my ($dir, $name) = @_;
    my @left;
    for (1..100) {
        @left = procs_under($dir);
        last unless @left;
        sleep 0.05;
    }
    is("@left", '', "$name: no nginx or redis left behind");
}

# $how: 'INT' to the process group (Ctrl-C), 'TERM' to build.sh alone,
# 'nginx-quit' (nginx -s quit: nginx ends by itself)
sub stop_run {
    my ($pid, $how, $want_rc) = @_;
    my $name = { INT => 'Ctrl-C', TERM => 'SIGTERM to build.sh', 'nginx-quit' => 'nginx quitting' }->{$how};
    if ($how eq 'INT') { kill 'INT', -$pid }
    elsif ($how eq 'TERM') { kill 'TERM', $pid }
    else { kill 'QUIT', ($t->read_file('run/nginx.pid') // '') =~ /(\d+)/ ? $1 : die 'no nginx.pid' }
    my $st = wait_exit($pid, 15);
    ok(defined $st, "$name stops build.sh run");
    if (!defined $st) { kill 'KILL', -$pid; waitpid $pid, 0 }
    is(defined $st ? $st >> 8 : 'none', $want_rc, "$name: build.sh exits with $want_rc");
    no_procs_left($rd, $name);
    ok(!answers($port) && !answers($up), "$name: ports $port and $up are closed");
    my $out = $t->read_file('run.out') // '';
    unlike($out, qr/unbound variable|line \d+:/, "$name: no shell error") or diag $out;
}

my ($pid, $text) = start_run();
like($text, qr/nginx is listening on http:\/\/127\.0\.0\.1:$port /, "run: nginx listening on PAT_PORT");
like($text, qr/the stand-in upstream on port $up\b/, 'run: the upstream on PAT_PORT+1');
like($t->read_file('run/nginx.conf') // '', qr/listen 127\.0\.0\.1:$port;.*proxy_pass http:\/\/127\.0\.0\.1:$up;.*listen 127\.0\.0\.1:$up;/s,
     'run: nginx.conf listens on PAT_PORT and PAT_PORT+1');
my ($pw) = $text =~ /Bootstrap user: alice, password (\S+)/;
ok($pw, 'run: a generated password is printed');

# the lines after "Try", without comments, exactly as printed
my ($try) = $text =~ /Try, in another terminal.*?\n(.*)\z/s;
my @cmds = grep { /\S/ && !/^\s*#/ } split /\n/, $try // '';
cmp_ok(scalar @cmds, '>=', 8, 'run: curl lines printed');
is(scalar(grep { m{http://127\.0\.0\.1:(\d+)} && $1 != $port } @cmds), 0, 'run: every URL printed uses PAT_PORT');
my $script = $t->write_file('try.sh', join("\n", 'set -e', map { "$_; echo" } @cmds) . "\n");
my $got = `bash $script 2>&1`;
my @out = split /\n/, $got;
note $got;
like($out[0], qr/^pat_[0-9A-Za-z]{34}$/, '1. bootstrap prints a token');
like($got, qr/\{"hello":"alice","token":"laptop","authorization":""\}/, '2. the upstream sees alice, never the token');
like($got, qr/"totalCount":1,"facets":\{"status":\{"active":1,"expired":0,"revoked":0\}\}/, '3. list');
my @toks = grep { /^pat_/ } @out;
is(scalar @toks, 2, '4. rotate prints a new token');
isnt($toks[0], $toks[1], '4. a different token');
like($got, qr/"status":"revoked"/, '5. revoke answers the revoked token');
is(scalar(() = $got =~ /"error":"unauthorized"/g), 2, 'the rotated-out and the revoked token both fail');

stop_run($pid, 'INT', 130);

# again: tokens survive the restart (append-only file under the run dir)
($pid, $text) = start_run();
like($text, qr/password \Q$pw\E/, 'second run keeps the password');
my $list = `curl -s -u alice:$pw http://127.0.0.1:$port/v1/personal-access-tokens`;
like($list, qr/"totalCount":2,"facets":\{"status":\{"active":0,"expired":0,"revoked":2\}\}/,
     'tokens survived the restart');

# the example's scoped location and introspection
my $mk = sub {
    my $body = shift;
    my $j = `curl -s -u alice:$pw -H 'Content-Type: application/json' -d '$body' http://127.0.0.1:$port/v1/personal-access-tokens`;
    return ($j =~ /"token":"(pat_[0-9A-Za-z]+)"/)[0];
};
my $admin = $mk->('{"name":"ops","scopes":["admin"]}');
my $plain = $mk->('{"name":"plain"}');
ok($admin && $plain, 'example: tokens with and without "admin"');
my $code = sub { `curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $_[0]' http://127.0.0.1:$port$_[1]` };
is($code->($admin, '/api/admin/x'), '200', 'example: /api/admin/ with "admin": 200');
is($code->($plain, '/api/admin/x'), '403', 'example: /api/admin/ without it: 403');
is($code->($plain, '/api/x'), '200', 'example: /api/ without it: 200');
like(`curl -s -d token=$admin http://127.0.0.1:$port/oauth/introspect`,
     qr/"active":true.*"scope":"admin"/, 'example: /oauth/introspect answers');

# README's API block, as printed (the port and the run dir moved)
{
    my $readme = $t->read_file("$root/README.md");
    my ($block) = $readme =~ /^```sh\n(API=http:\/\/127\.0\.0\.1:8080\/.*?)^```$/ms;
    ok($block, "README's API block found");
    $block =~ s/127\.0\.0\.1:8080/127.0.0.1:$port/g;
    $block =~ s/\.run\/password/$rd\/password/g;
    $t->write_file('readme-api.sh', "set -eu\n$block");
    my @got = split /\n/, `bash @{[ $t->path('readme-api.sh') ]} 2>&1`;
    is($?, 0, "README's API block runs") or diag join "\n", @got;
    is(scalar @got, 5, "README's API block: five answers") or diag join "\n", @got;
    like($got[0] // '', qr/"hello":"alice","token":"ci deploy"/, "README's API block: the upstream sees alice");
    like($got[1] // '', qr/"name":"ci deploy".*"totalCount":1,/, "README's API block: the list");
    is($got[2], '401', "README's API block: the rotated-out token fails");
    like($got[3] // '', qr/"status":"revoked"/, "README's API block: revoke");
    is($got[4], '401', "README's API block: the revoked token fails");
}
stop_run($pid, 'INT', 130);

# SIGTERM to build.sh alone: it stops both
($pid, $text) = start_run();
like($text, qr/nginx is listening on http:\/\/127\.0\.0\.1:$port /, 'third run: nginx listening');
stop_run($pid, 'TERM', 143);

# nginx ends by itself: build.sh stops Redis and exits with nginx's status
($pid, $text) = start_run();
like($text, qr/nginx is listening on http:\/\/127\.0\.0\.1:$port /, 'fourth run: nginx listening');
stop_run($pid, 'nginx-quit', 0);

my $log = $t->read_file('run/error.log') // '';
unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'run: error.log clean');
unlike($log, qr/\Q$toks[0]\E|\Q$toks[1]\E/, 'run: no token in error.log');

# a busy port (PAT_PORT, then PAT_PORT+1): build.sh run says that nginx
# did not start, exits non-zero and stops the Redis it started
for my $busy ($port, $up) {
    my $name = $busy == $port ? 'busy PAT_PORT' : 'busy PAT_PORT+1';
    my $dir = $t->path("run-busy-$busy");
    my $occupier = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $busy,
                                         Proto => 'tcp', Listen => 5, ReuseAddr => 1)
        or die "listen on $busy: $!";
    my $out = $t->path("run-busy-$busy.out");
    my $bpid = spawn_run($dir, $out);
    my $st = wait_exit($bpid, 30);
    ok(defined $st, "$name: build.sh run ends by itself");
    if (!defined $st) { kill 'TERM', $bpid; $st = wait_exit($bpid, 15); if (!defined $st) { kill 'KILL', -$bpid; waitpid $bpid, 0 } }
    close $occupier;
    my $text = $t->read_file($out) // '';
    ok(defined $st && $st >> 8 != 0 && !($st & 127), "$name: non-zero exit")
        or diag 'status ' . ($st // 'none');
    like($text, qr/bind\(\) to 127\.0\.0\.1:$busy failed \(98: Address already in use\)/, "$name: nginx's bind error is shown");
    like($text, qr/nginx did not start on 127\.0\.0\.1:$port and 127\.0\.0\.1:$up/, "$name: build.sh says nginx did not start");
    unlike($text, qr/nginx is listening|unbound variable/, "$name: no listening message, no shell error");
    like($t->read_file("$dir/redis.log") // '', qr/ready to accept connections/i, "$name: its Redis had started");
    no_procs_left($dir, $name);
}

$t->done;
done_testing;
