# Redis error replies and records this release did not write (issue 13,
# items 2 and 4): every API step that Redis refuses is 503 "unavailable",
# never 500; a revoke refused after it deleted the validation record still
# tells every cache (an uncounted PUBLISH when the script's INCR is
# refused), and a retry completes it; wrong-typed keys and malformed
# records are 503 with an [error] line, never a crash.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use PatTest;
use PatApi qw(api gateway_conf);
use PatToken qw(seed_token now_ms);
use PatLoad qw(burst);

my $A = PatTest->new;
my $redis = $A->start_redis;
my $B = PatTest->new;
$B->{key} = $A->key;
my $conf = gateway_conf(redis => "127.0.0.1:$redis->{port}",
                        extra => "auth_pat_cache zone=patcache:1m ttl=600s;");
$A->nginx_conf(http => $conf);
$B->nginx_conf(http => $conf);
$A->start_nginx;
$B->start_nginx;
$B->{issued} = $A->{issued} = [];
ok($A->wait_linked($A) && $B->wait_linked($A), 'every worker of both nginx subscribed');

sub hmgets { my $i = $A->redis_cmd('INFO', 'commandstats'); $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0 }
sub statuses {
    my ($t, $tok, $n) = @_;
    my $res = burst(port => $t->port, concurrency => 4,
        requests => [ map { { path => '/static/protected.txt',
                              headers => { Authorization => "Bearer $tok" } } } 1 .. $n ]);
    my %s; $s{ $_->{status} }++ for @$res;
    return join ',', map { "$_=$s{$_}" } sort keys %s;
}
sub warm {    # until both workers of t answer from the cache
    my ($t, $tok) = @_;
    for (1 .. 50) {
        statuses($t, $tok, 8);
        my $h = hmgets();
        statuses($t, $tok, 8);
        return 1 if hmgets() == $h;
        sleep 0.05;
    }
    return 0;
}
sub create {
    my ($user, $name) = @_;
    my $r = api($A, POST => '', user => $user, body => { name => $name });
    return $r->{json}{data} // die "create failed: $r->{status} $r->{content}\n";
}
sub list_status {
    my ($user, $id) = @_;
    my $r = api($A, GET => '?page_size=100', user => $user);
    my ($t) = grep { $_->{id} eq $id } @{ $r->{json}{items} || [] };
    return $t ? $t->{status} : "none ($r->{status})";
}
sub unavailable {
    my ($r, $what) = @_;
    is($r->{status}, 503, "$what: 503");
    is(($r->{json} || {})->{error}, 'unavailable', "$what: error \"unavailable\"");
}

# --- out of memory (maxmemory 1, noeviction)
my $t1 = create('bob', 'one');
my $t2 = create('bob', 'two');
ok(warm($A, $t1->{token}) && warm($B, $t1->{token}), 'token one cached by both nginx');

$A->redis_cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$A->redis_cmd('CONFIG', 'SET', 'maxmemory', '1');

unavailable(api($A, POST => '', user => 'bob', body => { name => 'three' }), 'OOM: create');
unavailable(api($A, DELETE => "/$t1->{id}", user => 'bob'), 'OOM: revoke');
is(statuses($A, $t1->{token}, 8), '401=8', 'OOM: the revoked token is 401 at once on the nginx that revoked it');
is(statuses($B, $t1->{token}, 8), '401=8', 'OOM: and at once on the other nginx, whose cache held it');
like($A->error_log, qr/\[error\].*a revocation for user "bob" could not be counted.*OOM/,
     'OOM: the uncounted invalidation is logged');

unavailable(api($A, POST => "/$t2->{id}/rotate", user => 'bob'), 'OOM: rotate');
is(statuses($A, $t2->{token}, 4), '200=4', 'OOM: a refused rotation leaves the old token working');

my $r = api($A, GET => '', user => 'bob');
is($r->{status}, 200, 'OOM: the list (reads only) works');

$A->redis_cmd('CONFIG', 'SET', 'maxmemory', '0');
$r = api($A, DELETE => "/$t1->{id}", user => 'bob');
is($r->{status}, 200, 'memory back: the retried revoke answers 200');
is($r->{json}{data}{status}, 'revoked', 'memory back: revoked');
is(list_status('bob', $t1->{id}), 'revoked', 'memory back: the list says revoked');
is(statuses($B, $t1->{token}, 4), '401=4', 'memory back: still 401');
$r = api($A, POST => "/$t2->{id}/rotate", user => 'bob');
is($r->{status}, 201, 'memory back: rotate works');

# --- a sequence key that holds no number: revokes are 503, caches told
my $t3 = create('carol', 'three');
ok(warm($B, $t3->{token}), 'token three cached');
$A->redis_cmd('SET', 'pat:inval:seq', 'x');
unavailable(api($A, DELETE => "/$t3->{id}", user => 'carol'), 'non-numeric inval:seq: revoke');
is(statuses($B, $t3->{token}, 4), '401=4', 'non-numeric inval:seq: the other cache heard of it');
like($A->error_log, qr/\[error\].*could not be counted \(ERR.*not an integer/,
     'non-numeric inval:seq: logged');
$A->redis_cmd('DEL', 'pat:inval:seq');
$r = api($A, DELETE => "/$t3->{id}", user => 'carol');
is($r->{status}, 200, 'key gone: the retried revoke completes');

# --- wrong-typed keys of a user
$A->redis_cmd('SET', 'pat:{u:dave}:i', 'x');
$A->redis_cmd('SET', 'pat:{u:dave}:m', 'x');
unavailable(api($A, GET => '', user => 'dave'), 'a string for the list index: list');
unavailable(api($A, POST => '', user => 'dave', body => { name => 'n' }), 'a string for the index: create');
unavailable(api($A, GET => '/123e4567-e89b-42d3-a456-426614174000', user => 'dave'),
            'a string for the metadata: GET by id');
unavailable(api($A, DELETE => '/123e4567-e89b-42d3-a456-426614174000', user => 'dave'),
            'a string for the metadata: revoke');
like($A->error_log, qr/\[error\].*WRONGTYPE/, 'wrong type: an [error] line');

# --- malformed validation records (seeded past the API)
my @bad_validation = (
    [ 'an id of 36 dashes',    i => '-' x 36 ],
    [ 'an id too short',       i => '123e4567' ],
    [ 'an id of 36 letters',   i => 'z' x 36 ],
    [ 'an empty user',         u => '' ],
    [ 'a user of 257 bytes',   u => 'u' x 257 ],
    [ 'a name of bad UTF-8',   n => "\xff\xfe" ],
    [ 'a name with a newline', n => "a\nb" ],
    [ 'a name of 201 chars',   n => 'n' x 201 ],
    [ 'expiry not a number',   e => 'soon' ],
    [ 'expiry negative',       e => '-5' ],
    [ 'expiry past year 5000', e => '99999999999999999' ],
    [ 'created not a number',  c => '12x' ],
    [ 'a bad scope',           s => 'a  b' ],
);
for my $case (@bad_validation) {
    my ($what, $field, $value) = @$case;
    my $tok = seed_token($A, user => 'erin', name => 'x', expires => now_ms() + 3600_000);
    $A->redis_cmd('HSET', "pat:v:$tok->{digest}", $field, $value);
    my $res = $A->get('/static/protected.txt', { Authorization => "Bearer $tok->{token}" });
    is($res->{status}, 503, "validation record with $what: 503");
}
{
    my $tok = seed_token($A, user => 'erin', name => 'x');
    $A->redis_cmd('HDEL', "pat:v:$tok->{digest}", 'i');
    is($A->get('/static/protected.txt', { Authorization => "Bearer $tok->{token}" })->{status}, 503,
       'validation record without its id: 503');
}
like($A->error_log, qr/\[error\].*unexpected validation record/, 'malformed validation records: an [error] line');

# --- malformed metadata records
my $good = create('frank', 'good');
my $raw = $A->redis_cmd('HGET', 'pat:{u:frank}:m', $good->{id});
my @bad_meta = (
    [ 'not JSON',              '{nope' ],
    [ 'a JSON array',          '[1,2]' ],
    [ 'an id of 36 dashes',    sub { $_[0] =~ s/"id":"[^"]+"/"id":"------------------------------------"/r } ],
    [ 'a numeric name',        sub { $_[0] =~ s/"name":"[^"]+"/"name":7/r } ],
    [ 'an empty name',         sub { $_[0] =~ s/"name":"[^"]+"/"name":""/r } ],
    [ 'createdAt a string',    sub { $_[0] =~ s/"c":\d+/"c":"yesterday"/r } ],
    [ 'createdAt negative',    sub { $_[0] =~ s/"c":\d+/"c":-1/r } ],
    [ 'expiresAt too far',     sub { $_[0] =~ s/"e":(?:\d+|null)/"e":1e300/r } ],
    [ 'scopes a string',       sub { $_[0] =~ s/"s":\[[^\]]*\]/"s":"admin"/r } ],
    [ 'a bad scope',           sub { $_[0] =~ s/"s":\[[^\]]*\]/"s":["a b"]/r } ],
    [ 'rotatedFrom not a UUID', sub { $_[0] =~ s/"rf":null/"rf":"x"/r } ],
);
for my $case (@bad_meta) {
    my ($what, $v) = @$case;
    my $rec = ref $v ? $v->($raw) : $v;
    isnt($rec, $raw, "metadata with $what: the record is changed") if ref $v;
    $A->redis_cmd('HSET', 'pat:{u:frank}:m', $good->{id}, $rec);
    unavailable(api($A, GET => '', user => 'frank'), "metadata with $what: list");
    unavailable(api($A, GET => "/$good->{id}", user => 'frank'), "metadata with $what: GET by id");
}
$A->redis_cmd('HSET', 'pat:{u:frank}:m', $good->{id}, $raw);
is(api($A, GET => '', user => 'frank')->{status}, 200, 'metadata restored: the list works');
like($A->error_log, qr/\[error\].*unexpected metadata record in redis, user "frank"/,
     'malformed metadata: an [error] line naming the user');

unlike($A->error_log . $B->error_log, qr/\b500\b.*internal|exited on signal/, 'no 500, no crash');
$B->done;
$A->done(allow => qr/WRONGTYPE|OOM|not an integer|holds no number/);
done_testing;
