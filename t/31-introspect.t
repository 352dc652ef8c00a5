# RFC 7662 token introspection (auth_pat_introspect): the answer for a
# valid token, field by field against the create answer; {"active": false}
# and nothing else for revoked, expired, malformed and unknown tokens;
# the form's errors (400, 415, 405); Cache-Control: no-store; the use
# counted as lastUsedAt; revocation through one nginx seen at once by the
# cached introspection of another on the same Redis; cached answers equal
# Redis' (inline and out-of-line strings); the body in pieces, chunked,
# pipelined; Redis hung or down is 503, never active; no presented token
# in error.log.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use JSON::PP ();
use PatTest;
use PatApi qw(api gateway_conf iso_ms parse_rfc3339 secrecy_scan uuid_re);
use PatToken qw(make_token now_ms);
use PatLoad qw(burst);

my $A = PatTest->new;
my $redis = $A->start_redis(aof => 1);
my $B = PatTest->new;
$B->{key} = $A->key;

# the gateway (API from X-User, /static/ checked) plus an introspection
# location; both nginx cache checked tokens
sub conf_for {
    my ($zone) = @_;
    my $c = gateway_conf(redis => "127.0.0.1:$redis->{port}",
                         extra => "auth_pat_cache zone=$zone:1m ttl=60s;");
    $c =~ s/(\n    location \/static\/)/\n    location = \/introspect { auth_pat_introspect; }
    location = \/guarded { auth_pat "svc"; add_header X-Caller "[\$pat_user_id]" always;
                           auth_pat_introspect; }$1/
        or die "gateway_conf changed shape\n";
    return $c;
}
$A->nginx_conf(http => conf_for('pa'), error_log_level => 'info');
$B->nginx_conf(http => conf_for('pb'), error_log_level => 'info');
$A->start_nginx;
$B->start_nginx;
$B->{issued} = $A->{issued} = [];
ok($A->wait_linked && $B->wait_linked($A), 'every worker of both nginx linked and subscribed');

my @presented;    # every token string sent to introspection

sub form {
    my ($t, $body, %o) = @_;
    my %h = (exists $o{ctype} ? (defined $o{ctype} ? ('Content-Type' => $o{ctype}) : ())
                              : ('Content-Type' => 'application/x-www-form-urlencoded'));
    return $t->http($o{method} // 'POST', '/introspect', { headers => \%h, content => $body });
}
sub introspect {
    my ($t, $tok, %o) = @_;
    push @presented, $tok;
    return form($t, "token=$tok", %o);
}
sub is_inactive {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, "$what: 200");
    my $j = $r->{json};
    ok(ref $j eq 'HASH' && join(',', keys %$j) eq 'active'
       && JSON::PP::is_bool($j->{active}) && !$j->{active},
       "$what: exactly {\"active\": false}") or diag $r->{content};
    is($r->{headers}{'cache-control'}, 'no-store', "$what: Cache-Control: no-store");
}
sub is_error {
    my ($r, $status, $code, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $status, "$what: $status");
    is($r->{json} && $r->{json}{error}, $code, "$what: error $code") or diag $r->{content};
    ok(defined $r->{json} && defined $r->{json}{message}, "$what: with a message");
}
sub create {
    my ($t, $user, %body) = @_;
    my $r = api($t, POST => '', user => $user, body => { name => 'intro', %body });
    return $r->{json}{data} // die "create failed: $r->{status} $r->{content}\n";
}

# --- a valid token: every field against the create answer
my $exp_ms = now_ms() + 3 * 86400_000;
$exp_ms = $exp_ms - $exp_ms % 1000 + 789;    # milliseconds that floor away
my $t0 = time;
my $tok = create($A, 'alice', name => 'CI deploy', scopes => [qw(repo:write admin repo:read)],
                 expiresAt => iso_ms($exp_ms));
is($tok->{expiresAt}, iso_ms($exp_ms), '(created, expiring at ' . iso_ms($exp_ms) . ')');
my $r = introspect($A, $tok->{token});
is($r->{status}, 200, 'valid token: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'valid token: JSON');
is($r->{headers}{'cache-control'}, 'no-store', 'valid token: Cache-Control: no-store');
my $j = $r->{json} // {};
is_deeply([ sort keys %$j ], [ sort qw(active sub scope exp iat jti token_type name) ],
          'valid token: the RFC 7662 members') or diag $r->{content};
ok(JSON::PP::is_bool($j->{active}) && $j->{active}, 'active: true (a JSON boolean)');
is($j->{sub}, 'alice', 'sub: the user');
is($j->{scope}, 'admin repo:read repo:write', 'scope: sorted, space-separated');
is($j->{jti}, $tok->{id}, 'jti: the token id');
like($j->{jti} // '', uuid_re(), 'jti: a UUID');
is($j->{token_type}, 'Bearer', 'token_type: Bearer');
is($j->{name}, 'CI deploy', 'name: the token name');
is($j->{exp}, int(parse_rfc3339($tok->{expiresAt}) / 1000), 'exp: floor(expiresAt / 1000)');
is($j->{iat}, int(parse_rfc3339($tok->{createdAt}) / 1000), 'iat: createdAt in seconds');
cmp_ok(abs(($j->{iat} // 0) - $t0), '<=', 3, 'iat: within a few seconds of the creation');
like($r->{content}, qr/"exp"\s*:\s*\d+\s*[,}]/, 'exp: a JSON integer');
like($r->{content}, qr/"iat"\s*:\s*\d+\s*[,}]/, 'iat: a JSON integer');
# the cache answers the same (A now holds the token; B asks Redis first)
my $again = introspect($A, $tok->{token})->{json};
is_deeply($again, $j, 'a second introspection (cached): the same answer');
is_deeply(introspect($B, $tok->{token})->{json}, $j, 'the other nginx: the same answer');

# no scopes, no expiry
my $plain = create($A, 'bob', name => 'forever', expiresAt => undef);
is($plain->{expiresAt}, undef, '(created, never expiring)');
$r = introspect($A, $plain->{token});
$j = $r->{json} // {};
is($r->{status}, 200, 'never-expiring token: 200');
ok($j->{active}, 'never-expiring token: active');
ok(!exists $j->{exp}, 'never-expiring token: no exp') or diag $r->{content};
is($j->{scope}, '', 'no scopes: scope ""');
is($j->{sub}, 'bob', 'no scopes: sub');
is($j->{jti}, $plain->{id}, 'no scopes: jti');
is($j->{name}, 'forever', 'no scopes: name');
ok(defined $j->{iat}, 'no scopes: iat');
my $unicode = create($A, 'bob', name => "caf\x{e9} \x{2603}");
is(introspect($A, $unicode->{token})->{json}{name}, "caf\x{e9} \x{2603}", 'a Unicode name comes back intact');

# the form: charset parameter, token_type_hint in any place, percent-encoding
for my $ct ('application/x-www-form-urlencoded; charset=utf-8',
            'application/x-www-form-urlencoded;charset=UTF-8',
            'Application/X-WWW-Form-Urlencoded') {
    $r = introspect($A, $tok->{token}, ctype => $ct);
    ok($r->{status} == 200 && $r->{json} && $r->{json}{active}, "Content-Type $ct: active")
        or diag "$r->{status} $r->{content}";
}
for my $shape ('token=T&token_type_hint=access_token',
               'token_type_hint=refresh_token&token=T',
               'token_type_hint=bogus&token=T&other=1') {
    (my $body = $shape) =~ s/\bT\b/$tok->{token}/;
    $r = form($A, $body);
    ok($r->{status} == 200 && $r->{json} && $r->{json}{active} && ($r->{json}{jti} // '') eq $tok->{id},
       "token_type_hint ignored: $shape") or diag "$r->{status} $r->{content}";
}
(my $enc = $tok->{token}) =~ s/^p/%70/;
$r = form($A, "token=$enc");
ok($r->{status} == 200 && $r->{json} && $r->{json}{active}, 'a percent-encoded token is decoded')
    or diag "$r->{status} $r->{content}";

# a record of an earlier release (no scopes, no creation time): active,
# scope "", no exp, no iat (its creation time is not known)
my $legacy = PatToken::seed_token($A, user => 'olduser', name => 'legacy');
$r = introspect($A, $legacy->{token});
$j = $r->{json} // {};
ok($r->{status} == 200 && $j->{active}, 'a record of an earlier release: active') or diag $r->{content};
is($j->{sub}, 'olduser', 'earlier record: sub');
is($j->{jti}, $legacy->{id}, 'earlier record: jti');
is($j->{name}, 'legacy', 'earlier record: name');
is($j->{scope}, '', 'earlier record: scope ""');
ok(!exists $j->{exp}, 'earlier record: no exp');
ok(!exists $j->{iat}, 'earlier record: no iat');

# the body as the network delivers it: in two pieces, chunked; and two
# introspections on one keep-alive connection
sub raw_status { my ($raw) = @_; my ($st) = $raw =~ m{^HTTP/1\.\d (\d+)}; return $st // 0 }
{
    my $body = "token=$tok->{token}";
    push @presented, $tok->{token};
    my $hdr = "POST /introspect HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            . "Content-Type: application/x-www-form-urlencoded\r\n";
    my $raw = $A->raw_http([ $hdr . 'Content-Length: ' . length($body) . "\r\n\r\n" . substr($body, 0, 12),
                             substr($body, 12) ], pause => 0.3);
    ok(raw_status($raw) == 200 && $raw =~ /"active"\s*:\s*true/, 'a body arriving in two pieces: active')
        or diag $raw;
    $raw = $A->raw_http($hdr . "Transfer-Encoding: chunked\r\n\r\n"
                        . sprintf("%x\r\n%s\r\n", 9, substr($body, 0, 9))
                        . sprintf("%x\r\n%s\r\n", length($body) - 9, substr($body, 9)) . "0\r\n\r\n");
    ok(raw_status($raw) == 200 && $raw =~ /"active"\s*:\s*true/, 'a chunked body: active') or diag $raw;
    my $one = "POST /introspect HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    (my $last = $one) =~ s/\r\n/\r\nConnection: close\r\n/;
    $raw = $A->raw_http($one . $last);
    my @answers = $raw =~ /"active"\s*:\s*true/g;
    is(scalar @answers, 2, 'two introspections pipelined on one connection: both active') or diag $raw;
    # a refused body is not taken for the next request
    my $js = qq({"token":"$tok->{token}"});
    $raw = $A->raw_http("POST /introspect HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                        . 'Content-Length: ' . length($js) . "\r\n\r\n$js" . $last);
    like($raw, qr{^HTTP/1\.1 415 .*HTTP/1\.1 200 .*"active"\s*:\s*true}s,
         'a 415 on a keep-alive connection, then the next request: answered') or diag $raw;
}
$r = form($A, 'token=' . ('a' x 5000));
is_error($r, 413, 'payload_too_large', 'a 5000-byte form');
$r = form($A, 'token=');
ok($r->{status} == 200 && $r->{content} =~ /^\{\s*"active"\s*:\s*false\s*\}$/,
   'an empty token (given, but no token): {"active": false}') or diag "$r->{status} $r->{content}";

# --- inactive: {"active": false} and nothing more
my $rev = create($A, 'alice', name => 'to revoke');
ok(introspect($A, $rev->{token})->{json}{active}, 'before revoke: active');
is(api($A, DELETE => "/$rev->{id}", user => 'alice')->{status}, 200, 'revoke');
is_inactive(introspect($A, $rev->{token}), 'revoked');
is_inactive(introspect($B, $rev->{token}), 'revoked, the other nginx');

(my $badsum = $tok->{token}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
is_inactive(introspect($A, $badsum), 'bad checksum (last character changed)');
is_inactive(introspect($A, 'garbage'), 'garbage');
is_inactive(introspect($A, 'pat_'), 'the prefix alone');
is_inactive(introspect($A, 'x' x 300), 'a 300-byte string');
is_inactive(introspect($A, make_token()), 'unknown well-formed token');
is_inactive(introspect($A, make_token('ghp_')), 'well-formed with another prefix');
is_inactive(introspect($A, "Bearer%20$tok->{token}"), '"Bearer <token>" as the value');

my $short_ms = now_ms() + 2000;
my $short = create($A, 'alice', name => 'short', expiresAt => iso_ms($short_ms));
ok(introspect($A, $short->{token})->{json}{active}, 'short-lived, before expiry: active');
ok(introspect($B, $short->{token})->{json}{active}, 'short-lived, before expiry: active on the other nginx');
sleep((parse_rfc3339($short->{expiresAt}) - now_ms()) / 1000 + 0.3);
is_inactive(introspect($A, $short->{token}), 'expired (though cached, ttl 60 s)');
is_inactive(introspect($B, $short->{token}), 'expired, the other nginx');

# --- the form's errors
is_error(form($A, 'token_type_hint=access_token'), 400, 'invalid_request', 'no token parameter');
is_error(form($A, ''), 400, 'invalid_request', 'empty body');
is_error(form($A, "token=$tok->{token}&token=$tok->{token}"), 400, 'invalid_request', 'token given twice');
is_error(form($A, "token=$tok->{token}&token=" . make_token()), 400, 'invalid_request', 'two different tokens');
is_error(form($A, qq({"token":"$tok->{token}"}), ctype => 'application/json'), 415,
         'unsupported_media_type', 'application/json');
is_error(form($A, "token=$tok->{token}", ctype => 'text/plain'), 415,
         'unsupported_media_type', 'text/plain');
is_error(form($A, "token=$tok->{token}", ctype => 'multipart/form-data; boundary=x'), 415,
         'unsupported_media_type', 'multipart/form-data');
is_error(form($A, "token=$tok->{token}", ctype => 'application/x-www-form-urlencodedx'), 415,
         'unsupported_media_type', 'a longer media type sharing the prefix');
{
    my $body = "token=$tok->{token}";
    push @presented, $tok->{token};
    my $raw = $A->raw_http("POST /introspect HTTP/1.0\r\nHost: a\r\nContent-Length: "
                           . length($body) . "\r\n\r\n$body");
    my ($st) = $raw =~ m{^HTTP/1\.\d (\d+)};
    is($st, 415, 'no Content-Type: 415');
    like($raw, qr/"error"\s*:\s*"unsupported_media_type"/, 'no Content-Type: unsupported_media_type');
}
$r = $A->http(GET => '/introspect');
is_error($r, 405, 'method_not_allowed', 'GET');
is($r->{headers}{allow}, 'POST', 'GET: Allow: POST');
$r = form($A, "token=$tok->{token}", method => 'PUT');
is($r->{status}, 405, 'PUT: 405');
is($r->{headers}{allow}, 'POST', 'PUT: Allow: POST');

# --- a use: lastUsedAt
my $use = create($A, 'carol', name => 'used');
my $unused = create($A, 'carol', name => 'unused');
is(api($A, GET => "/$use->{id}", user => 'carol')->{json}{data}{lastUsedAt}, undef,
   'lastUsedAt null before any use');
ok(introspect($A, $use->{token})->{json}{active}, 'introspected once');
my $last;
for (1 .. 40) {
    $last = api($A, GET => "/$use->{id}", user => 'carol')->{json}{data}{lastUsedAt};
    last if defined $last;
    sleep 0.05;
}
ok(defined $last, 'lastUsedAt set after an introspection');
my $lu = defined $last ? parse_rfc3339($last) : 0;
cmp_ok(abs($lu - now_ms()), '<=', 5000, 'lastUsedAt: about now');
my %l = map { $_->{id} => $_ } @{ api($A, GET => '', user => 'carol')->{json}{items} };
is($l{ $use->{id} }{lastUsedAt}, $last, 'the list shows it too');
is($l{ $unused->{id} }{lastUsedAt}, undef, 'an unintrospected token stays null');

# --- revocation is immediate across nginx, whatever B's cache holds
sub hmgets { my $i = $A->redis_cmd('INFO', 'commandstats'); $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0 }
sub burst_intro {    # n introspections on nginx t, 4 at a time; their answers
    my ($t, $tk, $n) = @_;
    push @presented, $tk;
    return burst(port => $t->port, concurrency => 4,
        requests => [ map { { method => 'POST', path => '/introspect', body => "token=$tk",
                              headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } } } 1 .. $n ]);
}
sub actives {
    my ($res) = @_;
    my %n;
    for my $x (@$res) {
        my $k = $x->{status} != 200 ? "status $x->{status}"
              : $x->{body} =~ /"active"\s*:\s*true/ ? 'true'
              : $x->{body} =~ /^\s*\{\s*"active"\s*:\s*false\s*\}\s*$/ ? 'false' : "other $x->{body}";
        $n{$k}++;
    }
    return \%n;
}
sub warm {     # until every worker of t answers the token from its cache
    my ($t, $tk) = @_;
    for (1 .. 50) {
        burst_intro($t, $tk, 8);
        $t->get('/static/protected.txt', { Authorization => "Bearer $tk" }) for 1 .. 2;
        my $h = hmgets();
        my $a = actives(burst_intro($t, $tk, 8));
        return 1 if hmgets() == $h && ($a->{true} // 0) == 8;
        sleep 0.05;
    }
    return 0;
}
my $x = create($A, 'dave', name => 'cross');
ok(warm($B, $x->{token}), 'B answers the token from its cache (no Redis lookup)');
my $h = hmgets();
is_deeply(actives(burst_intro($B, $x->{token}, 12)), { true => 12 }, 'B: cached, active');
is(hmgets() - $h, 0, 'B: without asking Redis');
is(api($A, DELETE => "/$x->{id}", user => 'dave')->{status}, 200, 'revoke through A');
is_inactive(introspect($B, $x->{token}), 'B, the very next introspection');
is_deeply(actives(burst_intro($B, $x->{token}, 16)), { false => 16 }, 'B: inactive on every worker');
is($B->get('/static/protected.txt', { Authorization => "Bearer $x->{token}" })->{status}, 401,
   'B: and auth_pat refuses it');

# rotation through A likewise
my $y = create($A, 'dave', name => 'rotating');
ok(warm($B, $y->{token}), 'B caches another token');
my $rot = api($A, POST => "/$y->{id}/rotate", user => 'dave');
is($rot->{status}, 201, 'rotate through A');
is_inactive(introspect($B, $y->{token}), 'B, the rotated-out token, very next introspection');
$r = introspect($B, $rot->{json}{data}{token} // '');
ok($r->{json} && $r->{json}{active} && ($r->{json}{jti} // '') eq ($rot->{json}{data}{id} // '-'),
   'B: the new token is active, under its new id') or diag $r->{content};

# the cache answers what Redis answers: strings that fit inline in a
# node (16 bytes of user, name and scopes together), one byte more, and
# the largest a token may hold
my @shapes = (
    [ 'abcd', 'efgh', ['ijklmnop'] ],                   # 16 bytes
    [ 'abcd', 'efgh', ['ijklmnopq'] ],                  # 17
    [ 'ab', 'cdefghi', ['j', 'k', 'l'] ],               # 2 + 7 + "j k l"
    [ 'u', 'n', [] ],
    [ 'U' x 120, "\x{2603}" x 200, [ map { sprintf('%02d', $_) . ('s' x 62) } 1 .. 32 ] ],
);
for my $i (0 .. $#shapes) {
    my ($user, $name, $scopes) = @{ $shapes[$i] };
    my $c = create($A, $user, name => $name, scopes => $scopes,
                   $i % 2 ? (expiresAt => iso_ms(now_ms() + 86400_000 + $i)) : ());
    my $cold = introspect($A, $c->{token})->{json} // {};
    my $want = { active => JSON::PP::true, sub => $user, scope => join(' ', sort @$scopes),
                 jti => $c->{id}, token_type => 'Bearer', name => $name,
                 iat => int(parse_rfc3339($c->{createdAt}) / 1000) };
    $want->{exp} = int(parse_rfc3339($c->{expiresAt}) / 1000) if defined $c->{expiresAt};
    is_deeply($cold, $want, "shape $i: the answer from Redis") or diag explain $cold;
    ok(warm($B, $c->{token}), "shape $i: B caches it");
    my %seen;
    for my $x (@{ burst_intro($B, $c->{token}, 8) }) {
        my $got = eval { JSON::PP->new->utf8->decode($x->{body}) };
        $seen{ JSON::PP->new->canonical->encode($got // { raw => $x->{body} }) }++;
    }
    is_deeply([ keys %seen ], [ JSON::PP->new->canonical->encode($cold) ],
              "shape $i: every cached answer on B is the same") or diag explain \%seen;
}

secrecy_scan($A);

# --- a location that auth_pat guards: $pat_* stay the caller's, whatever
# token it asks about
{
    my $svc = create($A, 'service', name => 'svc');
    my $vic = create($A, 'victim', name => 'v');
    my $ask = sub {
        my ($tok) = @_;
        push @presented, $tok;
        return $A->http(POST => '/guarded', { content => "token=$tok",
            headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
                         Authorization => "Bearer $svc->{token}" } });
    };
    my $g = $ask->($vic->{token});
    is($g->{json}{sub}, 'victim', 'guarded: the answer is about the token asked about');
    is($g->{headers}{'x-caller'}, '[service]', 'guarded: $pat_user_id is still the caller');
    $g = $ask->('garbage');
    is_inactive($g, 'guarded, garbage');
    is($g->{headers}{'x-caller'}, '[service]', 'guarded, garbage: $pat_user_id is the caller');
    is($A->http(POST => '/guarded', { content => "token=$vic->{token}",
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } })->{status}, 401,
       'guarded, no caller token: 401');
}

# --- nginx -t warns of an introspection body that may reach a temporary file
for my $case (['', 1], ['client_max_body_size 4k;', 0]) {
    my ($line, $warns) = @$case;
    my ($rc, $out) = PatApi::conf_test("    location = /i { $line auth_pat_introspect; }");
    is($rc, 0, "nginx -t: introspection with '$line'") or diag $out;
    is(($out =~ /would be written to a temporary file/) ? 1 : 0, $warns,
       $warns ? '... warns of a chunked body on disk' : '... no warning');
}

# --- auth_pat_introspect and auth_pat_api cannot share a location
{
    my ($rc, $out) = PatApi::conf_test('    location / { auth_pat_api; auth_pat_introspect; }');
    ok($rc != 0 && $out =~ /cannot share a location/, 'nginx -t: auth_pat_api with auth_pat_introspect')
        or diag $out;
}

# --- Redis hung (SIGSTOP): a token no cache holds is 503 within the
# timeout (1 s), never active, never inactive
my $z = create($A, 'erin', name => 'down');
my $hung = create($A, 'erin', name => 'hung');
$A->kill_redis($redis, 'STOP');
{
    my $t1 = time;
    $r = introspect($A, $hung->{token});
    my $took = time - $t1;
    is_error($r, 503, 'unavailable', 'Redis hung, an uncached token');
    cmp_ok($took, '<=', 2.5, 'Redis hung: answered within timeout + slack') or diag "took $took s";
    is($r->{headers}{'retry-after'}, '1', 'Redis hung: Retry-After: 1');
    my $a = actives(burst_intro($A, make_token(), 6));
    is_deeply($a, { 'status 503' => 6 }, 'Redis hung: unknown tokens 503 on every worker') or diag explain $a;
}
$A->kill_redis($redis, 'CONT');
my $back = 0;
for (1 .. 60) {
    my $a = actives(burst_intro($A, $hung->{token}, 4));
    if (($a->{true} // 0) == 4) { $back = 1; last }
    sleep 0.1;
}
ok($back, 'Redis resumed: the token is active again');
ok($A->wait_linked && $B->wait_linked($A), 'both nginx linked again');

# --- Redis down: 503 unavailable, never active, even with a warm cache
ok(warm($B, $z->{token}), 'B caches a token before Redis goes');
ok(introspect($A, $z->{token})->{json}{active}, 'A: active before Redis goes');
$A->stop_redis($redis);
sleep 0.2;
for my $pair ([A => $A], [B => $B]) {
    my ($n, $t) = @$pair;
    $r = introspect($t, $z->{token});
    is_error($r, 503, 'unavailable', "$n, Redis down");
    is($r->{headers}{'retry-after'}, '1', "$n, Redis down: Retry-After: 1");
    my $a = actives(burst_intro($t, $z->{token}, 12));
    ok(!$a->{true}, "$n, Redis down: never active") or diag explain $a;
    is($a->{'status 503'}, 12, "$n, Redis down: 503 on every worker") or diag explain $a;
    $r = introspect($t, make_token());
    is($r->{status}, 503, "$n, Redis down: an unknown token is 503, not inactive");
    is_inactive(introspect($t, 'garbage'), "$n, Redis down: garbage needs no Redis");
}

# --- no presented token in any log
for my $pair ([A => $A], [B => $B]) {
    my ($n, $t) = @$pair;
    my $logs = $t->error_log . ($t->read_file('access.log') // '');
    my %seen = map { $_ => 1 } grep { length($_) >= 10 && index($logs, $_) >= 0 }
               @presented, @{ $A->{issued} };
    is_deeply([ sort keys %seen ], [], "$n: no presented token in error.log (info) or access.log")
        or diag join "\n", sort keys %seen;
}

$B->done;
$A->done;
done_testing;
