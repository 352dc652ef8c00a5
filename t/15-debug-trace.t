# error_log debug: every Redis connection state, command and answer, the
# cache's hits, misses and untrusted probes, and each API step leave a
# trace; no trace of ours carries a token, its secret part, its digest or
# the Redis password.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use PatTest;
use PatApi qw(api gateway_conf);

my $nginx = $ENV{PAT_NGINX} || '/usr/sbin/nginx';
plan skip_all => "$nginx is built without --with-debug"
    unless `$nginx -V 2>&1` =~ /--with-debug/;

my $password = 'debug-trace-pw-' . int(rand(1e9));
my $t = PatTest->new;
$t->start_redis(password => $password);
$t->nginx_conf(error_log_level => 'debug', http => gateway_conf(
    redis => "%%REDIS%% password=$password",
    extra => 'auth_pat_cache zone=pat:1m ttl=10s;'));
$t->start_nginx;

# the subscription must be in sync before the cache answers
my ($tok, $st);
my $r = api($t, POST => '', user => 'alice', body => { name => 'dbg' });
is($r->{status}, 201, 'create');
$tok = $r->{json}{data}{token};
my $id = $r->{json}{data}{id};
for (1 .. 50) {
    $st = $t->get('/static/protected.txt', { Authorization => "Bearer $tok" });
    last if $t->error_log =~ /auth_pat cache hit/;
    select undef, undef, undef, 0.05;
}
is($st->{status}, 200, 'the token works');
is(api($t, GET => '', user => 'alice')->{status}, 200, 'list');
$r = api($t, POST => "/$id/rotate", user => 'alice');
is($r->{status}, 201, 'rotate');
my $new = $r->{json}{data};
is(api($t, DELETE => "/$new->{id}", user => 'alice')->{status}, 200,
   'revoke');
is($t->get('/static/protected.txt',
           { Authorization => "Bearer $new->{token}" })->{status}, 401,
   'the revoked token is refused');

my $log = $t->error_log;
my @ours = grep { /\[debug\] \d+#\d+: (?:\*\d+ )?auth_pat[ :]/ }
           split /\n/, $log;
cmp_ok(scalar @ours, '>', 20, 'traces of the module: ' . scalar @ours);

for my $want (
    [ qr/auth_pat redis auth_pat:cmd:\d+: connecting to/, 'connect' ],
    [ qr/auth_pat redis auth_pat:cmd:\d+: handshake of \d+ commands/,
      'handshake' ],
    [ qr/auth_pat redis auth_pat:cmd:\d+: ready/, 'ready' ],
    [ qr/auth_pat redis auth_pat:sub:\d+: subscribed/, 'subscribed' ],
    [ qr/auth_pat redis auth_pat:cmd:\d+: command \S+ HMGET queued/,
      'a command written' ],
    [ qr/auth_pat redis command \S+ answered/, 'a command answered' ],
    [ qr/auth_pat cache miss/, 'cache miss' ],
    [ qr/auth_pat cache hit/, 'cache hit' ],
    [ qr/auth_pat invalidation feed in sync/, 'feed in sync' ],
    [ qr/auth_pat lookup sent/, 'lookup sent' ],
    [ qr/auth_pat api step: revoke: mark the metadata/, 'a revoke step' ],
    [ qr/auth_pat api step: rotate: claim the old token/, 'a rotate step' ],
    [ qr/auth_pat api step: list: read the (?:index|page by createdAt)/, 'a list step' ],
    [ qr/auth_pat access refused: 401/, 'a refusal' ],
) {
    ok((grep { $_ =~ $want->[0] } @ours), "trace: $want->[1]");
}

my $key = $t->key;
my @secrets = ($password);
for my $s ($tok, $new->{token}) {
    push @secrets, $s, substr($s, 8, 20), hmac_sha256_hex($s, $key);
}
my $leaks = 0;
for my $line (@ours) {
    $leaks += grep { index($line, $_) >= 0 } @secrets;
}
is($leaks, 0, 'no trace of ours carries a token, its digest or the '
   . 'password (' . scalar(@secrets) . ' secrets, ' . scalar(@ours)
   . ' lines)');

$t->done;
done_testing;
