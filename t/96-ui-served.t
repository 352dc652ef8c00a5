# auth_pat_ui [api=URI]: the page, app.js and app.css, embedded at build
# time from src/ui/, byte for byte but for the page's data-api value (the
# api= URI, HTML-escaped); the security headers on all three (and on the
# location's error pages); no-store on the page; <location> alone is a
# 301 to <location>/; GET and HEAD only; the location's nginx auth
# applies; nothing is asked of Redis; nginx -t refuses what cannot work.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MIME::Base64 ();
use PatTest;
use PatApi qw(conf_test);

my $csp = "default-src 'none'; script-src 'self'; style-src 'self'; "
        . "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        . "base-uri 'none'; form-action 'none'";

my $t = PatTest->new;
$t->start_redis;
$t->write_file('htpasswd', "alice:{PLAIN}s3cret\n");
$t->nginx_conf(http => <<'EOF');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location /tokens/ {
        auth_pat_ui;
    }
    location /mine {
        auth_basic "pat";
        auth_basic_user_file %%DIR%%/htpasswd;
        auth_pat_ui "api=/api/t&b='x'";
    }
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }

    # README's single sign-on setup: auth_request to the SSO's check
    location = /_sso {
        internal;
        proxy_pass http://127.0.0.1:%%PORT2%%/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
    location "/my tokens" {
        auth_pat_ui;
    }
    location /sso/tokens/ {
        auth_request /_sso;
        auth_pat_ui api=/sso/api;
    }
    location /sso/api {
        auth_request /_sso;
        auth_request_set $sso_user $upstream_http_x_user;
        auth_pat_api;
        auth_pat_api_user $sso_user;
    }
}
# the SSO: a session cookie "s=ok" is alice
server {
    listen 127.0.0.1:%%PORT2%%;
    location = /check {
        if ($cookie_s != ok) { return 401; }
        # (not "return 204": nginx 1.22 then adds 0 to a null pointer,
        # which UBSan reports)
        add_header X-User alice;
        return 200 "ok\n";
    }
}
EOF
$t->start_nginx;

my $root = $t->repo_root;
my %file = map { $_ => $t->read_file("$root/src/ui/$_") } qw(index.html app.js app.css);
like($file{'index.html'}, qr/data-api="\/v1\/personal-access-tokens"/,
     'src/ui/index.html names the default API in data-api');

sub headers_ok {
    my ($r, $what) = @_;
    is($r->{headers}{'content-security-policy'}, $csp, "$what: the CSP");
    is($r->{headers}{'x-content-type-options'}, 'nosniff', "$what: nosniff");
    is($r->{headers}{'referrer-policy'}, 'no-referrer', "$what: no-referrer");
}

my $r = $t->get('/tokens/');
is($r->{status}, 200, 'GET <location>/: 200');
is($r->{content}, $file{'index.html'}, '... the page, byte for byte (the default api=)');
like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8$}, '... text/html');
is($r->{headers}{'cache-control'}, 'no-store', '... no-store');
headers_ok($r, 'the page');

is($t->get('/tokens/index.html')->{content}, $file{'index.html'}, '<location>/index.html: the page too');

$r = $t->get('/tokens/app.js');
is($r->{status}, 200, 'app.js: 200');
is($r->{content}, $file{'app.js'}, '... src/ui/app.js');
like($r->{headers}{'content-type'}, qr{^text/javascript; charset=utf-8$}, '... text/javascript');
is($r->{headers}{'cache-control'}, 'no-cache', '... revalidated, not stored for ever');
headers_ok($r, 'app.js');

$r = $t->get('/tokens/app.css');
is($r->{content}, $file{'app.css'}, 'app.css: src/ui/app.css');
like($r->{headers}{'content-type'}, qr{^text/css; charset=utf-8$}, '... text/css');
headers_ok($r, 'app.css');

$r = $t->get('/tokens/nope.js');
is($r->{status}, 404, 'anything else below the location: 404');
headers_ok($r, 'the 404');
is($t->get('/tokens/app.js/x')->{status}, 404, 'app.js/x: 404');

$r = $t->http('HEAD', '/tokens/app.css');
is($r->{status}, 200, 'HEAD: 200');
is($r->{headers}{'content-length'}, length $file{'app.css'}, '... the length');
is($r->{content} // '', '', '... no body');

for my $m (qw(POST PUT DELETE)) {
    $r = $t->http($m, '/tokens/', { content => 'x' });
    is($r->{status}, 405, "$m: 405");
    is($r->{headers}{allow}, 'GET, HEAD', '... Allow: GET, HEAD');
}

# behind auth_basic, with api= escaped into the attribute
is($t->get('/mine/')->{status}, 401, 'behind auth_basic, no password: 401');
my $basic = { Authorization => 'Basic ' . MIME::Base64::encode_base64('alice:s3cret', '') };
$r = $t->get('/mine/', $basic);
is($r->{status}, 200, '... with it: 200');
(my $want = $file{'index.html'})
    =~ s/data-api="\/v1\/personal-access-tokens"/data-api="\/api\/t&amp;b=&#39;x&#39;"/;
is($r->{content}, $want, 'api=: the page names it in data-api, HTML-escaped, and is otherwise the same');

$r = $t->get('/mine', $basic);
is($r->{status}, 301, '<location> alone: 301');
like($r->{headers}{location} // '', qr{^http://[^/]+/mine/$}, '... to <location>/');
like($t->get('/mine?x=1', $basic)->{headers}{location} // '', qr{/mine/\?x=1$}, '... keeping the query');

$r = $t->get('/my%20tokens');
is($r->{status}, 301, 'a prefix with a space, alone: 301');
like($r->{headers}{location} // '', qr{/my%20tokens/$}, '... to the escaped URI, with the slash');

# behind auth_request: the page, and the API as the SSO's user
is($t->get('/sso/tokens/')->{status}, 401, 'behind auth_request, no session: 401');
$r = $t->get('/sso/tokens/', { Cookie => 's=ok' });
is($r->{status}, 200, '... with one: the page');
like($r->{content}, qr/data-api="\/sso\/api"/, '... naming its API');
$r = $t->http('POST', '/sso/api', { headers => { Cookie => 's=ok', 'Content-Type' => 'application/json' },
                                     content => '{"name":"from the page"}' });
is($r->{status}, 201, "the API behind the same SSO: a create as the SSO's user");
$r = $t->get('/sso/api', { Cookie => 's=ok' });
is($r->{json}{totalCount}, 1, '... listed for that user');
is($t->get('/v1/personal-access-tokens', { 'X-User' => 'alice' })->{json}{items}[0]{name}, 'from the page',
   '... who is alice');

# nothing is asked of Redis
$t->stop_redis;
is($t->get('/tokens/')->{content}, $file{'index.html'}, 'Redis stopped: the page is still served');
$t->done;

# nginx -t
for my $c (
    [ "location = /t/ { auth_pat_ui; }", qr/"auth_pat_ui" needs a prefix location/, 'an exact location' ],
    [ "location ~ ^/t/ { auth_pat_ui; }", qr/"auth_pat_ui" needs a prefix location/, 'a regex location' ],
    [ "location /t/ { auth_pat_ui api=v1; }", qr/invalid "api=v1": the API's location is a path on this server/, 'api= not a path' ],
    [ "location /t/ { auth_pat_ui api=; }", qr/invalid "api="/, 'an empty api=' ],
    [ "location /t/ { auth_pat_ui api=/; }", qr/invalid "api=\/"/, 'api=/ alone' ],
    [ "location /t/ { auth_pat_ui api=/v1?a=1; }", qr/invalid "api=\/v1\?a=1"/, 'a query in api=' ],
    [ "location /t/ { auth_pat_ui api=/v1#x; }", qr/invalid/, 'a fragment in api=' ],
    [ "location /t/ { auth_pat_ui api=//evil.example/v1; }", qr/invalid "api=\/\/evil/, 'api= of another host (//)' ],
    [ 'location /t/ { auth_pat_ui "api=/\\evil.example/v1"; }', qr/invalid "api=/, 'a backslash in api=' ],
    [ "location /t/ { auth_pat_ui api=/v1/../admin; }", qr/invalid "api=\/v1\/\.\.\/admin"/, 'a .. segment' ],
    [ "location \@x { auth_pat_ui; }", qr/"auth_pat_ui" needs a prefix location/, 'a named location' ],
    [ "location /t/ { proxy_pass http://127.0.0.1:1; auth_pat_ui; }", qr/cannot share a location with another content handler/, 'after proxy_pass' ],
    [ "location /t/ { auth_pat_ui; auth_pat_api; }", qr/"auth_pat_api" directive cannot share a location with "auth_pat_ui"/, 'auth_pat_api after it' ],
    [ "location /t/ { auth_pat_ui; auth_pat_status; }", qr/cannot share a location with "auth_pat_ui"/, 'auth_pat_status after it' ],
    [ "location /t/ { auth_pat_ui colour=blue; }", qr/invalid parameter "colour=blue"/, 'an unknown parameter' ],
    [ "location /t/ { auth_pat_ui; auth_pat_ui; }", qr/"auth_pat_ui" directive is duplicate/, 'twice' ],
    [ "location /t/ { auth_pat_ui \"api=/a b\"; }", qr/invalid "api=\/a b"/, 'a space in api=' ],
) {
    my ($rc, $out) = conf_test($c->[0]);
    isnt($rc, 0, "nginx -t refuses $c->[2]");
    like($out, $c->[1], '... saying why') or diag $out;
}
for my $ok ('/v1/tokens', '/v1/tokens/', '/a-b_c.d~e/%41/x:y@z') {
    my ($rc, $out) = conf_test("location /t/ { auth_pat_ui api=$ok; }");
    is($rc, 0, "nginx -t: auth_pat_ui api=$ok") or diag $out;
}

done_testing;
