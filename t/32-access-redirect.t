# The verified identity survives nginx's internal redirects (issue 13,
# item 1): index, try_files, error_page, rewrite ... last and named
# locations clear every module's ctx; with auth_pat_hide_credentials the
# check found no credentials the second time (401 for a valid token).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;
use PatToken qw(make_token seed_token now_ms);

my $t = PatTest->new;
$t->start_redis;
$t->html_dir;
$t->write_file('html/a/index.html', "index of a\n");
$t->write_file('html/r/go', "not served\n");
$t->nginx_conf(http => <<'EOF2');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
log_format pat '$uri user=[$pat_user_id] token=[$pat_token_id] auth=[$http_authorization]';
access_log %%DIR%%/pat.log pat;

server {
    listen 127.0.0.1:%%PORT%%;
    root %%HTML%%;

    # index: /a/ -> /a/index.html
    location /a/ {
        auth_pat "a";
        auth_pat_hide_credentials on;
        index index.html;
    }

    # try_files -> a named location
    location /tf/ {
        auth_pat "tf";
        auth_pat_hide_credentials on;
        try_files /none @echo;
    }

    # error_page 404 -> another protected location
    location /ep/ {
        auth_pat "ep";
        auth_pat_hide_credentials on;
        error_page 404 = /echo/from-ep;
    }

    # index, then a location whose rewrite ... last goes on
    location /r/ {
        auth_pat "r";
        auth_pat_hide_credentials on;
        index go;
    }
    location = /r/go {
        auth_pat "r";
        auth_pat_hide_credentials on;
        rewrite ^ /echo/from-r last;
    }

    # a redirect into a location that needs a scope the token lacks
    location /sc/ {
        auth_pat "sc";
        auth_pat_hide_credentials on;
        try_files /none /scoped/x;
    }
    location /scoped/ {
        auth_pat "scoped";
        auth_pat_scope admin;
        proxy_set_header X-User-Id $pat_user_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }

    # refused, then error_page to an open page: that page, as before
    location /deny/ {
        auth_pat "deny";
        error_page 401 /open/index.html;
    }
    location /open/ {
        auth_pat off;
        alias %%HTML%%/;
    }

    location /echo/ {
        auth_pat "echo";
        auth_pat_hide_credentials on;
        proxy_set_header X-User-Id $pat_user_id;
        proxy_set_header X-Token-Id $pat_token_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
    location @echo {
        proxy_set_header X-User-Id $pat_user_id;
        proxy_set_header X-Token-Id $pat_token_id;
        proxy_pass http://127.0.0.1:%%PORT2%%;
    }
}

server {
    listen 127.0.0.1:%%PORT2%%;
    location / {
        return 200 "uri=[$uri] user=[$http_x_user_id] id=[$http_x_token_id] auth=[$http_authorization]\n";
    }
}
EOF2
$t->start_nginx;

my $tok = seed_token($t, user => 'alice', name => 'ci', expires => now_ms() + 3600_000);
my $id  = $tok->{id};
my %auth = (Authorization => "Bearer $tok->{token}");

sub hmget_calls {
    my $info = $t->redis_cmd('INFO', 'commandstats');
    return $info =~ /cmdstat_hmget:calls=(\d+)/ ? $1 : 0;
}

my $r = $t->get('/a/index.html', \%auth);
is($r->{status}, 200, 'the file itself: 200');

my $calls = hmget_calls();
$r = $t->get('/a/', \%auth);
is($r->{status}, 200, 'index: 200 with a valid token');
is($r->{content}, "index of a\n", 'index: the index file');
is(hmget_calls() - $calls, 1, 'index: the token is looked up once, not again after the redirect');

$r = $t->get('/a/');
is($r->{status}, 401, 'index: no token is still 401');

$r = $t->get('/a/', { Authorization => 'Bearer ' . make_token() });
is($r->{status}, 401, 'index: an unknown token is still 401');

$r = $t->get('/tf/x', \%auth);
is($r->{status}, 200, 'try_files to a named location: 200');
like($r->{content}, qr/user=\[alice\] id=\[\Q$id\E\] auth=\[\]/,
     'try_files: $pat_* kept, the upstream never sees Authorization');

$r = $t->get('/ep/missing', \%auth);
is($r->{status}, 200, 'error_page 404 to a protected location: 200');
like($r->{content}, qr{uri=\[/echo/from-ep\] user=\[alice\] id=\[\Q$id\E\] auth=\[\]},
     'error_page: $pat_* kept, Authorization hidden');

$r = $t->get('/r/', \%auth);
is($r->{status}, 200, 'index then rewrite ... last: 200');
like($r->{content}, qr{uri=\[/echo/from-r\] user=\[alice\] id=\[\Q$id\E\] auth=\[\]},
     'index then rewrite: $pat_* kept, Authorization hidden');

$r = $t->get('/sc/x', \%auth);
is($r->{status}, 403, 'a redirect into a location needing a scope the token lacks: 403');
like($r->{headers}{'www-authenticate'} // '', qr/realm="scoped".*error="insufficient_scope"/,
     'the challenge is that location\'s');
is(($r->{json} || {})->{error}, 'insufficient_scope', 'JSON insufficient_scope');

my $admin = seed_token($t, user => 'root', scopes => 'admin');
$r = $t->get('/sc/x', { Authorization => "Bearer $admin->{token}" });
is($r->{status}, 200, 'the same redirect with the scope: 200');
like($r->{content}, qr/user=\[root\]/, 'with the scope: the identity upstream');

$r = $t->get('/deny/x');
is($r->{status}, 401, 'refused, error_page to an open page: 401');
is($r->{content}, "ok\n", 'refused, error_page: that page, not the JSON error');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="deny"', 'refused, error_page: the challenge');

# the access log, written after every redirect
$t->stop_nginx;
my $log = $t->read_file('pat.log');
like($log, qr{^/a/index\.html user=\[alice\] token=\[\Q$id\E\] auth=\[-\]$}m,
     'access log after index: $pat_* kept, Authorization hidden');
like($log, qr{^/echo/from-ep user=\[alice\] token=\[\Q$id\E\]}m,
     'access log after error_page: $pat_* kept');
unlike($log, qr/\Q$tok->{token}\E/, 'the plaintext token is in no log line');

$t->done;
done_testing();
