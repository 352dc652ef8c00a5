# auth_pat_status: the metrics in the Prometheus text format, summed
# over both workers.  Each scrape is checked by `promtool check metrics`
# (Debian's prometheus) and parsed by Debian's python3-prometheus-client;
# the counters move by exactly what the test did between two scrapes:
# - checks by result, cache hits, misses and untrusted, entries;
# - API requests by route and status, tokens created, revoked, rotated;
# - the Redis endpoint: up, commands, errors by kind, reconnects, the
#   latency histogram; Redis stopped: up 0, the errors counted;
# - a reload keeps the counters; a POST is 405;
# - cache bytes are the entries' (0 when empty); le labels as clients
#   print them; a NOSCRIPT that is resent is no error; fail-fast writes to
#   a replica are not counted; up holds across workers' clocks;
# - a reload to another Redis drops the old address's series; a new build
#   of the module keeps the zone, one of another layout empties it;
# - 70 sentinels with long, escaped unix paths: every series rendered, the
#   65th address on under "other", a failed query counted once (refused).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP ();
use File::Spec ();
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api);

my $py = '/usr/bin/python3';
# (./build.sh test installs both: their absence is a failure, not a skip)
BAIL_OUT('t/39 needs /usr/bin/promtool (prometheus) and python3-prometheus-client')
    unless -x '/usr/bin/promtool' && system("$py -c 'import prometheus_client' 2>/dev/null") == 0;

my $slack = $ENV{PAT_SANITIZE} ? 3 : 1;
my $t = PatTest->new;
my $redis = $t->start_redis;
my $http = <<'EOF';
auth_pat_redis %%REDIS_LINE%% timeout=1s keepalive=200ms;
auth_pat_key_file %%KEY%%;
auth_pat_cache zone=m:1m ttl=10s;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
    location /scoped/ { auth_pat "t"; auth_pat_scope admin; alias %%HTML%%/; }
    location /d/ { auth_pat "t"; alias %%HTML%%/; index protected.txt; }
    location = /metrics { auth_pat_status; }
}
EOF
# the configuration, with auth_pat_redis' address(es) and main lines
sub conf {
    my ($redis_line, %o) = @_;
    (my $h = $http) =~ s/%%REDIS_LINE%%/$redis_line/;
    $t->nginx_conf(workers => 2, http => $h, %o);
}
conf('%%REDIS%%');
$t->start_nginx;

my $parse = <<'PY';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        key = s.name + json.dumps(s.labels, sort_keys=True, separators=(",", ":"))
        out[key] = s.value
print(json.dumps(out))
PY
$t->write_file('parse.py', $parse);

# a scrape: promtool's verdict and the samples, "name{labels}" => value
sub scrape {
    my $r = $t->get('/metrics');
    die "scrape: $r->{status}" unless $r->{status} == 200;
    $t->write_file('scrape.txt', $r->{content});
    my $f = $t->path('scrape.txt');
    my $lint = `promtool check metrics < $f 2>&1`;
    my $lint_ok = $? == 0;
    my $json = `$py @{[ $t->path('parse.py') ]} < $f`;
    return { ok => $lint_ok, lint => $lint, res => $r, text => $r->{content},
             s => JSON::PP->new->decode($json) };
}
sub v {
    my ($sc, $name, %l) = @_;
    my $key = $name . JSON::PP->new->canonical->encode(\%l);
    return $sc->{s}{$key} // 0;
}
sub delta { my ($a, $b, @k) = @_; v($b, @k) - v($a, @k) }
sub check {
    my ($tok, $path) = @_;
    return $t->get($path // '/static/protected.txt',
                   defined $tok ? { Authorization => $tok } : {})->{status};
}

my $s0 = scrape();
ok($s0->{ok}, 'promtool check metrics: clean') or diag $s0->{lint};
is($s0->{res}{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8', 'the Prometheus text format 0.0.4');
is($s0->{res}{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is(v($s0, 'auth_pat_cache_entries'), 0, 'cache entries: 0 at first');
is(v($s0, 'auth_pat_cache_bytes'), 0, 'cache bytes: 0 while the cache is empty (the entries\' bytes, not the slab\'s)');

# --- the API: by route and status
my $addr = "127.0.0.1:$redis->{port}";
my $c1 = api($t, POST => '', user => 'mia', body => { name => 'one', scopes => ['admin'] });
my $c2 = api($t, POST => '', user => 'mia', body => { name => 'two' });
my @st = ($c1->{status}, $c2->{status},
          api($t, GET => '', user => 'mia')->{status},
          api($t, GET => "/$c2->{json}{data}{id}", user => 'mia')->{status},
          api($t, GET => '/config', user => 'mia')->{status},
          api($t, GET => '/self', bearer => $c1->{json}{data}{token})->{status},
          api($t, GET => '/nope/nope', user => 'mia')->{status},
          api($t, POST => '', user => 'mia', body => { name => '' })->{status});
my $rot = api($t, POST => "/$c2->{json}{data}{id}/rotate", user => 'mia');
push @st, $rot->{status}, api($t, DELETE => "/$rot->{json}{data}{id}", user => 'mia')->{status};
is("@st", '201 201 200 200 200 200 404 422 201 200', 'the API calls answer as expected');
my $s1 = scrape();
ok($s1->{ok}, 'promtool: clean after the API calls') or diag $s1->{lint};
my %want = (
    'create 201' => 2, 'create 422' => 1, 'list 200' => 1, 'get 200' => 1, 'config 200' => 1,
    'self 200' => 1, 'other 404' => 1, 'rotate 201' => 1, 'revoke 200' => 1,
);
my %got;
for my $k (keys %{ $s1->{s} }) {
    next unless $k =~ /^auth_pat_api_requests_total\{"route":"(\w+)","status":"(\w+)"\}$/;
    my $d = $s1->{s}{$k} - ($s0->{s}{$k} // 0);
    $got{"$1 $2"} = $d if $d;
}
is_deeply(\%got, \%want, 'auth_pat_api_requests_total moved by exactly the calls made') or diag explain \%got;
is(delta($s0, $s1, 'auth_pat_tokens_created_total'), 2, 'tokens created: 2');
is(delta($s0, $s1, 'auth_pat_tokens_rotated_total'), 1, 'tokens rotated: 1');
is(delta($s0, $s1, 'auth_pat_tokens_revoked_total'), 1, 'tokens revoked: 1');

# --- the checks, by result, and the cache
my $tok = $c1->{json}{data}{token};
my $plain = $c2->{json}{data}{token};
my @c = (check("Bearer $tok"), check("Bearer $tok"), check("Bearer $tok"),
         check(undef), check('Basic eDp5'),
         check('Bearer'),
         check('Bearer pat_0000000000000000000000000000000000000'),
         check("Bearer $plain"),
         check("Bearer $tok", '/scoped/protected.txt'));
my $s2 = scrape();
ok($s2->{ok}, 'promtool: clean after the checks') or diag $s2->{lint};
is("@c", '200 200 200 401 401 400 401 401 200', 'the checks answer as expected');
my %res = (ok => 4, no_credentials => 2, invalid_request => 1, invalid_token => 2,
           unavailable => 0, insufficient_scope => 0);
is_deeply({ map { $_ => delta($s1, $s2, 'auth_pat_checks_total', result => $_) } keys %res }, \%res,
          'auth_pat_checks_total moved by exactly the checks made');
# the token was checked by /self already (in the cache since): 4 hits;
# the rotated-out token is not in Redis: a miss
is(delta($s1, $s2, 'auth_pat_cache_hits_total'), 4, 'cache hits: 4');
is(delta($s1, $s2, 'auth_pat_cache_misses_total'), 1, 'cache misses: 1 (the revoked token)');
cmp_ok(v($s2, 'auth_pat_cache_entries'), '>=', 1, 'cache entries: at least the token');
cmp_ok(v($s2, 'auth_pat_cache_bytes'), '>', 0, 'cache bytes');

# an internal redirect (index) runs the access phase again: one check
is(check("Bearer $tok", '/d/'), 200, 'an index redirect: 200');
my $s2b = scrape();
is(delta($s2, $s2b, 'auth_pat_checks_total', result => 'ok'), 1,
   'a request redirected internally is one check');
$s2 = $s2b;

# a scope missing: insufficient_scope
is(check("Bearer $c2->{json}{data}{token}", '/scoped/protected.txt'), 401, '(the rotated-out token: 401)');
my $n = api($t, POST => '', user => 'mia', body => { name => 'plain' })->{json}{data}{token};
is(check("Bearer $n", '/scoped/protected.txt'), 403, 'a token without the scope: 403');
my $s3 = scrape();
is(delta($s2, $s3, 'auth_pat_checks_total', result => 'insufficient_scope'), 1, 'insufficient_scope: 1');

# --- the Redis endpoint
is(v($s3, 'auth_pat_redis_up', addr => $addr), 1, "redis $addr: up");
cmp_ok(delta($s0, $s3, 'auth_pat_redis_commands_total', addr => $addr), '>=', 20, 'commands counted');
my $count = v($s3, 'auth_pat_redis_latency_seconds_count', addr => $addr);
cmp_ok($count, '>=', 20, 'latency: observed');
is(v($s3, 'auth_pat_redis_latency_seconds_bucket', addr => $addr, le => '+Inf'), $count,
   'latency: the +Inf bucket is the count');
cmp_ok(v($s3, 'auth_pat_redis_latency_seconds_bucket', addr => $addr, le => '0.005'), '>', 0,
       'latency: loopback answers within 5 ms');
is(v($s3, 'auth_pat_redis_errors_total', addr => $addr, kind => $_), 0, "errors ($_): 0")
    for qw(timeout refused error down);

# le as Prometheus' clients print it (python3-prometheus-client's float
# repr, which Prometheus 3 normalises to), in order, +Inf last
my @le = $s3->{text} =~ /^auth_pat_redis_latency_seconds_bucket\{addr="\Q$addr\E",le="([^"]+)"\}/mg;
is("@le", '0.001 0.002 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 +Inf', 'le labels: canonical, +Inf last');

# --- a reload keeps them
$t->reload;
my $s4 = scrape();
cmp_ok(v($s4, 'auth_pat_tokens_created_total'), '>=', v($s3, 'auth_pat_tokens_created_total'),
       'a reload keeps the counters');
cmp_ok(v($s4, 'auth_pat_checks_total', result => 'ok'), '>=', v($s3, 'auth_pat_checks_total', result => 'ok'),
       'a reload keeps the checks');

# --- a NOSCRIPT (the server lost the scripts) is resent: no error
sub kinds { my ($a, $b, $at) = @_; return { map { $_ => delta($a, $b, 'auth_pat_redis_errors_total', addr => $at // $addr, kind => $_) } qw(timeout refused error down) } }
$t->redis_cmd('SCRIPT', 'FLUSH');
my $s4a = scrape();
is(api($t, POST => '', user => 'mia', body => { name => 'after-flush' })->{status}, 201,
   'a create after SCRIPT FLUSH: 201 (the script is loaded again)');
my $s4b = scrape();
is_deeply(kinds($s4a, $s4b), { timeout => 0, refused => 0, error => 0, down => 0 },
          'a NOSCRIPT resent is counted as no error');

# --- a replica refuses writes: once an error reply, then failed fast,
# neither "down" (the connection is up) nor counted again
$t->redis_cmd('REPLICAOF', '127.0.0.1', $t->free_port);
my @w = map { api($t, POST => '', user => 'mia', body => { name => "ro$_" })->{status} } 1 .. 4;
my $s4c = scrape();
ok(!grep({ $_ == 201 } @w), "writes to a replica fail (@w)");
my $k = kinds($s4b, $s4c);
is($k->{down}, 0, 'writes refused for a replica: not "down"');
cmp_ok($k->{error}, '<=', 2, "writes refused for a replica: an error at most once per worker ($k->{error})");
$t->redis_cmd('REPLICAOF', 'NO', 'ONE');
ok(PatTest::until_ok(5 * $slack, sub { api($t, POST => '', user => 'mia', body => { name => 'rw' })->{status} == 201 }),
   'a master again: a create works');

# --- up across workers: with timer_resolution each worker's clock lags by
# up to 500 ms, and the last reply may be stamped by a worker whose clock
# is ahead of the scraping one's; up stays 1
conf('%%REDIS%%', main => 'timer_resolution 500ms;');
$t->reload;
my $up = 0;
my $scrapes = 30;
for (1 .. $scrapes) {
    my $sc = scrape();
    $up++ if v($sc, 'auth_pat_redis_up', addr => $addr) == 1;
    sleep 0.07;
}
is($up, $scrapes, 'auth_pat_redis_up: 1 in every scrape, whichever worker answers');
conf('%%REDIS%%');
$t->reload;

# --- Redis stopped: up 0, errors counted, checks unavailable
# (three tokens never checked, so in no cache: checked below)
my @unsent = map { api($t, POST => '', user => 'mia', body => { name => "u$_" })->{json}{data}{token} } 1 .. 3;
$t->stop_redis;
my ($s5, $down);
my $end = time + 5 * $slack;
while (time < $end) {
    $s5 = scrape();
    $down = v($s5, 'auth_pat_redis_up', addr => $addr) == 0;
    last if $down;
    sleep 0.1;
}
ok($down, 'Redis stopped: auth_pat_redis_up 0 within keepalive + timeout');
my $uncached = api($t, POST => '', user => 'x', body => { name => 'y' })->{status};
is($uncached, 503, 'an API call: 503');
is(check('Bearer pat_1111111111111111111111111111111111111'), 401, '(a malformed token is still 401)');
my $s6 = scrape();
ok($s6->{ok}, 'promtool: clean while Redis is down') or diag $s6->{lint};
cmp_ok(v($s6, 'auth_pat_redis_errors_total', addr => $addr, kind => 'refused')
       + v($s6, 'auth_pat_redis_errors_total', addr => $addr, kind => 'down'), '>', 0,
       'Redis stopped: refused/down errors counted');
cmp_ok(v($s6, 'auth_pat_redis_reconnects_total', addr => $addr), '>', 0, 'reconnects counted');
is(delta($s5, $s6, 'auth_pat_api_requests_total', route => 'create', status => '503'), 1, 'create 503 counted');

# commands not sent for want of a connection: "down", once each
my $s7 = scrape();
my @dn = map { check("Bearer $_") } @unsent;
my $s8 = scrape();
is("@dn", '503 503 503', 'checks with Redis down: 503');
is(delta($s7, $s8, 'auth_pat_redis_errors_total', addr => $addr, kind => 'down'), 3,
   'three checks unsent: down +3');

# --- the method
is($t->http(POST => '/metrics', { content => 'x' })->{status}, 405, 'POST /metrics: 405');

# --- a reload to another Redis: the old address's series are gone
my $redis2 = $t->start_redis(name => 'redis2');
my $addr2 = "127.0.0.1:$redis2->{port}";
conf('%%REDIS:redis2%%');
$t->reload;
my $s9;
ok(PatTest::until_ok(5 * $slack, sub { $s9 = scrape(); v($s9, 'auth_pat_redis_up', addr => $addr2) == 1 }),
   "after a reload to $addr2: it is up");
ok($s9->{ok}, 'promtool: clean after the reload') or diag $s9->{lint};
is_deeply([ grep { /"addr":"\Q$addr\E"/ } keys %{ $s9->{s} } ], [], "no series of $addr any more");
cmp_ok(v($s9, 'auth_pat_checks_total', result => 'ok'), '>=', v($s3, 'auth_pat_checks_total', result => 'ok'),
       '(the module\'s counters are kept)');

# --- a new build of the module, same layout: the zone is kept (its tag is
# not an address in the .so); another layout: the zone is emptied
my $created = v($s9, 'auth_pat_tokens_created_total');
cmp_ok($created, '>', 0, '(tokens were created)');
SKIP: {
    my $same = module_build(undef);
    my $other = module_build(999);
    skip "no build tree to link the module again", 4 unless defined $same && defined $other;
    conf('%%REDIS:redis2%%', load_module => 0, main => "load_module $same;");
    $t->reload;
    is(v(scrape(), 'auth_pat_tokens_created_total'), $created,
       'a new build of the same layout keeps the counters');
    my $log_off = length $t->error_log;
    conf('%%REDIS:redis2%%', load_module => 0, main => "load_module $other;");
    $t->reload;
    my $s10 = scrape();
    ok($s10->{ok}, 'promtool: clean with the zone emptied') or diag $s10->{lint};
    is(v($s10, 'auth_pat_tokens_created_total'), 0, 'a build of another layout empties the zone');
    like(substr($t->error_log, $log_off), qr/metrics zone holds layout \d+, this module's is 999/,
         'and says so at notice');
}
conf('%%REDIS:redis2%%');
$t->reload;

# --- 70 sentinels, each a unix path of 106 bytes, 85 of them '"' (each
# escaped in a label): the first 64 have their series, the rest "other";
# a sentinel whose connect failed is not also "down" for the query unsent
my @sent = map { 'unix:/nonexistent/' . ('"' x 85) . sprintf('s%03d', $_) } 1 .. 70;
conf(join(' ', map { "'$_'" } @sent) . ' sentinel=m');
$t->reload;
# the records of the configuration before are reused only a reload later
# (its workers may still be counting): reload once more
sleep 1;
$t->reload;
my $s11;
ok(PatTest::until_ok(10 * $slack, sub { $s11 = scrape(); exists $s11->{s}{'auth_pat_redis_up{"addr":"other"}'} }),
   'the 65th sentinel on: under "other"');
ok($s11->{ok}, 'promtool: clean with 64 long addresses') or diag $s11->{lint};
my %addrs;
for my $key (grep { /^auth_pat_redis_up\{/ } keys %{ $s11->{s} }) {
    my $l = JSON::PP->new->decode(substr($key, length 'auth_pat_redis_up'));
    $addrs{ $l->{addr} } = 1 unless $l->{addr} eq 'other';
}
is(scalar keys %addrs, 64, '64 addresses with an up series');
my @unix = grep { /^unix:/ } keys %addrs;
my $series = sub { my ($a) = @_; scalar grep { my ($j) = /^[a-z_]+(\{.*)$/; ($j ? JSON::PP->new->decode($j)->{addr} // "" : "") eq $a } keys %{ $s11->{s} } };
is(scalar(grep { $series->($_) == 21 } keys %addrs), 64, 'each with all 21 series (the output is not cut short)');
like($s11->{text}, qr/\Qauth_pat_redis_latency_seconds_count{addr="other"}\E \d+\n\z/,
     'the last family rendered to its end');
is(length($unix[0] // ''), length($sent[0]), 'a label value parsed back whole');
is(scalar(grep { v($s11, 'auth_pat_redis_errors_total', addr => $_, kind => 'down') } @unix), 0,
   'sentinels: a failed query is not counted "down" besides "refused"');
is(scalar(grep { v($s11, 'auth_pat_redis_errors_total', addr => $_, kind => 'refused') } @unix), scalar @unix,
   'sentinels: each refused');

done_testing;

# The module linked again from ./build.sh's objects, with metrics.c
# compiled with another NGX_HTTP_AUTH_PAT_METRICS_LAYOUT if $layout: a
# module "of another build", linked as the module is (config's
# -Bsymbolic: nginx dlopen()s modules RTLD_GLOBAL, and without it the new
# .so's calls to its own exported functions would bind to the old one's,
# still loaded during the reload, so the old build's code would run: the
# layout test below fails without it).
sub module_build {
    my ($layout) = @_;
    my $tree = File::Spec->catdir($t->repo_root, 'build', 'nginx');
    my $obj = 'objs/addon/src/ngx_http_auth_pat_metrics.o';
    return undef if $ENV{PAT_MODULE} || !-f "$tree/objs/Makefile" || !-f "$tree/$obj";
    (my $n = `make -s -n -B -C $tree -f objs/Makefile $obj objs/ngx_http_auth_pat_module.so 2>/dev/null`)
        =~ s/\\\n\s*/ /g;
    my @cmd = grep { /\S/ } split /\n/, $n;
    my ($cc) = grep { /\Q$obj\E/ && /\s-c\s/ && /ngx_http_auth_pat_metrics\.c/ } @cmd;
    my ($ld) = grep { /-o\s+objs\/ngx_http_auth_pat_module\.so/ } @cmd;
    return undef unless $cc && $ld;
    my $so = $t->path('auth-pat-' . ($layout // 'same') . '.so');
    my @run;
    if (defined $layout) {
        my $o = $t->path("metrics-$layout.o");
        $cc =~ s/-o\s+\Q$obj\E/-o $o/ or return undef;
        $cc =~ s/\s-c\s/ -DNGX_HTTP_AUTH_PAT_METRICS_LAYOUT=$layout -c /;
        $ld =~ s/\Q$obj\E/$o/g;
        push @run, $cc;
    }
    $ld =~ s/-o\s+objs\/ngx_http_auth_pat_module\.so/-o $so/ or return undef;
    push @run, $ld;
    for (@run) {
        system("cd $tree && $_") == 0 or return undef;
    }
    return $so;
}
