# Scopes on tokens (issue 12, item 1, as far as issue and storage go):
# create and rotate take "scopes", checked (RFC 6749 scope-tokens, 1-64
# characters, at most 32 after dropping duplicates), stored sorted, shown
# in the token object; auth_pat_scopes_allowed limits what create may
# ask for; a rotation keeps them or narrows them; GET /config lists the
# allowed ones.  A bearer caller grants only scopes it holds and no later
# expiry than its own, and auth_pat_api_scope guards the API's writes.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use JSON::PP;
use PatApi qw(api api_env);

my $t = api_env(max_tokens => 50, http => <<'EOF');
server {
    listen 127.0.0.1:%%PORT2%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
        auth_pat_scopes_allowed repo:read repo:write;
    }
    location /v3/tokens/ {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
        auth_pat_api_scope tokens:write;
    }
    location /v4/tokens/ {
        auth_pat "v4";
        auth_pat_scope a;
        auth_pat_api;
        auth_pat_api_scope tokens:write;
        limit_req zone=api_by_token;
    }
    location /v5/tokens/ {
        auth_pat_api;
        limit_req zone=api_by_token;
    }
    location /v6/tokens {
        auth_pat "v6";
        auth_pat_api;
        limit_except GET HEAD { auth_pat_scope tokens:write; }
    }
}
limit_req_zone $pat_token_id zone=api_by_token:1m rate=1r/m;
limit_req_status 429;
EOF

sub create {
    my ($scopes, %o) = @_;
    return api($t, POST => '', user => 'sam', %o,
               body => { name => 'x', defined $scopes ? (scopes => $scopes) : () });
}

# --- well-formed
my $r = create(undef);
is($r->{status}, 201, 'no scopes: 201');
is_deeply($r->{json}{data}{scopes}, [], 'no scopes: []');
$r = create([qw(b a b c a)]);
is($r->{status}, 201, 'duplicates: 201');
is_deeply($r->{json}{data}{scopes}, [qw(a b c)], 'sorted, without duplicates');
my $id = $r->{json}{data}{id};
is_deeply(api($t, GET => "/$id", user => 'sam')->{json}{data}{scopes},
          [qw(a b c)], 'stored: GET /{id} shows them');
my ($listed) = grep { $_->{id} eq $id }
               @{ api($t, GET => '?page_size=100', user => 'sam')->{json}{items} };
is_deeply($listed->{scopes}, [qw(a b c)], 'and the list');
$r = create(['x' x 64, '!#$%&\'()*+,-./:;<=>?@[]^_`{|}~']);
is($r->{status}, 201, '64 characters, and every allowed punctuation: 201');
$r = create([map { "s$_" } 1 .. 32]);
is($r->{status}, 201, '32 scopes: 201');
$r = create([(map { "s$_" } 1 .. 32), 's1']);
is($r->{status}, 201, '33 with a duplicate (32 distinct): 201');
is(scalar @{ $r->{json}{data}{scopes} }, 32, '... holding 32');

# --- refused
sub refused {
    my ($scopes, $status, $what, $re) = @_;
    my $x = api($t, POST => '', user => 'sam',
                body => { name => 'x', scopes => $scopes });
    is($x->{status}, $status, "$what: $status");
    is($x->{json}{error}, $status == 400 ? 'invalid_request' : 'validation_error',
       "$what: error");
    like($x->{json}{message} // '', $re, "$what: the message") if $re;
}
refused('a', 400, 'not an array');
refused({ a => 1 }, 400, 'an object');
refused(['a', 1], 400, 'a number in the array');
refused(['a', undef], 400, 'a null in the array');
refused(['a', ['b']], 400, 'an array in the array');
refused(['x' x 65], 422, '65 characters', qr/^scope "x{64}": /);
refused([''], 422, 'empty', qr/^scope "": /);
refused(['a b'], 422, 'a space', qr/^scope "a b": /);
refused(['a"b'], 422, 'a quote', qr/^scope "a"b": /);
refused(['a\\b'], 422, 'a backslash', qr/^scope "a\\b": /);
refused(["a\tb"], 422, 'a tab', qr/^scope "a\?b": /);
refused(["caf\x{e9}"], 422, 'a non-ASCII letter', qr/^scope "caf\?\?": /);
refused([map { "s$_" } 1 .. 33], 422, '33 scopes', qr/^scope "s33": a token holds at most 32/);

# --- auth_pat_scopes_allowed
$r = $t->http(POST => '/v1/personal-access-tokens',
              { headers => { 'X-User' => 'sam', 'Content-Type' => 'application/json' },
                content => '{"name":"x","scopes":["repo:read"]}',
                port => $t->port2 });
is($r->{status}, 201, 'an allowed scope: 201');
$r = $t->http(POST => '/v1/personal-access-tokens',
              { headers => { 'X-User' => 'sam', 'Content-Type' => 'application/json' },
                content => '{"name":"x","scopes":["repo:read","admin"]}',
                port => $t->port2 });
is($r->{status}, 422, 'a scope not allowed: 422');
like($r->{json}{message} // '', qr/^scope "admin": not in auth_pat_scopes_allowed/,
     '... naming it');
$r = $t->http(GET => '/v1/personal-access-tokens/config',
              { headers => { 'X-User' => 'sam' }, port => $t->port2 });
is_deeply($r->{json}{data}{scopesAllowed}, [qw(repo:read repo:write)],
          'GET /config lists them');

# --- rotate keeps the scopes, or narrows them
my $base = create([qw(a b c)])->{json}{data};
my $rot = api($t, POST => "/$base->{id}/rotate", user => 'sam');
is_deeply($rot->{json}{data}{scopes}, [qw(a b c)], 'rotate keeps the scopes');
$rot = api($t, POST => "/$rot->{json}{data}{id}/rotate", user => 'sam',
           body => { scopes => [qw(c a)] });
is($rot->{status}, 201, 'rotate to a subset: 201');
is_deeply($rot->{json}{data}{scopes}, [qw(a c)], '... holding it');
my $wide = api($t, POST => "/$rot->{json}{data}{id}/rotate", user => 'sam',
               body => { scopes => [qw(a b)] });
is($wide->{status}, 422, 'rotate to more scopes: 422');
like($wide->{json}{message} // '', qr/^scope "b": a rotation keeps the scopes or narrows them/,
     '... naming the one not held');
is(api($t, GET => "/$rot->{json}{data}{id}", user => 'sam')->{json}{data}{status},
   'active', 'and the token is still active');

# a record of an earlier release (no "s"): none, and rotates to none
my $old = create(undef)->{json}{data};
my $m = $t->redis_cmd('HGET', 'pat:{u:sam}:m', $old->{id});
$m =~ s/,"s":\[\]//;
$t->redis_cmd('HSET', 'pat:{u:sam}:m', $old->{id}, $m);
unlike($t->redis_cmd('HGET', 'pat:{u:sam}:m', $old->{id}), qr/"s"/,
       '(a record without scopes)');
is_deeply(api($t, GET => "/$old->{id}", user => 'sam')->{json}{data}{scopes}, [],
          'an earlier record shows []');
my $esc = api($t, POST => "/$old->{id}/rotate", user => 'sam',
              body => { scopes => ['admin'] });
is($esc->{status}, 422, 'an earlier record cannot rotate into scopes: 422');
$rot = api($t, POST => "/$old->{id}/rotate", user => 'sam');
is($rot->{status}, 201, 'and rotates');
is_deeply($rot->{json}{data}{scopes}, [], 'to a token without scopes');

# --- a bearer caller: no escalation (item 3)
sub at2 {
    my ($m, $path, %o) = @_;
    my %h;
    $h{'X-User'} = $o{user} if defined $o{user};
    $h{Authorization} = "Bearer $o{bearer}" if defined $o{bearer};
    my %req = (headers => \%h, port => $t->port2);
    if (exists $o{body}) {
        $req{content} = JSON::PP->new->canonical->encode($o{body});
        $h{'Content-Type'} = 'application/json';
    }
    return $t->http($m, $path, \%req);
}
sub ms_of { PatApi::parse_rfc3339($_[0]) }
my $day = 86400;
my $iso = sub { PatApi::iso_ms(int(time + $_[0]) * 1000) };

my $own = api($t, POST => '/v2/tokens/', user => 'sam',
              body => { name => 'caller', scopes => ['a'], expiresAt => $iso->($day) })->{json}{data};
ok($own->{token}, 'a caller token holding ["a"], expiring in a day');
my $b = api($t, POST => '/v2/tokens/', bearer => $own->{token},
            body => { name => 'minted', scopes => [qw(a b)] });
is($b->{status}, 403, 'it creating ["a","b"]: 403');
is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope');
$b = api($t, POST => '/v2/tokens/', bearer => $own->{token},
         body => { name => 'minted', scopes => ['a'] });
is($b->{status}, 201, 'it creating ["a"]: 201');
is($b->{json}{data}{expiresAt}, $own->{expiresAt},
   '... without expiresAt: clamped to the caller\'s own expiry');
$b = api($t, POST => '/v2/tokens/', bearer => $own->{token}, body => { name => 'plain' });
is($b->{status}, 201, 'it creating a token without scopes: 201');
is_deeply($b->{json}{data}{scopes}, [], '... holding none');
$b = api($t, POST => '/v2/tokens/', bearer => $own->{token},
         body => { name => 'later', expiresAt => $iso->(2 * $day) });
is($b->{status}, 403, 'an explicit expiresAt after the caller\'s: 403');
is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope');
$b = api($t, POST => '/v2/tokens/', bearer => $own->{token},
         body => { name => 'never', expiresAt => undef });
is($b->{status}, 403, 'an explicit null (never) from an expiring caller: 403');
my $sooner = $iso->(3600);
$b = api($t, POST => '/v2/tokens/', bearer => $own->{token},
         body => { name => 'sooner', expiresAt => $sooner });
is($b->{status}, 201, 'an earlier expiresAt: 201');
is(int(ms_of($b->{json}{data}{expiresAt}) / 1000), int(ms_of($sooner) / 1000), '... kept');

# rotating a sibling: its scopes must be held; its lifetime is clamped
my $never = api($t, POST => '/v2/tokens/', user => 'sam',
                body => { name => 'never', expiresAt => undef })->{json}{data};
is($never->{expiresAt}, undef, '(a sibling that never expires)');
$b = api($t, POST => "/v2/tokens/$never->{id}/rotate", bearer => $own->{token});
is($b->{status}, 201, 'the caller rotating it: 201');
is($b->{json}{data}{expiresAt}, $own->{expiresAt}, '... clamped to the caller\'s expiry');
$b = api($t, POST => "/v2/tokens/$b->{json}{data}{id}/rotate", bearer => $own->{token},
         body => { expiresAt => undef });
is($b->{status}, 403, '... and an explicit null: 403');
my $wider = api($t, POST => '/v2/tokens/', user => 'sam',
                body => { name => 'wider', scopes => [qw(a admin)] })->{json}{data};
$b = api($t, POST => "/v2/tokens/$wider->{id}/rotate", bearer => $own->{token});
is($b->{status}, 403, 'rotating a sibling holding a scope the caller lacks: 403');
$b = api($t, POST => "/v2/tokens/$wider->{id}/rotate", bearer => $own->{token},
         body => { scopes => ['a'] });
is($b->{status}, 201, '... narrowed to what the caller holds: 201');
is(api($t, GET => "/v2/tokens/$wider->{id}", user => 'sam')->{json}{data}{status}, 'revoked',
   '(the refused rotation had left it alone; this one revoked it)');

# GET /config: the caller's limits
my $cfg = api($t, GET => '/v2/tokens/config', bearer => $own->{token})->{json}{data};
is_deeply($cfg->{scopesAllowed}, ['a'], 'GET /config for a bearer caller: its own scopes');
ok(defined $cfg->{maxLifetime} && $cfg->{maxLifetime} <= $day && $cfg->{maxLifetime} > $day - 60,
   '... maxLifetime: what is left of its token') or diag explain $cfg;
is($cfg->{defaultLifetime}, $cfg->{maxLifetime}, '... and so the default');
$cfg = at2(GET => '/v1/personal-access-tokens/config',
           bearer => api($t, POST => '/v2/tokens/', user => 'sam',
                         body => { name => 'ab', scopes => [qw(admin repo:read)] })->{json}{data}{token})
       ->{json}{data};
is_deeply($cfg->{scopesAllowed}, ['repo:read'],
          '... held and allowed (auth_pat_scopes_allowed repo:read repo:write)');
is($cfg->{maxLifetime}, undef, '... a caller that never expires: no limit');

# rotating itself keeps its lifetime length
my $life = ms_of($own->{expiresAt}) - ms_of($own->{createdAt});
sleep 1;
$b = api($t, POST => '/v2/tokens/self/rotate', bearer => $own->{token});
is($b->{status}, 201, 'POST /self/rotate: 201');
my $newlife = ms_of($b->{json}{data}{expiresAt}) - ms_of($b->{json}{data}{createdAt});
ok(abs($newlife - $life) < 2000, '... the same lifetime length') or diag "$life vs $newlife";
ok(ms_of($b->{json}{data}{expiresAt}) > ms_of($own->{expiresAt}), '... so later than before');
$own = $b->{json}{data};

# ... and no longer: an explicit expiresAt past its lifetime, or null, is 403
$life = ms_of($own->{expiresAt}) - ms_of($own->{createdAt});
for my $path ('/v2/tokens/self/rotate', "/v2/tokens/$own->{id}/rotate") {
    $b = api($t, POST => $path, bearer => $own->{token}, body => { expiresAt => $iso->(20 * 365 * $day) });
    is($b->{status}, 403, "$path with an expiresAt past its lifetime: 403");
    is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope');
    is($b->{headers}{'www-authenticate'}, 'Bearer realm="api", error="insufficient_scope"',
       '... with a challenge naming no scope');
    $b = api($t, POST => $path, bearer => $own->{token}, body => { expiresAt => undef });
    is($b->{status}, 403, "$path with expiresAt null: 403");
}
$b = api($t, POST => "/v2/tokens/$own->{id}/rotate", bearer => $own->{token},
         body => { expiresAt => $iso->(3600) });
is($b->{status}, 201, 'rotating itself to a shorter life: 201');
$own = $b->{json}{data};

# --- auth_pat_api_scope tokens:write (/v3/tokens/ on the second port)
my $weak = api($t, POST => '/v2/tokens/', user => 'sam',
               body => { name => 'weak', scopes => ['a'] })->{json}{data};
my $strong = api($t, POST => '/v2/tokens/', user => 'sam',
                 body => { name => 'strong', scopes => ['tokens:write'] })->{json}{data};
my $victim = api($t, POST => '/v2/tokens/', user => 'sam', body => { name => 'victim' })->{json}{data};
$b = at2(POST => '/v3/tokens/', bearer => $weak->{token}, body => { name => 'x' });
is($b->{status}, 403, 'api_scope: create without it: 403');
is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope');
is($b->{headers}{'www-authenticate'},
   'Bearer realm="api", error="insufficient_scope", scope="tokens:write"', '... the challenge names it');
is(at2(POST => "/v3/tokens/$victim->{id}/rotate", bearer => $weak->{token})->{status}, 403,
   'api_scope: rotating another: 403');
is(at2(POST => '/v3/tokens/self/rotate', bearer => $weak->{token})->{status}, 403,
   'api_scope: rotating itself: 403');
is(at2(DELETE => "/v3/tokens/$victim->{id}", bearer => $weak->{token})->{status}, 403,
   'api_scope: revoking another: 403');
is(api($t, GET => "/v2/tokens/$victim->{id}", user => 'sam')->{json}{data}{status}, 'active',
   '... which stays active');
is(at2(GET => '/v3/tokens/', bearer => $weak->{token})->{status}, 200, 'api_scope: the list: 200');
is(at2(GET => "/v3/tokens/$victim->{id}", bearer => $weak->{token})->{status}, 200,
   'api_scope: GET /{id}: 200');
is(at2(DELETE => '/v3/tokens/self', bearer => $weak->{token})->{status}, 200,
   'api_scope: DELETE /self: always allowed');
is(api($t, GET => "/v2/tokens/$weak->{id}", user => 'sam')->{json}{data}{status}, 'revoked',
   '... revoked');
$b = at2(POST => '/v3/tokens/', bearer => $strong->{token},
         body => { name => 'y', scopes => ['tokens:write'] });
is($b->{status}, 201, 'api_scope: a token holding it creates: 201');
is(at2(DELETE => "/v3/tokens/$victim->{id}", bearer => $strong->{token})->{status}, 200,
   'api_scope: ... and revokes another: 200');
is(at2(POST => '/v3/tokens/', user => 'sam', body => { name => 'z', scopes => ['q'] })->{status},
   201, 'api_scope: an auth_pat_api_user caller is not restricted');

# --- auth_pat with auth_pat_scope on the API location too (/v4/tokens/):
# each refusal names its own scopes, and limit_req sees the bearer
my $v4 = api($t, POST => '/v2/tokens/', user => 'sam',
             body => { name => 'v4', scopes => ['a'] })->{json}{data};
$b = at2(POST => '/v4/tokens/', bearer => $v4->{token}, body => { name => 'x' });
is($b->{status}, 403, 'v4: the API scope missing: 403');
is($b->{headers}{'www-authenticate'},
   'Bearer realm="v4", error="insufficient_scope", scope="tokens:write"',
   'v4: ... the challenge names auth_pat_api_scope\'s scope, not auth_pat_scope\'s');
$b = at2(GET => '/v4/tokens/', bearer => $weak->{token});
is($b->{status}, 401, 'v4: a revoked token: 401');
$b = at2(GET => '/v4/tokens/', bearer => $strong->{token});
is($b->{status}, 403, 'v4: a token without auth_pat_scope\'s scope: 403');
is($b->{headers}{'www-authenticate'}, 'Bearer realm="v4", error="insufficient_scope", scope="a"',
   'v4: ... naming it');
is(at2(GET => '/v4/tokens/', bearer => $v4->{token})->{status}, 429,
   'v4: limit_req keyed on $pat_token_id: its second call is limited');
my $v4b = api($t, POST => '/v2/tokens/', user => 'sam',
              body => { name => 'v4b', scopes => ['a'] })->{json}{data};
is(at2(GET => '/v4/tokens/', bearer => $v4b->{token})->{status}, 200,
   'v4: another token\'s first call: 200');
my $v5 = api($t, POST => '/v2/tokens/', user => 'sam', body => { name => 'v5' })->{json}{data};
is(at2(GET => '/v5/tokens/', bearer => $v5->{token})->{status}, 200,
   'v5 (auth_pat_api alone): a first call: 200');
is(at2(GET => '/v5/tokens/', bearer => $v5->{token})->{status}, 429,
   'v5: limit_req sees the API\'s bearer caller: the second is limited');
is(at2(GET => '/v5/tokens/', bearer => 'pat_garbage')->{status}, 401,
   'v5: a bad token: 401, not limited');

# --- limit_except in an API location: writes need the scope, and the API
# still answers every method
my $w6 = api($t, POST => '/v2/tokens/', user => 'sam',
             body => { name => 'w6', scopes => ['tokens:write'] })->{json}{data};
my $r6 = api($t, POST => '/v2/tokens/', user => 'sam', body => { name => 'r6' })->{json}{data};
is(at2(GET => '/v6/tokens', bearer => $r6->{token})->{status}, 200,
   'v6 limit_except: GET without the scope: 200');
$b = at2(POST => '/v6/tokens', bearer => $r6->{token}, body => { name => 'x' });
is($b->{status}, 403, 'v6 limit_except: POST without the scope: 403');
is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope, as JSON');
$b = at2(POST => '/v6/tokens', bearer => $w6->{token}, body => { name => 'x' });
is($b->{status}, 201, 'v6 limit_except: POST with the scope: the API creates (201)');
is(at2(DELETE => "/v6/tokens/$b->{json}{data}{id}", bearer => $w6->{token})->{status}, 200,
   'v6 limit_except: DELETE with the scope: the API revokes (200)');

# --- a bearer token sent along with an auth_pat_api_user identity is not
# the caller: not looked up, not counted as used (but for /self)
my $along = api($t, POST => '/v2/tokens/', user => 'sam', body => { name => 'along' })->{json}{data};
is(api($t, GET => '/v2/tokens/config', user => 'sam', bearer => $along->{token})->{status}, 200,
   'X-User and a bearer token: 200');
is(api($t, GET => '/v2/tokens/', user => 'sam', bearer => $along->{token})->{status}, 200,
   '... the list too');
select(undef, undef, undef, 0.3);
is(api($t, GET => "/v2/tokens/$along->{id}", user => 'sam')->{json}{data}{lastUsedAt}, undef,
   '... the token was not used');
is(api($t, GET => '/v2/tokens/self', user => 'sam', bearer => $along->{token})->{json}{data}{id},
   $along->{id}, '... but /self is that token');

# --- the same limits when the caller's identity comes from the cache
{
    my $c = api_env(http => 'auth_pat_cache zone=scopes:1m ttl=30s;');
    my $caller = api($c, POST => '/v2/tokens/', user => 'kim',
                     body => { name => 'c', scopes => ['a'], expiresAt => $iso->($day) })->{json}{data};
    my $first = api($c, GET => '/v2/tokens/config', bearer => $caller->{token});
    is_deeply($first->{json}{data}{scopesAllowed}, ['a'], 'cache: a first use (from Redis)');
    my $n = api($c, POST => '/v2/tokens/', bearer => $caller->{token}, body => { name => 'n' });
    is($n->{status}, 201, 'cache: a create by the cached caller: 201');
    is($n->{json}{data}{expiresAt}, $caller->{expiresAt}, 'cache: ... clamped to its expiry');
    is(api($c, POST => '/v2/tokens/', bearer => $caller->{token},
           body => { name => 'w', scopes => [qw(a b)] })->{status}, 403,
       'cache: ... and granting a scope it lacks: 403');
    # the cache answers from now on: Redis' record no longer says a thing
    my $keys = $c->redis_cmd('KEYS', 'pat:v:*');
    $c->redis_cmd('HDEL', $_, 's', 'e') for @$keys;
    $n = api($c, POST => '/v2/tokens/', bearer => $caller->{token},
             body => { name => 'm', scopes => ['a'] });
    is($n->{status}, 201, 'cache: scopes and expiry from the cache entry (Redis\' record stripped)');
    is($n->{json}{data}{expiresAt}, $caller->{expiresAt}, 'cache: ... the expiry too');
    $c->done;
}

# --- nginx -t
{
    my $many = join ' ', map { "s$_" } 1 .. 40;
    my ($rc, $out) = PatApi::conf_test("    location / { auth_pat_api; auth_pat_scopes_allowed $many; }");
    is($rc, 0, 'nginx -t: 40 allowed scopes (the 32 are per token)') or diag $out;
}
for my $bad ('"a b"', 'x' x 65) {
    my ($rc, $out) = PatApi::conf_test("    location / { auth_pat_api; auth_pat_scopes_allowed ok $bad; }");
    ok($rc != 0 && $out =~ /invalid scope/, "nginx -t: auth_pat_scopes_allowed $bad")
        or diag $out;
}

$t->done;
done_testing;
