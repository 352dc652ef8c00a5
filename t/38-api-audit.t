# The audit trail: every create, revoke and rotate, and every refused
# escalation (a bearer caller asking for a scope it does not hold or a
# later expiry, a rotation widening the scopes), is one `notice` line
# (event, user, token id, prefix, caller, client), and with
# `auth_pat_audit on` one entry of the stream NS{audit}, with the same
# fields and the time:
# - the lines and the entries match what the test did, one each, and
#   hold no plaintext;
# - off: lines, but no stream;
# - a later expiry than the caller's is refused and audited;
# - a user name cannot forge a line ('"', '\' and control bytes escaped);
# - maxlen= trims the stream (MAXLEN ~);
# - the append is best effort: a stream key of another type (WRONGTYPE)
#   fails the append, not the answer, and is logged once a minute;
# - nginx -t refuses bad forms.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use PatTest;
use PatApi qw(api gateway_conf uuid_re);

my $t = PatTest->new;
# small stream nodes, so that MAXLEN ~ trims at this scale
$t->start_redis(conf => "stream-node-max-entries 4\n");

# --- nginx -t
for my $c (
    [ 'auth_pat_audit on maxlen=0;', qr/invalid "maxlen=0"/ ],
    [ 'auth_pat_audit on size=3;', qr/invalid parameter "size=3"/ ],
    [ 'auth_pat_audit yes;', qr/invalid value "yes"/ ],
    [ 'auth_pat_audit off maxlen=3;', qr/invalid value "off"|invalid parameter/ ],
    [ "auth_pat_audit on;\nauth_pat_audit off;", qr/is duplicate/ ],
) {
    $t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%', extra => $c->[0]));
    my ($rc, $out) = $t->nginx_test;
    ok($rc != 0 && $out =~ $c->[1], "nginx -t refuses: $c->[0]") or diag $out;
}

sub audit_lines {
    return [ grep { /auth_pat audit: / } split /\n/, $t->error_log ];
}
sub stream {
    my $e = $t->redis_cmd('XRANGE', 'pat:{audit}', '-', '+');
    return [ map { +{ id => $_->[0], @{ $_->[1] } } } @{ ref $e eq 'ARRAY' ? $e : [] } ];
}
# the flows, as alice (api_user) and with her token (bearer)
sub flows {
    my $c = api($t, POST => '', user => 'alice', body => { name => 'a', scopes => ['read'] });
    my $d = $c->{json}{data};
    my $b = api($t, POST => '', bearer => $d->{token}, body => { name => 'b', scopes => ['read'] });
    my $rot = api($t, POST => "/$d->{id}/rotate", user => 'alice');
    my $rev = api($t, DELETE => "/$b->{json}{data}{id}", user => 'alice');
    # refused: a scope the caller lacks, a rotation that widens
    my $n = $rot->{json}{data};
    my $wide = api($t, POST => '', bearer => $n->{token}, body => { name => 'c', scopes => ['write'] });
    my $widen = api($t, POST => "/$n->{id}/rotate", user => 'alice', body => { scopes => [qw(read write)] });
    is(join(' ', map { $_->{status} } $c, $b, $rot, $rev, $wide, $widen),
       '201 201 201 200 403 422', 'the flows answer as usual');
    return { a => $d, b => $b->{json}{data}, rotated => $n };
}

# --- off: the lines, no stream
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%'));
$t->start_nginx;
my $k = flows();
my $lines = audit_lines();
is(scalar @$lines, 6, 'off: six audit lines (create, create, rotate, revoke, two refusals)')
    or diag join "\n", @$lines;
my ($a, $b, $n) = @$k{qw(a b rotated)};
like($lines->[0], qr/\[notice\].*auth_pat audit: create user="alice" token=\Q$a->{id}\E prefix=\Q$a->{prefix}\E caller=api_user client=127\.0\.0\.1/,
     'create by api_user');
like($lines->[1], qr/auth_pat audit: create user="alice" token=\Q$b->{id}\E prefix=\Q$b->{prefix}\E caller=\Q$a->{id}\E client=127\.0\.0\.1/,
     'create by a token: the caller is its id');
like($lines->[2], qr/auth_pat audit: rotate user="alice" token=\Q$a->{id}\E prefix=\Q$a->{prefix}\E new_token=\Q$n->{id}\E new_prefix=\Q$n->{prefix}\E caller=api_user/,
     'rotate: the old and the new token');
like($lines->[3], qr/auth_pat audit: revoke user="alice" token=\Q$b->{id}\E prefix=\Q$b->{prefix}\E caller=api_user/,
     'revoke');
like($lines->[4], qr/auth_pat audit: refused user="alice" token=- prefix=- reason="scope not held" caller=\Q$n->{id}\E/,
     'refused: a scope the caller does not hold');
like($lines->[5], qr/auth_pat audit: refused user="alice" token=\Q$n->{id}\E prefix=- reason="rotation widens the scopes" caller=api_user/,
     'refused: a rotation that widens the scopes');
is($t->redis_cmd('EXISTS', 'pat:{audit}'), 0, 'off: no stream');
$t->stop_nginx;

# --- on: the same events in the stream
$t->write_file('error.log', '');
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%', extra => 'auth_pat_audit on;'));
$t->start_nginx;
my $before = time * 1000;
$k = flows();
($a, $b, $n) = @$k{qw(a b rotated)};
my $s;
PatTest::until_ok(3, sub { $s = stream(); @$s >= 6 });
is(scalar @$s, 6, 'on: six entries in pat:{audit}');
my @want = (
    { event => 'create', user => 'alice', caller => 'api_user', token => $a->{id}, prefix => $a->{prefix} },
    { event => 'create', user => 'alice', caller => $a->{id}, token => $b->{id}, prefix => $b->{prefix} },
    { event => 'rotate', user => 'alice', caller => 'api_user', token => $a->{id}, prefix => $a->{prefix},
      newToken => $n->{id}, newPrefix => $n->{prefix} },
    { event => 'revoke', user => 'alice', caller => 'api_user', token => $b->{id}, prefix => $b->{prefix} },
    { event => 'refused', user => 'alice', caller => $n->{id}, reason => 'scope not held' },
    { event => 'refused', user => 'alice', caller => 'api_user', token => $n->{id},
      reason => 'rotation widens the scopes' },
);
for my $i (0 .. $#want) {
    my %got = %{ $s->[$i] // {} };
    delete $got{id};
    my $ms = delete $got{time} // 0;
    is($got{client}, '127.0.0.1', "entry $i: client");
    delete $got{client};
    ok($ms >= $before - 1000 && $ms <= time * 1000 + 1000, "entry $i: time in ms");
    is_deeply(\%got, $want[$i], "entry $i: $want[$i]{event}") or diag explain \%got;
}
is(scalar @{ audit_lines() }, 6, 'on: the lines too');
my $dump = join ' ', map { join ' ', %$_ } @$s;
my $logs = $t->error_log;
for my $tok ($a->{token}, $b->{token}, $n->{token}) {
    ok(index($dump, $tok) < 0 && index($logs, $tok) < 0, 'no plaintext in the stream or the log');
}

# --- a user name cannot forge a line
{
    my $c = api($t, POST => '', user => "ev\"il\\ x=1", body => { name => 'q' });
    is($c->{status}, 201, 'an odd user name: 201');
    my ($l) = grep { /\Q$c->{json}{data}{id}\E/ } @{ audit_lines() };
    like($l // '', qr/ user="ev\\x22il\\x5c x=1" /, 'its quote and backslash are escaped in the line');
    PatTest::until_ok(3, sub { @{ stream() } >= 7 });
    is(stream()->[-1]{user}, "ev\"il\\ x=1", 'the stream holds it as it is');
}

# --- refused: a later expiry than the caller's own
{
    my $exp = PatApi::iso_ms(int(time + 86400) * 1000);
    my $c = api($t, POST => '', user => 'dan', body => { name => 'short', expiresAt => $exp });
    my $r = api($t, POST => '', bearer => $c->{json}{data}{token}, body => { name => 'long', expiresAt => undef });
    is($r->{status}, 403, 'a token asking for a longer life: 403');
    like(audit_lines()->[-1], qr/auth_pat audit: refused user="dan" token=- prefix=- reason="expiry beyond the caller's" caller=\Q$c->{json}{data}{id}\E/,
         'refused: a later expiry');
}
$t->stop_nginx;

# --- maxlen= trims the stream
$t->redis_cmd('DEL', 'pat:{audit}');
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%%', extra => 'auth_pat_audit on maxlen=5;'));
$t->start_nginx;
my $made = 0;
for my $i (1 .. 30) {
    $made++ if api($t, POST => '', user => 'bob', body => { name => "t$i" })->{status} == 201;
}
is($made, 30, 'maxlen: 30 creates');
PatTest::until_ok(3, sub { $t->redis_cmd('XINFO', 'STREAM', 'pat:{audit}') });
my $info = { @{ $t->redis_cmd('XINFO', 'STREAM', 'pat:{audit}') } };
is($info->{'entries-added'}, 30, 'maxlen: 30 appended');
cmp_ok($t->redis_cmd('XLEN', 'pat:{audit}'), '<=', 5 + 4, 'maxlen=5: the stream is trimmed to about 5 (one node of 4 more at most)');
$t->stop_nginx;

# --- best effort: the append fails, the answer does not
$t->write_file('error.log', '');
$t->redis_cmd('DEL', 'pat:{audit}');
$t->redis_cmd('SET', 'pat:{audit}', 'not a stream');
$t->nginx_conf(workers => 1, http => gateway_conf(redis => '%%REDIS%%', extra => 'auth_pat_audit on;'));
$t->start_nginx;
my @st = map { api($t, POST => '', user => 'carol', body => { name => "w$_" })->{status} } 1 .. 3;
is("@st", '201 201 201', 'a failing append: the creates still answer 201');
PatTest::until_ok(3, sub { $t->error_log =~ /not appended/ });
my @warn = grep { /\[warn\].*an audit event was not appended to the stream: WRONGTYPE/ } split /\n/, $t->error_log;
is(scalar @warn, 1, 'a failing append: one warn line (once a minute), naming the error')
    or diag $t->error_log;
is(scalar @{ audit_lines() }, 3, 'a failing append: the notice lines are still written');
$t->stop_nginx;

# --- a repeated DELETE revokes nothing, and is not audited again; a
# refusal by auth_pat_api_scope is audited; a rotation whose WAIT fails
# after the swap is audited as what it did: the old token revoked
$t->redis_cmd('DEL', 'pat:{audit}');
$t->nginx_conf(http => gateway_conf(redis => '%%REDIS%% replicas=1', extra => 'auth_pat_api_scope tokens;'));
$t->start_nginx;
{
    # no replica: a create is not waited for, a revoke's WAIT fails
    my $d = api($t, POST => '', user => 'erin', body => { name => 'e', scopes => ['read'] })->{json}{data};
    my $again = api($t, DELETE => "/$d->{id}", user => 'erin');
    is($again->{status}, 503, 'replicas=1, no replica: the revoke is not confirmed (503)');
    my $st = api($t, DELETE => "/$d->{id}", user => 'erin')->{status};
    is($st, 503, '... nor the repeated one');
    my @rev = grep { /audit: revoke user="erin" token=\Q$d->{id}\E/ } @{ audit_lines() };
    is(scalar @rev, 1, 'two DELETEs of one token: one revoke audited (the first revoked it)')
        or diag join "\n", @rev;

    my $f = api($t, POST => '', user => 'erin', body => { name => 'f', scopes => ['read'] })->{json}{data};
    my $rot = api($t, POST => "/$f->{id}/rotate", user => 'erin');
    is($rot->{status}, 503, 'a rotation whose WAIT fails: 503');
    my @l = grep { !/audit: create/ && /user="erin" token=\Q$f->{id}\E/ } @{ audit_lines() };
    is(scalar @l, 1, '... one audit line for it (besides its create)') or diag join "\n", @l;
    like($l[0] // '', qr/audit: revoke user="erin" token=\Q$f->{id}\E prefix=\Q$f->{prefix}\E new_token=\S+ new_prefix=\S+ reason="the rotation failed after the old token was revoked" caller=api_user/,
         '... a revoke of the old token, saying the rotation failed after it');
    is($t->get('/static/protected.txt', { Authorization => "Bearer $f->{token}" })->{status}, 401,
       '... and the old token is indeed revoked');

    my $g = api($t, POST => '', user => 'erin', body => { name => 'g', scopes => ['read'] })->{json}{data};
    my $no = api($t, POST => '', bearer => $g->{token}, body => { name => 'h' });
    is($no->{status}, 403, 'auth_pat_api_scope: a token without it may not create');
    like(audit_lines()->[-1], qr/audit: refused user="erin" token=- prefix=- reason="auth_pat_api_scope not held" caller=\Q$g->{id}\E/,
         '... and the refusal is audited');
}
$t->stop_nginx;

# --- two DELETEs within one tick of nginx's cached clock (one worker,
# timer_resolution 1s): the first revokes and is audited, the second not
$t->redis_cmd('DEL', 'pat:{audit}');
$t->nginx_conf(workers => 1, main => 'timer_resolution 1s;',
               http => gateway_conf(redis => '%%REDIS%%', extra => 'auth_pat_audit on;'));
$t->start_nginx;
{
    my $d = api($t, POST => '', user => 'fay', body => { name => 'f' })->{json}{data};
    my @st = map { api($t, DELETE => "/$d->{id}", user => 'fay')->{status} } 1 .. 2;
    is("@st", '200 200', 'two DELETEs in one clock tick: 200 200');
    my @rev = grep { /audit: revoke user="fay"/ } @{ audit_lines() };
    is(scalar @rev, 1, '... one revoke audited') or diag join "\n", @rev;
    is(scalar(grep { $_->{event} eq 'revoke' } @{ stream() }), 1, '... one revoke in the stream');
}
$t->stop_nginx;

done_testing;
