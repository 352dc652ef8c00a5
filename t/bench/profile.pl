#!/usr/bin/env perl
# ./build.sh profile: instructions per request, counted by valgrind's
# callgrind, for the scenarios of the benchmark (a, b, c, and f, g: a
# token with 5 scopes at a location requiring 2):
#
#   (a) a static file, no auth
#   (b) auth_pat with auth_pat_cache (every request a hit)
#   (c) auth_pat without a cache (every request a Redis lookup)
#
# Unlike requests/s, an instruction count does not drift with the load of
# a shared machine, so it shows what a change to the hot path costs.  One
# nginx (master_process off) runs under callgrind; for each scenario the
# counters are zeroed, wrk drives it, and the counters are dumped.  The
# functions with the most instructions of their own in (c) follow.
# Note: valgrind runs OpenSSL's generic SHA-256, not the SHA-NI code the
# CPU would use, so HMAC weighs more here than it does natively.
# Environment: PROFILE_SECONDS per scenario (default 5); PROFILE_NO_STATUS=1
# leaves out the auth_pat_status location (metrics not counted).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use POSIX ();
use Time::HiRes qw(sleep);
use PatTest;
use PatToken qw(seed_token);

my $SECS = $ENV{PROFILE_SECONDS} || 5;

my $t = PatTest->new;
my $redis = $t->start_redis;
my $key = $t->key_file;
my $port = $t->port;

my $tok = seed_token($t, user => 'profile', name => 'profile token');
# (f), (g): the token of the benchmark's scope scenarios, at a location
# that requires two of its five scopes
my $stok = seed_token($t, user => 'profile', name => 'profile token',
                      scopes => 'deploy read:packages repo:read repo:write tokens:write',
                      created => int(Time::HiRes::time() * 1000));
my $out = $t->path('callgrind.out');

# auth_pat_cache is an http-level directive: (a) and (b) run on an nginx
# with the cache, (c) on the same nginx configured without it
sub with_nginx {
    my ($cache, $body) = @_;
    # the metrics counted, as in production (PROFILE_NO_STATUS=1: a build
    # without auth_pat_status, for a before/after ratio)
    my $status = $ENV{PROFILE_NO_STATUS} ? '' : 'location = /metrics { auth_pat_status; }';
    $t->nginx_conf(workers => 1, error_log_level => 'notice', http => <<"EOF");
access_log off;
auth_pat_redis 127.0.0.1:$redis->{port} timeout=5s;
auth_pat_key_file $key;
$cache
server {
    listen 127.0.0.1:%%PORT%% backlog=4096;
    location = /static.txt { alias %%HTML%%/protected.txt; }
    location = /auth.txt { auth_pat "profile"; alias %%HTML%%/protected.txt; }
    $status
    location = /scoped.txt {
        auth_pat "profile";
        auth_pat_scope repo:read tokens:write;
        alias %%HTML%%/protected.txt;
    }
}
EOF
    my $c = $t->read_file('nginx.conf');
    $c =~ s/^daemon on;$/daemon off;/m;
    $c =~ s/^master_process on;$/master_process off;/m;
    $t->write_file('nginx.conf', $c, 0644);
    unlink glob("$out*");

    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $t->path('valgrind.log') or POSIX::_exit(1);
        exec('valgrind', '--tool=callgrind', "--callgrind-out-file=$out",
             $ENV{NGINX_BIN} || '/usr/sbin/nginx', '-p', $t->dir . '/', '-c', $t->conf_path)
            or POSIX::_exit(1);
    }
    my $up = 0;
    for (1 .. 100) {
        my $r = $t->get('/auth.txt', { Authorization => "Bearer $tok->{token}" });
        if ($r->{status} == 200) { $up = 1; last }
        sleep 0.2;
    }
    die "nginx under valgrind did not come up:\n" . $t->read_file('valgrind.log') unless $up;
    $body->($pid);
    kill 'QUIT', $pid;
    waitpid $pid, 0;
}

my (%ir, %top);
sub scenario {
    my ($pid, $name, $path, $token) = @_;
    $token //= $tok->{token};
    my $ctl = sub { system("callgrind_control $_[0] $pid >/dev/null 2>&1") == 0
                        or die "callgrind_control $_[0] failed\n" };
    $ctl->('-z');
    my $w = `wrk -t1 -c16 -d${SECS}s -H 'Authorization: Bearer $token' http://127.0.0.1:$port$path 2>&1`;
    $ctl->('-d');
    my ($reqs) = $w =~ /(\d+) requests in/;
    die "wrk failed:\n$w" unless $reqs;
    die "scenario $name: non-2xx answers\n$w" if $w =~ /Non-2xx/;
    my ($dump) = sort { -M $a <=> -M $b } glob("$out.*");
    my $ann = `callgrind_annotate --threshold=100 $dump 2>/dev/null`;
    my ($total) = $ann =~ /^\s*([\d,]+)\s.*PROGRAM TOTALS/m;
    die "no totals in $dump" unless defined $total;
    $total =~ tr/,//d;
    $ir{$name} = { reqs => $reqs, per => $total / $reqs };
    my (@top, $own);
    for (split /\n/, $ann) {
        next unless /^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S+)\s+\[([^\]]+)\]/;
        my ($cnt, $pct, $fn, $obj) = ($1, $2, $3, $4);
        next if $pct >= 99.99;
        $cnt =~ tr/,//d;
        $fn =~ s/^.*:(?=[^:]+$)//;
        $obj =~ s{.*/}{};
        $own += $cnt if $obj eq 'ngx_http_auth_pat_module.so';
        push @top, sprintf "  %6.0f  %s (%s)", $cnt / $reqs, $fn, $obj if @top < 20;
    }
    $top{$name} = \@top;
    $ir{$name}{own} = ($own // 0) / $reqs;
}

with_nginx('auth_pat_cache zone=profile:1m ttl=600s;', sub {
    scenario($_[0], a => '/static.txt');
    scenario($_[0], b => '/auth.txt');
    scenario($_[0], f => '/scoped.txt', $stok->{token});
});
with_nginx('', sub {
    scenario($_[0], c => '/auth.txt');
    scenario($_[0], g => '/scoped.txt', $stok->{token});
});

my %label = (a => 'static file, no auth', b => 'auth_pat, cache',
             c => 'auth_pat, no cache (Redis every request)',
             f => 'as (b), 5 scopes held, 2 required',
             g => 'as (c), 5 scopes held, 2 required');
print "\ninstructions per request under callgrind (wrk -t1 -c16 -d${SECS}s, nginx 1 worker)\n\n";
print "| scenario | requests | instructions/request | beyond (a) | in the module's own functions |\n"
    . "|---|---:|---:|---:|---:|\n";
for my $name (qw(a b c f g)) {
    printf "| (%s) %s | %d | %.0f | %+.0f | %.0f |\n", $name, $label{$name}, $ir{$name}{reqs},
        $ir{$name}{per}, $ir{$name}{per} - $ir{a}{per}, $ir{$name}{own};
}
print "\n(c): the functions with the most instructions of their own, per request\n";
print "$_\n" for @{ $top{c} };

my @p = $t->error_log_problems;
die "error.log problems:\n@p" if @p;
