package PatApi;

# Shared set-up for the admin API tests: one nginx with the API at
# /v1/personal-access-tokens (callers named by the X-User header, or by a
# bearer token), a second API location without lifetimes, and a
# protected static location.

use strict;
use warnings;
use Exporter 'import';
use Test::More ();
use JSON::PP ();
use Time::HiRes ();
use Compress::Raw::Zlib ();
use PatTest;
use PatToken qw(base62_u32);

our @EXPORT_OK = qw(api_env api uuid_re rfc3339_re token_ok secrecy_scan
                    parse_rfc3339 iso_ms gateway_conf conf_test create_retry);

# The http-block configuration of a minimal gateway for tests with several
# nginx on one Redis: the v1 API (caller from X-User) and a protected
# /static/.  redis => "host:port", timeout => "1s", extra => more lines
sub gateway_conf {
    my (%o) = @_;
    my $extra = $o{extra} // '';
    return <<"EOF2";
auth_pat_redis $o{redis} timeout=@{[ $o{timeout} // '1s' ]};
auth_pat_key_file %%KEY%%;
$extra
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
}
EOF2
}

sub api_env {
    my (%o) = @_;
    my $t = PatTest->new;
    $t->start_redis(aof => $o{aof} // 0);
    my $extra = $o{http} // '';
    $t->nginx_conf(http => <<"EOF2");
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
large_client_header_buffers 4 32k;
$extra
server {
    listen 127.0.0.1:%%PORT%%;
    client_max_body_size 64k;

    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
        auth_pat_default_lifetime 7d;
        auth_pat_max_lifetime 30d;
        auth_pat_max_tokens @{[ $o{max_tokens} // 5 ]};
    }
    location /v2/tokens/ {
        auth_pat_api;
        auth_pat_api_user \$http_x_user;
        auth_pat_max_tokens @{[ $o{max_tokens2} // 100 ]};
    }
    location /static/ {
        auth_pat "static";
        alias %%HTML%%/;
    }
}
EOF2
    $t->start_nginx;
    $t->{issued} = [];
    return $t;
}

# api($t, METHOD, PATH, user => U | bearer => TOKEN, body => DATA|RAW,
#     ctype => CT, headers => {}, base => PREFIX)
sub api {
    my ($t, $m, $path, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{'X-User'} = $o{user} if defined $o{user};
    $h{Authorization} = "Bearer $o{bearer}" if defined $o{bearer};
    my %req = (headers => \%h);
    if (exists $o{body}) {
        $req{content} = ref $o{body} ? JSON::PP->new->utf8->canonical->encode($o{body}) : $o{body};
        $h{'Content-Type'} = $o{ctype} // 'application/json';
    }
    # PATH is below BASE (default the /v1 API), unless it names /vN/ itself
    my $base = $o{base} // '/v1/personal-access-tokens';
    $path = "$base$path" unless $path =~ m{^/v\d/};
    my $r = $t->http($m, $path, \%req);
    if ($r->{json} && ref $r->{json} eq 'HASH' && ref $r->{json}{data} eq 'HASH'
        && defined $r->{json}{data}{token}) {
        push @{ $t->{issued} }, $r->{json}{data}{token};
    }
    return $r;
}

sub uuid_re { qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/ }
sub rfc3339_re { qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ }

# create_retry($t, user => U, name => N, within => SECS): a create,
# retried while it answers 503 (the workers still connecting), at most
# SECS (default 10, 30 under the sanitizer); the last answer
sub create_retry {
    my ($t, %o) = @_;
    my $end = Time::HiRes::time() + ($o{within} // ($ENV{PAT_SANITIZE} ? 30 : 10));
    my $r;
    for (;;) {
        $r = api($t, POST => '', user => $o{user}, body => { name => $o{name} });
        return $r if $r->{status} != 503 || Time::HiRes::time() >= $end;
        Time::HiRes::sleep(0.05);
    }
}

# independent check of the token format: prefix, base62, CRC32
sub token_ok {
    my ($tok, $prefix) = @_;
    $prefix //= 'pat_';
    return 0 unless $tok =~ /^\Q$prefix\E[0-9A-Za-z]{34}$/;
    my $body = substr($tok, 0, -6);
    return base62_u32(Compress::Raw::Zlib::crc32($body)) eq substr($tok, -6);
}

# nginx -t of one server (its lines given) on an unreachable Redis:
# ($rc, $output); extra => lines for the http block
sub conf_test {
    my ($server, %o) = @_;
    my $u = PatTest->new;
    $u->nginx_conf(http => "auth_pat_redis 127.0.0.1:1;\nauth_pat_key_file %%KEY%%;\n"
                         . ($o{extra} // '')
                         . "server {\n    listen 127.0.0.1:%%PORT%%;\n$server\n}\n");
    return $u->nginx_test;
}

# an instant in ms as the API writes it: 2026-12-01T19:33:47.789Z
sub iso_ms {
    my ($ms) = @_;
    my @g = gmtime(int($ms / 1000));
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $g[5] + 1900, $g[4] + 1,
                   @g[3, 2, 1, 0], $ms % 1000);
}

sub parse_rfc3339 {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se, $ms) = $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$/ or return;
    require Time::Local;
    return Time::Local::timegm($se, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

# every key and value of every type in Redis, and the logs: no plaintext
# token issued during the run appears anywhere
sub secrecy_scan {
    my ($t) = @_;
    my @issued = @{ $t->{issued} };
    my $dump = '';
    my $cursor = 0;
    do {
        my $r = $t->redis_cmd('SCAN', $cursor, 'COUNT', 1000);
        $cursor = $r->[0];
        for my $k (@{ $r->[1] }) {
            $dump .= "$k\n";
            my $type = $t->redis_cmd('TYPE', $k);
            my $v = $type eq 'string' ? [ $t->redis_cmd('GET', $k) ]
                  : $type eq 'hash'   ? $t->redis_cmd('HGETALL', $k)
                  : $type eq 'zset'   ? $t->redis_cmd('ZRANGE', $k, 0, -1, 'WITHSCORES')
                  : $type eq 'set'    ? $t->redis_cmd('SMEMBERS', $k)
                  : $type eq 'list'   ? $t->redis_cmd('LRANGE', $k, 0, -1)
                  : [ "unknown type $type" ];
            $dump .= join("\n", map { $_ // '' } @$v) . "\n";
        }
    } while ($cursor ne '0');
    my $logs = $t->error_log . ($t->read_file('access.log') // '');
    my ($in_redis, $in_logs) = (0, 0);
    for my $tok (@issued) {
        $in_redis++ if index($dump, $tok) >= 0;
        $in_logs++ if index($logs, $tok) >= 0;
        # not even the secret part alone
        $in_redis++ if index($dump, substr($tok, 8, 20)) >= 0;
    }
    Test::More::cmp_ok(scalar @issued, '>', 0, 'secrecy: tokens were issued');
    Test::More::is($in_redis, 0, 'secrecy: no plaintext token in any Redis key or value ('
                   . scalar(@issued) . ' tokens, ' . length($dump) . ' bytes scanned)');
    Test::More::is($in_logs, 0, 'secrecy: no plaintext token in error.log or access.log');
}

1;
