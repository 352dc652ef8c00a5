# GET <api>/openapi.json: the module serves openapi/openapi.json, embedded
# at build time, byte for byte; GET and HEAD only (405 with Allow); no
# caller identification (no X-User, no token, not even Redis), but the
# location's own nginx auth applies (auth_basic: 401 without the
# password); a bearer token sent along is not looked up; counted under
# route="openapi" in the metrics.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP ();
use MIME::Base64 ();
use PatTest;
use PatApi qw(api);

my $t = PatTest->new;
$t->start_redis;
$t->write_file('htpasswd', "admin:{PLAIN}s3cret\n");
$t->nginx_conf(http => <<'EOF');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    location /basic/tokens {
        auth_basic "admin";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_api;
        auth_pat_api_user $remote_user;
    }
    location = /metrics { auth_pat_status; }
}
EOF
$t->start_nginx;

my $file = $t->read_file($t->repo_root . '/openapi/openapi.json');
my $doc = JSON::PP->new->utf8->decode($file);
is($doc->{openapi}, '3.1.0', 'the repository holds an OpenAPI 3.1 document');

my $r = $t->get('/v1/personal-access-tokens/openapi.json');
is($r->{status}, 200, 'GET <api>/openapi.json, no caller: 200');
is($r->{content}, $file, '... openapi/openapi.json, byte for byte');
like($r->{headers}{'content-type'} // '', qr{^application/json}, '... as application/json');
is($r->{headers}{'content-length'}, length $file, '... with its length');

is($t->get('/v1/personal-access-tokens/openapi.json/')->{content}, $file,
   'a trailing slash is the same');
is($t->get('/v1/personal-access-tokens/openapi.json?x=1')->{content}, $file,
   'a query string is ignored');
is($t->get('/v1/personal-access-tokens/openapi.json',
           { Authorization => 'Bearer pat_notatoken' })->{status}, 200,
   'a bad bearer token sent along is not the caller: still 200');

$r = $t->http('HEAD', '/v1/personal-access-tokens/openapi.json');
is($r->{status}, 200, 'HEAD: 200');
is($r->{content} // '', '', '... without a body');

for my $m (qw(POST DELETE PUT)) {
    $r = $t->http($m, '/v1/personal-access-tokens/openapi.json',
                  { headers => { 'X-User' => 'alice', 'Content-Type' => 'application/json' },
                    content => '{}' });
    is($r->{status}, 405, "$m: 405");
    is($r->{headers}{allow}, 'GET, HEAD', '... Allow: GET, HEAD');
    is($r->{json}{error}, 'method_not_allowed', '... method_not_allowed');
}

is(api($t, GET => '/openapi.json/rotate', user => 'alice')->{status}, 404,
   '<api>/openapi.json/rotate: 404');
is(api($t, POST => '/openapi.json/rotate', user => 'alice')->{status}, 404,
   'POST <api>/openapi.json/rotate: 404, not a rotation');

# the location's nginx auth
is($t->get('/basic/tokens/openapi.json')->{status}, 401,
   'behind auth_basic, without the password: 401');
$r = $t->get('/basic/tokens/openapi.json',
             { Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:s3cret', '') });
is($r->{status}, 200, '... with it: 200');
is($r->{content}, $file, '... the document');

# no Redis needed: the document asks nothing of it
$t->stop_redis;
$r = $t->get('/v1/personal-access-tokens/openapi.json');
is($r->{status}, 200, 'Redis stopped: still 200');
is($r->{content}, $file, '... the document');
is(api($t, GET => '', user => 'alice')->{status}, 503,
   '... while the list answers 503');

# a method the collection does not have is no route of the metrics
is(api($t, PUT => '', user => 'alice', body => {})->{status}, 405,
   'PUT on the collection: 405');

# counted in the log phase, which runs after the answer went out
my $m;
PatTest::until_ok(3, sub {
    $m = $t->get('/metrics')->{content};
    $m =~ /^auth_pat_api_requests_total\{route="other",status="405"\} 1$/m
});
my ($n) = $m =~ /^auth_pat_api_requests_total\{route="openapi",status="200"\} (\d+)$/m;
is($n, 7, 'metrics: the 200s counted under route="openapi"');
($n) = $m =~ /^auth_pat_api_requests_total\{route="openapi",status="405"\} (\d+)$/m;
is($n, 3, 'metrics: the 405s too');

($n) = $m =~ /^auth_pat_api_requests_total\{route="other",status="405"\} (\d+)$/m;
is($n, 1, 'metrics: the PUT on the collection is route="other", not "list"');
unlike($m, qr/^auth_pat_api_requests_total\{route="list",status="405"\}/m,
       '... and no list 405');

# the checker every test runs at its end (t/lib/PatOpenAPI.pm) can fail:
# a real answer passes, the same answer with a wrong type, a bad time, an
# extra field or an undocumented status does not
{
    my $js = JSON::PP->new->utf8->canonical;
    my $rec = sub {
        my ($status, $body, $path) = @_;
        return $js->encode({ kind => 'api', method => 'GET', prefix => '/v1/personal-access-tokens',
                             path => $path // '/config', status => $status, body => $body });
    };
    my $check = sub {
        $t->write_file('records.jsonl', join("\n", @_) . "\n");
        my $out = `/usr/bin/python3 @{[ $t->repo_root ]}/t/lib/openapi_check.py @{[ $t->repo_root ]}/openapi/openapi.json @{[ $t->path('records.jsonl') ]} 2>&1`;
        return ($? >> 8, $out);
    };
    my $cfg = { data => { defaultLifetime => undef, maxLifetime => undef, scopesAllowed => undef, maxTokens => 100 } };
    my ($rc, $out) = $check->($rec->(200, $cfg));
    is($rc, 0, 'the checker: a GET /config answer as the module sends it passes') or diag $out;
    ($rc, $out) = $check->($rec->(200, { data => { %{ $cfg->{data} }, maxTokens => '100' } }));
    is($rc, 1, 'the checker: a wrong type fails');
    like($out, qr/maxTokens/, '... naming the field');
    ($rc) = $check->($rec->(200, { data => { %{ $cfg->{data} }, colour => 'blue' } }));
    is($rc, 1, 'the checker: a field the document does not have fails');
    ($rc) = $check->($rec->(418, { error => 'internal', message => 'x' }));
    is($rc, 1, 'the checker: an undocumented status fails');
    my $tok = { id => '0b2a5c1e-0000-4000-8000-000000000000', name => 'n', prefix => 'pat_abcd',
                scopes => [], createdAt => '2026-13-45T00:00:00.000Z', expiresAt => undef,
                lastUsedAt => undef, revokedAt => undef, status => 'active' };
    ($rc, $out) = $check->($rec->(200, { data => $tok }, "/$tok->{id}"));
    is($rc, 1, 'the checker: a time that is no date-time fails');
    like($out, qr/createdAt/, '... naming the field');
}

$t->done;
done_testing;
