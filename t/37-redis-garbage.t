# A "Redis" that answers garbage (issue 13, fuzzing): replies no real
# Redis sends, each a reader error or a reply of the wrong shape, are a
# reset with an [error] line and 503 for the requests, never a crash or
# an allocation of what the reply claims. "*2147483647" was found by
# ./build.sh fuzz (t/fuzz/crashes/resp-huge-array-oom): 16 GB, at once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatProxy qw(serve stop);
use PatToken qw(make_token);

my @cases = (
    [ 'an array of 2^31 - 1 elements', "*2147483647\r\n" ],
    [ 'an array of 2^23 elements',     "*8388608\r\n" ],
    [ 'nested huge arrays',            "*1\r\n*1\r\n*2000000000\r\n" ],
    [ 'eight nested arrays of 2^22',   "*4194304\r\n" x 8 ],
    [ 'a negative bulk length',        "\$-7\r\n" ],
    [ 'an unknown type byte',          "?what\r\n" ],
    [ 'a bulk length past 512 MB',     "\$9999999999\r\n" ],
    [ 'an integer of letters',         ":abc\r\n" ],
    [ 'a status where an array goes',  "+OK\r\n" ],
);

for my $case (@cases) {
    my ($what, $reply) = @$case;
    my $t = PatTest->new;
    my $port = $t->free_port;
    # every command gets the garbage, once per read; then the peer waits
    my $pid = serve($port, sub {
        my ($c) = @_;
        my $end = time + 20;
        while (time < $end) {
            my $n = sysread($c, my $buf, 65536);
            last unless $n;
            syswrite($c, $reply) // last;
        }
    });
    $t->nginx_conf(workers => 1, http => <<"EOF2");
auth_pat_redis 127.0.0.1:$port timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
    }
}
EOF2
    $t->start_nginx;
    my $tok = make_token();
    my %st;
    my $t0 = time;
    for (1 .. 6) {
        my $r = $t->get('/static/protected.txt', { Authorization => "Bearer $tok" });
        $st{ $r->{status} }++;
        $r = $t->get('/v1/personal-access-tokens', { 'X-User' => 'u' });
        $st{ $r->{status} }++;
    }
    is_deeply(\%st, { 503 => 12 }, "$what: checks and lists answer 503");
    ok(time - $t0 < 12 * 2.5, "$what: each within the timeout");
    my @w = $t->worker_pids;
    is(scalar @w, 1, "$what: the worker is alive");
    like($t->error_log, qr/\[error\].*auth_pat: redis "127\.0\.0\.1:$port" (?:sent a malformed reply|sent an unexpected reply|cannot serve|did not answer|error|refused)/,
         "$what: an [error] line names the Redis");
    $t->done(allow => qr/malformed reply|unexpected reply|out of memory/);
    stop($pid);
}

done_testing;
