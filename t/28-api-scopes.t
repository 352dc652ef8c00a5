# Scopes on tokens (issue 12, item 1, as far as issue and storage go):
# create and rotate take "scopes", checked (RFC 6749 scope-tokens, 1-64
# characters, at most 32 after dropping duplicates), stored sorted, shown
# in the token object; auth_pat_scopes_allowed limits what create may
# ask for; a rotation keeps them or narrows them; GET /config lists the
# allowed ones.  (Requiring scopes at a location comes next.)
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatApi qw(api api_env);

my $t = api_env(max_tokens => 50, http => <<'EOF');
server {
    listen 127.0.0.1:%%PORT2%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
        auth_pat_scopes_allowed repo:read repo:write;
    }
}
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

# --- a bearer caller grants no scope (it holds none, as far as the API
# knows until checks carry scopes)
my $own = create(['a'])->{json}{data};
my $b = api($t, POST => '', bearer => $own->{token},
            body => { name => 'minted', scopes => ['a'] });
is($b->{status}, 403, 'a bearer caller asking for scopes: 403');
is($b->{json}{error}, 'insufficient_scope', '... insufficient_scope');
$b = api($t, POST => '', bearer => $own->{token}, body => { name => 'plain' });
is($b->{status}, 201, 'a bearer caller without scopes: 201');
is_deeply($b->{json}{data}{scopes}, [], '... a token without scopes');

# --- nginx -t
{
    my $u = PatTest->new;
    my $many = join ' ', map { "s$_" } 1 .. 40;
    $u->nginx_conf(http => <<"EOF");
auth_pat_redis 127.0.0.1:1;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { auth_pat_api; auth_pat_scopes_allowed $many; }
}
EOF
    my ($rc, $out) = $u->nginx_test;
    is($rc, 0, 'nginx -t: 40 allowed scopes (the 32 are per token)') or diag $out;
}
for my $bad ('"a b"', 'x' x 65) {
    my $u = PatTest->new;
    $u->nginx_conf(http => <<"EOF");
auth_pat_redis 127.0.0.1:1;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { auth_pat_api; auth_pat_scopes_allowed ok $bad; }
}
EOF
    my ($rc, $out) = $u->nginx_test;
    ok($rc != 0 && $out =~ /invalid scope/, "nginx -t: auth_pat_scopes_allowed $bad")
        or diag $out;
}

$t->done;
done_testing;
