# Scopes at the edge (issue 12): auth_pat_scope (http, server, location;
# a lower level replaces the inherited list, "off" clears it) answers 403
# insufficient_scope with the required scopes in the challenge, with and
# without the cache; satisfy any; error_page 403 and try_files to a
# location with other scopes; $pat_scopes; the identity is resolved
# before the preaccess phase, so limit_req can key on $pat_token_id and
# $pat_user_id; records of an earlier release (no "s", no "c") hold no
# scope.  nginx A has no cache and serves the API; nginx B, on the same
# Redis with the same key, has a cache and one worker.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use PatTest;
use PatApi qw(api);
use PatToken qw(make_token seed_token token_digest);

my $A = PatTest->new;
my $redis = $A->start_redis;
my $B = PatTest->new;
$B->{key} = $A->key;

# the configuration of one nginx: cache => 1 adds auth_pat_cache,
# api => 1 the admin API (callers named by X-User)
sub conf {
    my ($t, %o) = @_;
    my $port3 = $t->{port3} ||= $t->free_port;
    my $c = <<'EOF';
auth_pat_redis __REDIS__ timeout=1s;
auth_pat_key_file %%KEY%%;
__CACHE__
auth_pat_scope h1 h2;

limit_req_zone $pat_token_id zone=bytoken:1m rate=1r/m;
limit_req_zone $pat_user_id zone=byuser:1m rate=1r/m;
limit_req_status 429;

# the http-level list is cleared for this server
server {
    listen 127.0.0.1:%%PORT%%;
    auth_pat_scope off;
__API__
    location /plain/ { auth_pat "plain"; alias %%HTML%%/; }
    location /one/   { auth_pat "r1"; auth_pat_scope read; alias %%HTML%%/; }
    location /two/   { auth_pat "r2"; auth_pat_scope write read; alias %%HTML%%/; }
    location /vars/ {
        auth_pat "v";
        add_header X-Scopes "[$pat_scopes]" always;
        add_header X-User "[$pat_user_id]" always;
        alias %%HTML%%/;
    }
    location /vars-read/ {
        auth_pat "v";
        auth_pat_scope read;
        add_header X-Scopes "[$pat_scopes]" always;
        alias %%HTML%%/;
    }
    location /any-allow/ {
        auth_pat "any";
        auth_pat_scope admin;
        satisfy any;
        allow 127.0.0.1;
        deny all;
        alias %%HTML%%/;
    }
    location /any-deny/ {
        auth_pat "any";
        auth_pat_scope admin;
        satisfy any;
        deny all;
        alias %%HTML%%/;
    }
    location /lx/ {
        auth_pat "lx";
        auth_pat_scope read;
        limit_except GET { auth_pat_scope read write; }
        alias %%HTML%%/;
    }
    location /all-allow/ {
        auth_pat "all";
        auth_pat_scope admin;
        allow 127.0.0.1;
        alias %%HTML%%/;
    }
    location /rl-token/ {
        auth_pat "rl";
        limit_req zone=bytoken;    # burst 0 (nginx refuses burst=0 written out)
        alias %%HTML%%/;
    }
    location /rl-user/ {
        auth_pat "rl";
        limit_req zone=byuser;
        alias %%HTML%%/;
    }
    location /open/ { auth_pat off; auth_pat_scope read; alias %%HTML%%/; }
    location /q/ { auth_pat 'say "hi"'; auth_pat_scope 'repo:read/x@y' a; alias %%HTML%%/; }
    location /ep/ {
        auth_pat "ep";
        auth_pat_scope admin;
        error_page 403 /errors/403.txt;
        alias %%HTML%%/;
    }
    location /errors/ { auth_pat off; alias %%HTML%%/; }
    location /tf/ { auth_pat "tf"; try_files /nonexistent.txt @admin; }
    location @admin {
        auth_pat "tf";
        auth_pat_scope admin;
        rewrite ^ /protected.txt break;
        root %%HTML%%;
    }
}

# a server-level list: inherited, replaced, cleared
server {
    listen 127.0.0.1:%%PORT2%%;
    auth_pat "srv";
    auth_pat_scope srv;

    location /inherit/ { alias %%HTML%%/; }
    location /replace/ { auth_pat_scope loc; alias %%HTML%%/; }
    location /cleared/ { auth_pat_scope off; alias %%HTML%%/; }
    location /realm/   { auth_pat "other"; alias %%HTML%%/; }
}

# no list of its own: the http-level one
server {
    listen 127.0.0.1:__PORT3__;
    location /h/ { auth_pat "h"; alias %%HTML%%/; }
    location /h-off/ { auth_pat "h"; auth_pat_scope off; alias %%HTML%%/; }
}
EOF
    my $api = $o{api} ? <<'EOF' : '';
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
EOF
    my $cache = $o{cache} ? 'auth_pat_cache zone=scopecache:1m ttl=60s;' : '';
    $c =~ s/__REDIS__/127.0.0.1:$redis->{port}/;
    $c =~ s/__CACHE__/$cache/;
    $c =~ s/__API__/$api/;
    $c =~ s/__PORT3__/$port3/;
    return $c;
}

$A->nginx_conf(http => conf($A, api => 1));
$B->nginx_conf(http => conf($B, cache => 1), workers => 1);
$A->start_nginx;
$B->start_nginx;
$A->{issued} = $B->{issued} = [];
ok($A->wait_linked(undef, subscriber => 0), 'A: every worker linked to Redis');
ok($B->wait_linked($A), 'B: its worker linked and subscribed');
sleep 0.3;

sub create {
    my ($user, $scopes, $name) = @_;
    my $r = api($A, POST => '', user => $user,
                body => { name => $name // 'scoped', scopes => $scopes });
    die "create failed: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data};
}

sub req {
    my ($t, $path, $token, %o) = @_;
    my %h;
    $h{Authorization} = "Bearer $token" if defined $token;
    return $t->http(GET => $path, { headers => \%h, port => $o{port} });
}

sub hmgets {
    my $i = $A->redis_cmd('INFO', 'commandstats');
    return $i =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0;
}

# a 403 insufficient_scope, exactly
sub insufficient {
    my ($r, $realm, $scope, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 403, "$what: 403");
    is($r->{headers}{'www-authenticate'},
       qq{Bearer realm="$realm", error="insufficient_scope", scope="$scope"},
       "$what: the challenge");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: JSON");
    is(ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef, 'insufficient_scope',
       "$what: error insufficient_scope");
    ok(ref $r->{json} eq 'HASH' && defined $r->{json}{message}
       && !ref $r->{json}{message} && length $r->{json}{message}
       && join(',', sort keys %{ $r->{json} }) eq 'error,message',
       "$what: {error, message}") or diag $r->{content};
    unlike($r->{content} // '', qr/secret/, "$what: not the file");
}

sub served {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, 200, "$what: 200") or diag "$r->{status} $r->{content}";
    is($r->{content}, "secret\n", "$what: the file") if $r->{status} == 200;
}

my %tok = (
    none      => create('alice', []),
    some      => create('alice', ['read']),
    all       => create('alice', [qw(write read)]),
    lookalike => create('alice', ['re', 'reada', 'read:all', 'READ', 'write']),
);
is_deeply($tok{all}{scopes}, [qw(read write)], '(the token holds read write)');

# --- 0, 1 and 2 required scopes against none, some and all, on A (no
# cache) and on B (cache: the first round fills it, the second is served
# from it without Redis)
my %expect = (
    plain => { none => 200, some => 200, all => 200, lookalike => 200 },
    one   => { none => 403, some => 200, all => 200, lookalike => 403 },
    two   => { none => 403, some => 403, all => 200, lookalike => 403 },
);
my %challenge = (one => [ 'r1', 'read' ], two => [ 'r2', 'write read' ]);

sub matrix {
    my ($t, $label) = @_;
    for my $loc (qw(plain one two)) {
        for my $k (qw(none some all lookalike)) {
            my $r = req($t, "/$loc/protected.txt", $tok{$k}{token});
            my $what = "$label: /$loc/ (" . ($loc eq 'plain' ? 0 : $loc eq 'one' ? 1 : 2)
                     . " required) with scopes [@{ $tok{$k}{scopes} }] ($k)";
            if ($expect{$loc}{$k} == 200) {
                served($r, $what);
            } else {
                insufficient($r, @{ $challenge{$loc} }, $what);
            }
        }
    }
}

matrix($A, 'A, no cache');
my $h = hmgets();
matrix($B, 'B, cache filling');
cmp_ok(hmgets() - $h, '>=', 4, 'B: the first round asked Redis (one HMGET per token)');
$h = hmgets();
matrix($B, 'B, from the cache');
is(hmgets() - $h, 0, 'B: the second round was served from the cache (no HMGET)');

# --- bad or missing tokens at a scope location: still 401
for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
    my ($n, $label) = @$t;
    for my $case ([ 'unknown token', make_token() ], [ 'garbage', 'hello' ],
                  [ 'bad checksum', substr($tok{all}{token}, 0, -1)
                        . (substr($tok{all}{token}, -1) eq 'A' ? 'B' : 'A') ]) {
        my $r = req($n, '/two/protected.txt', $case->[1]);
        is($r->{status}, 401, "$label: $case->[0] at a scope location: 401");
        is($r->{headers}{'www-authenticate'}, 'Bearer realm="r2", error="invalid_token"',
           "$label: $case->[0]: invalid_token, no scope attribute");
        is($r->{json}{error}, 'unauthorized', "$label: $case->[0]: JSON unauthorized");
    }
    my $r = req($n, '/two/protected.txt');
    is($r->{status}, 401, "$label: no token at a scope location: 401");
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="r2"',
       "$label: no token: challenge without error or scope");
    $r = $n->http(GET => '/two/protected.txt', { headers => { Authorization => 'Bearer a b' } });
    is($r->{status}, 400, "$label: malformed header at a scope location: 400");
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="r2", error="invalid_request"',
       "$label: malformed header: invalid_request");
}

# --- a revoked token with every scope: 401 at once, also from B's cache
{
    my $rv = create('rita', [qw(read write)]);
    served(req($A, '/two/protected.txt', $rv->{token}), 'A: a token to revoke');
    served(req($B, '/two/protected.txt', $rv->{token}), 'B: a token to revoke (cached)');
    is(api($A, DELETE => "/$rv->{id}", user => 'rita')->{status}, 200, 'revoked');
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my $r = req($t->[0], '/two/protected.txt', $rv->{token});
        is($r->{status}, 401, "$t->[1]: the revoked token at a scope location: 401");
        is($r->{headers}{'www-authenticate'}, 'Bearer realm="r2", error="invalid_token"',
           "$t->[1]: the revoked token: invalid_token");
    }
}

# --- inheritance
{
    my %s = (
        srv  => create('ivan', ['srv']),
        loc  => create('ivan', ['loc']),
        both => create('ivan', [qw(srv loc)]),
        h1   => create('ivan', ['h1']),
        h12  => create('ivan', [qw(h2 h1)]),
        none => $tok{none},
    );
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my ($n, $label) = @$t;
        my $p2 = $n->port2;
        my $p3 = $n->{port3};
        my $get = sub { req($n, $_[0], $s{ $_[1] }{token}, port => $_[2]) };

        served($get->('/inherit/protected.txt', 'srv', $p2), "$label: server list inherited, token srv");
        served($get->('/inherit/protected.txt', 'both', $p2), "$label: server list inherited, token srv loc");
        insufficient($get->('/inherit/protected.txt', 'loc', $p2), 'srv', 'srv',
                     "$label: server list inherited, token loc");
        insufficient($get->('/inherit/protected.txt', 'none', $p2), 'srv', 'srv',
                     "$label: server list inherited, token without scopes");

        served($get->('/replace/protected.txt', 'loc', $p2),
               "$label: location list replaces the server's: token loc alone passes");
        insufficient($get->('/replace/protected.txt', 'srv', $p2), 'srv', 'loc',
                     "$label: location list replaces the server's: token srv");
        served($get->('/replace/protected.txt', 'both', $p2), "$label: location list, token srv loc");

        served($get->('/cleared/protected.txt', 'none', $p2),
               "$label: auth_pat_scope off in a location: a token without scopes");
        served($get->('/cleared/protected.txt', 'loc', $p2),
               "$label: auth_pat_scope off in a location: token loc");
        my $r = req($n, '/cleared/protected.txt', undef, port => $p2);
        is($r->{status}, 401, "$label: auth_pat_scope off still needs a token");

        insufficient($get->('/realm/protected.txt', 'loc', $p2), 'other', 'srv',
                     "$label: a location with its own realm inherits the server's scopes");
        served($get->('/realm/protected.txt', 'srv', $p2), "$label: own realm, token srv");

        served($get->('/h/protected.txt', 'h12', $p3), "$label: http-level list inherited, token h1 h2");
        insufficient($get->('/h/protected.txt', 'h1', $p3), 'h', 'h1 h2',
                     "$label: http-level list inherited, token h1 only");
        insufficient($get->('/h/protected.txt', 'none', $p3), 'h', 'h1 h2',
                     "$label: http-level list inherited, token without scopes");
        served($get->('/h-off/protected.txt', 'none', $p3),
               "$label: http-level list cleared in a location");
        served($get->('/plain/protected.txt', 'none'),
               "$label: http-level list cleared for a server (auth_pat_scope off)");

        $r = req($n, '/open/protected.txt');
        served($r, "$label: auth_pat_scope without auth_pat: no check at all");
    }
}

# --- satisfy
{
    my $admin = create('sam', ['admin']);
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my ($n, $label) = @$t;
        served(req($n, '/any-allow/protected.txt', $tok{some}{token}),
               "$label: satisfy any + allow 127.0.0.1, token lacking the scope: let in");
        served(req($n, '/any-allow/protected.txt'),
               "$label: satisfy any + allow 127.0.0.1, no token: let in");
        served(req($n, '/any-allow/protected.txt', $admin->{token}),
               "$label: satisfy any + allow 127.0.0.1, token with the scope");
        my $r = req($n, '/any-deny/protected.txt', $tok{some}{token});
        is($r->{status}, 403, "$label: satisfy any + deny all, token lacking the scope: 403");
        is($r->{headers}{'www-authenticate'},
           'Bearer realm="any", error="insufficient_scope", scope="admin"',
           "$label: ... the refusal is the check's, with its challenge");
        served(req($n, '/any-deny/protected.txt', $admin->{token}),
               "$label: satisfy any + deny all, token with the scope: let in by the token");
        $r = req($n, '/any-deny/protected.txt');
        is($r->{status}, 401, "$label: satisfy any + deny all, no token: 401");
        insufficient(req($n, '/all-allow/protected.txt', $tok{some}{token}), 'all', 'admin',
                     "$label: satisfy all + allow 127.0.0.1, token lacking the scope");
        served(req($n, '/all-allow/protected.txt', $admin->{token}),
               "$label: satisfy all + allow 127.0.0.1, token with the scope");
    }
}

# --- limit_except: writes need more
{
    my $ro = create('lxu', ['read']);
    my $rw = create('lxu', [qw(read write)]);
    my $post = sub {
        my ($tok) = @_;
        return $A->http(POST => '/lx/protected.txt',
                        { headers => { Authorization => "Bearer $tok" }, content => 'x' });
    };
    served(req($A, '/lx/protected.txt', $ro->{token}), 'limit_except: GET with "read"');
    insufficient($post->($ro->{token}), 'lx', 'read write', 'limit_except: POST with "read" only');
    is($post->($rw->{token})->{status}, 405,
       'limit_except: POST with "read write" passes the check (the static file refuses POST)');
}

# --- the challenge escapes the realm, and carries punctuation in scopes
{
    my $p = create('pia', ['repo:read/x@y']);
    my $pa = create('pia', ['a', 'repo:read/x@y']);
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my ($n, $label) = @$t;
        insufficient(req($n, '/q/protected.txt', $p->{token}), 'say \\"hi\\"', 'repo:read/x@y a',
                     "$label: quoted realm, punctuation in a scope");
        served(req($n, '/q/protected.txt', $pa->{token}), "$label: punctuation in a scope, token holds both");
    }
}

# --- error_page 403 and internal redirects
$_->write_file("html/403.txt", "custom 403\n", 0644) for $A, $B;
{
    my $admin = create('eve', ['admin']);
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my ($n, $label) = @$t;
        my $r = req($n, '/ep/protected.txt', $tok{some}{token});
        is($r->{status}, 403, "$label: error_page 403: 403");
        is($r->{content}, "custom 403\n", "$label: error_page 403: the operator's page");
        is($r->{headers}{'www-authenticate'},
           'Bearer realm="ep", error="insufficient_scope", scope="admin"',
           "$label: error_page 403: the challenge stays");
        served(req($n, '/ep/protected.txt', $admin->{token}), "$label: error_page 403: a token with the scope");
        insufficient(req($n, '/tf/x', $tok{some}{token}), 'tf', 'admin',
                     "$label: try_files to a named location requiring a scope, token lacking it");
        served(req($n, '/tf/x', $admin->{token}),
               "$label: try_files to a named location requiring a scope, token holding it");
    }
}

# --- $pat_scopes
{
    my $abc = create('val', [qw(c a b read)]);
    my @long = ('read', map { sprintf('s%02d', $_) . ('x' x 61) } 1 .. 31);
    my $big = create('val-' . ('u' x 40), [ reverse @long ], 'a long name ' . ('n' x 60));
    # the cache keeps user, name and scopes inline up to 16 bytes
    my @edge = map { [ $_, create('u', [ 'read', 'x' x $_ ], 'n') ] } 6 .. 12;
    for my $t ([ $A, 'A' ], [ $B, 'B, miss' ], [ $B, 'B, cached' ]) {
        my ($n, $label) = @$t;
        my $r = req($n, '/vars/protected.txt', $abc->{token});
        is($r->{status}, 200, "$label: \$pat_scopes location: 200");
        is($r->{headers}{'x-scopes'}, '[a b c read]', "$label: \$pat_scopes sorted, space-separated");
        is($r->{headers}{'x-user'}, '[val]', "$label: \$pat_user_id alongside");
        $r = req($n, '/vars/protected.txt', $tok{none}{token});
        is($r->{headers}{'x-scopes'}, '[]', "$label: a token without scopes: \$pat_scopes empty");
        $r = req($n, '/vars-read/protected.txt', $abc->{token});
        is($r->{status}, 200, "$label: \$pat_scopes at a scope location: 200");
        is($r->{headers}{'x-scopes'}, '[a b c read]', "$label: \$pat_scopes at a scope location");
        $r = req($n, '/vars-read/protected.txt', $big->{token});
        is($r->{status}, 200, "$label: 32 long scopes, read among them: 200");
        is($r->{headers}{'x-scopes'}, '[' . join(' ', sort @long) . ']',
           "$label: 32 long scopes in \$pat_scopes (" . length(join ' ', @long) . ' bytes)');
        for my $e (@edge) {
            my ($k, $et) = @$e;
            $r = req($n, '/vars-read/protected.txt', $et->{token});
            is($r->{status}, 200, "$label: user, name and scopes of " . (2 + 5 + $k) . " bytes: 200");
            is($r->{headers}{'x-scopes'}, '[read ' . ('x' x $k) . ']',
               "$label: user, name and scopes of " . (2 + 5 + $k) . " bytes: \$pat_scopes");
        }
        $r = req($n, '/vars/protected.txt', make_token());
        is($r->{status}, 401, "$label: a bad token: 401");
        is($r->{headers}{'x-scopes'}, '[]', "$label: a bad token: \$pat_scopes empty");
    }
}

# --- limit_req keyed on the identity, resolved before preaccess
{
    my $ta = create('lim1', [], 'ta');
    my $tb = create('lim2', [], 'tb');
    my $ux = create('lim3', [], 'ux');
    my $uy = create('lim3', [], 'uy');
    my $uz = create('lim4', [], 'uz');
    for my $t ([ $A, 'A' ], [ $B, 'B' ]) {
        my ($n, $label) = @$t;
        is(req($n, '/rl-token/protected.txt', $ta->{token})->{status}, 200,
           "$label: \$pat_token_id limit: token A's first request: 200");
        is(req($n, '/rl-token/protected.txt', $ta->{token})->{status}, 429,
           "$label: \$pat_token_id limit: token A's second request: 429");
        is(req($n, '/rl-token/protected.txt', $tb->{token})->{status}, 200,
           "$label: \$pat_token_id limit: token B's first request: 200");
        is(req($n, '/rl-token/protected.txt', $tb->{token})->{status}, 429,
           "$label: \$pat_token_id limit: token B's second request: 429");
        for my $i (1 .. 3) {
            my $r = req($n, '/rl-token/protected.txt', make_token());
            is($r->{status}, 401, "$label: \$pat_token_id limit: an unknown token, #$i: 401");
            is($r->{headers}{'www-authenticate'}, 'Bearer realm="rl", error="invalid_token"',
               "$label: \$pat_token_id limit: an unknown token, #$i: invalid_token");
            is(req($n, '/rl-token/protected.txt', 'hello')->{status}, 401,
               "$label: \$pat_token_id limit: garbage, #$i: 401");
            is(req($n, '/rl-token/protected.txt')->{status}, 401,
               "$label: \$pat_token_id limit: no token, #$i: 401");
        }

        is(req($n, '/rl-user/protected.txt', $ux->{token})->{status}, 200,
           "$label: \$pat_user_id limit: user 1, token X: 200");
        is(req($n, '/rl-user/protected.txt', $uy->{token})->{status}, 429,
           "$label: \$pat_user_id limit: user 1, token Y (same user): 429");
        is(req($n, '/rl-user/protected.txt', $uz->{token})->{status}, 200,
           "$label: \$pat_user_id limit: user 2's token: 200");
        is(req($n, '/rl-user/protected.txt', $ux->{token})->{status}, 429,
           "$label: \$pat_user_id limit: user 1, token X again: 429");
        for my $i (1 .. 3) {
            is(req($n, '/rl-user/protected.txt', make_token())->{status}, 401,
               "$label: \$pat_user_id limit: an unknown token, #$i: 401");
            is(req($n, '/rl-user/protected.txt')->{status}, 401,
               "$label: \$pat_user_id limit: no token, #$i: 401");
        }
    }
}

# --- records of an earlier release: no "s", no "c": no scope
{
    my $old = create('olduser', [qw(read write)], 'old');
    my $key = 'pat:v:' . token_digest($A->key, $old->{token});
    my @scan;
    my $cursor = 0;
    for (1 .. 1000) {
        my $r = $A->redis_cmd('SCAN', $cursor, 'MATCH', 'pat:v:*', 'COUNT', 1000);
        $cursor = $r->[0];
        push @scan, @{ $r->[1] };
        last if $cursor eq '0';
    }
    ok((grep { $_ eq $key } @scan), 'the validation record is found by --scan pat:v:*');
    is($A->redis_cmd('HGET', $key, 's'), 'read write', 'the record holds s (sorted, space-separated)');
    like($A->redis_cmd('HGET', $key, 'c') // '', qr/^\d{13}$/, 'the record holds c (createdAt, ms)');
    is($A->redis_cmd('HDEL', $key, 's', 'c'), 2, 'HDEL s c: a record of an earlier release');
    my $seeded = seed_token($A, user => 'seeded', name => 'seeded');

    for my $t ([ $A, 'A' ], [ $B, 'B, miss' ], [ $B, 'B, cached' ]) {
        my ($n, $label) = @$t;
        for my $x ([ $old, 'old record' ], [ $seeded, 'seeded record' ]) {
            my ($tk, $what) = @$x;
            served(req($n, '/plain/protected.txt', $tk->{token}), "$label: $what at a plain location");
            insufficient(req($n, '/one/protected.txt', $tk->{token}), 'r1', 'read',
                         "$label: $what at a location requiring a scope");
            my $r = req($n, '/vars/protected.txt', $tk->{token});
            is($r->{headers}{'x-scopes'}, '[]', "$label: $what: \$pat_scopes empty");
        }
    }
    my $r = api($A, GET => "/$old->{id}", user => 'olduser');
    is($r->{status}, 200, 'the API still knows the old token');
}

# --- nginx -t
for my $case (
    [ 'auth_pat_scope "a b";', qr/invalid scope/, 'a space in a scope' ],
    [ 'auth_pat_scope read off;', qr/invalid scope "off"/, '"off" among scopes' ],
    [ 'auth_pat_scope ' . ('x' x 65) . ';', qr/invalid scope/, '65 characters' ],
    [ 'auth_pat_scope a; auth_pat_scope b;', qr/is duplicate/, 'twice in one location' ],
    [ 'auth_pat_scope;', qr/invalid number of arguments/, 'no argument' ],
) {
    my ($line, $re, $what) = @$case;
    my ($rc, $out) = PatApi::conf_test(qq{    location / { auth_pat "x"; $line alias %%HTML%%/; }});
    ok($rc != 0 && $out =~ $re, "nginx -t refuses $what") or diag $out;
}
{
    my $u = PatTest->new;
    $u->nginx_conf(http => <<"EOF");
auth_pat_redis 127.0.0.1:1;
auth_pat_key_file %%KEY%%;
auth_pat_scope a;
server {
    listen 127.0.0.1:%%PORT%%;
    auth_pat_scope b c;
    location / { auth_pat "x"; auth_pat_scope off; alias %%HTML%%/; }
    location /y/ { auth_pat "y"; auth_pat_scope '!#\$%&()*+,-./:;<=>?\@[]^_`{|}~'; alias %%HTML%%/; }
}
EOF
    my ($rc, $out) = $u->nginx_test;
    is($rc, 0, 'nginx -t: auth_pat_scope at http, server and location, off, punctuation')
        or diag $out;
}

my $leak = join '', map { $_->error_log . ($_->read_file('access.log') // '') } $A, $B;
is(scalar(grep { index($leak, $_) >= 0 } @{ $A->{issued} }), 0,
   'no plaintext token in the logs of A or B');

$B->done(allow => qr/limiting requests/);
$A->done(allow => qr/limiting requests/);
done_testing;
