# `./build.sh run`: Redis and nginx from nginx.conf.example on 127.0.0.1:8080;
# the curl lines it prints work as printed; Ctrl-C stops both; tokens
# survive a restart.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use PatTest;

if (IO::Socket::INET->new(PeerAddr => '127.0.0.1:8080', Timeout => 1)
    || IO::Socket::INET->new(PeerAddr => '127.0.0.1:8081', Timeout => 1)) {
    plan skip_all => 'port 8080 or 8081 is in use';
}

my $t = PatTest->new;
my $rd = $t->path('run');
my $root = $t->repo_root;

sub start_run {
    my $out = $t->path('run.out');
    my $pid = fork // die;
    if ($pid == 0) {
        POSIX::setsid();
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT or die;
        $ENV{PAT_RUN_DIR} = $rd;
        exec "$root/build.sh", 'run' or POSIX::_exit(127);
    }
    my $text = '';
    for (1..200) {
        $text = $t->read_file('run.out') // '';
        last if $text =~ /^# 5\. Revoke/m && $text =~ /^\s*$/m && $text =~ /NEWID.*\n.*\n.*\n.*\n\s*\z/;
        sleep 0.05;
    }
    return ($pid, $text);
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

sub stop_run {
    my ($pid) = @_;
    kill 'INT', -$pid;
    my $gone = 0;
    for (1..100) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) { $gone = 1; last }
        sleep 0.05;
    }
    ok($gone, 'Ctrl-C stops build.sh run');
    my @left;
    for (1..100) {
        @left = procs_under($rd);
        last unless @left;
        sleep 0.05;
    }
    is("@left", '', 'no nginx or redis left behind');
}

my ($pid, $text) = start_run();
like($text, qr/nginx is listening on http:\/\/127\.0\.0\.1:8080/, 'run: nginx listening');
my ($pw) = $text =~ /Bootstrap user: alice, password (\S+)/;
ok($pw, 'run: a generated password is printed');

# the lines after "Try", without comments, exactly as printed
my ($try) = $text =~ /Try, in another terminal.*?\n(.*)\z/s;
my @cmds = grep { /\S/ && !/^\s*#/ } split /\n/, $try // '';
cmp_ok(scalar @cmds, '>=', 8, 'run: curl lines printed');
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

stop_run($pid);

# again: tokens survive the restart (append-only file under the run dir)
($pid, $text) = start_run();
like($text, qr/password \Q$pw\E/, 'second run keeps the password');
my $list = `curl -s -u alice:$pw http://127.0.0.1:8080/v1/personal-access-tokens`;
like($list, qr/"totalCount":2,"facets":\{"status":\{"active":0,"expired":0,"revoked":2\}\}/,
     'tokens survived the restart');
stop_run($pid);

my $log = $t->read_file('run/error.log') // '';
unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'run: error.log clean');
unlike($log, qr/\Q$toks[0]\E|\Q$toks[1]\E/, 'run: no token in error.log');

$t->done;
done_testing;
