# The module loads, and `nginx -t` rejects bad configurations with clear
# messages (issue: foundation).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use PatTest;

my $t = PatTest->new;
my $key = $t->key_file;
$t->write_file('short.key', "x" x 31 . "\n");
$t->write_file('exact.key', "k" x 32 . "\n");
$t->write_file('unreadable.key', "k" x 40);
chmod 0000, $t->path('unreadable.key');

sub conf_ok {
    my ($http, $name) = @_;
    $t->nginx_conf(http => $http);
    my ($rc, $out) = $t->nginx_test;
    is($rc, 0, "nginx -t accepts: $name") or diag $out;
}

sub conf_fails {
    my ($http, $re, $name) = @_;
    $t->nginx_conf(http => $http);
    my ($rc, $out) = $t->nginx_test;
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, $re, "message for: $name") or diag $out;
}

my $srv = "server { listen 127.0.0.1:%%PORT%%; location / { auth_pat \"api\"; root %%HTML%%; } }";

conf_ok("server { listen 127.0.0.1:%%PORT%%; }", 'module loads with no directive');
conf_ok("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; $srv", 'minimal');
conf_ok("auth_pat_redis localhost:6379 db=2 password=secret user=app timeout=250ms keepalive=100ms namespace=x:; "
        . "auth_pat_key_file %%DIR%%/exact.key; auth_pat_token_prefix bw_live_; $srv",
        'all options, 32-byte key with newline');
conf_ok("auth_pat_redis unix:/tmp/redis.sock; auth_pat_key_file %%KEY%%; $srv", 'unix socket');
conf_ok("auth_pat_redis [::1]:6380; auth_pat_key_file %%KEY%%; $srv", 'IPv6 address');

conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%DIR%%/missing.key; $srv",
           qr/\[emerg\].*open\(\) ".*missing\.key" failed \(2: No such file or directory\)/,
           'missing key file');
# Root reads a mode-0000 file through CAP_DAC_OVERRIDE (and
# CAP_DAC_READ_SEARCH): as root (how CI runs), `nginx -t` runs under
# util-linux setpriv with both dropped from the bounding and inheritable
# sets, so that the open() of the key file gets EACCES as it would for
# any other user.
{
    my @drop = ('--bounding-set=-dac_override,-dac_read_search',
                '--inh-caps=-dac_override,-dac_read_search', '--');
    my ($setpriv) = grep { -x } qw(/usr/bin/setpriv /bin/setpriv);
    my $name = 'unreadable key file' . ($> == 0 ? ' (root without CAP_DAC_*)' : '');
    $t->nginx_conf(http => "auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%DIR%%/unreadable.key; $srv");
    my ($rc, $out);
    if ($> != 0) {
        ($rc, $out) = $t->nginx_test;
    } elsif (!$setpriv) {
        ($rc, $out) = (0, 'setpriv (util-linux) not found');
    } else {
        ($rc, $out) = PatTest::_run_capture($setpriv, @drop,
                                            $t->_nginx_args($t->path('nginx-cmd.log')), '-t');
    }
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, qr/\[emerg\] open\(\) "\Q${\ $t->path('unreadable.key')}\E" failed \(13: Permission denied\)/,
         "message for: $name") or diag $out;
}
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%DIR%%/short.key; $srv",
           qr/\[emerg\] key file ".*short\.key" holds a 31-byte key: the key must be 32 to 4096 bytes/,
           'short key');
conf_fails("auth_pat_redis 127.0.0.1:99999; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid port in redis address "127\.0\.0\.1:99999"/, 'bad port');
conf_fails("auth_pat_redis no-such-host.invalid:6379; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] host not found in redis address "no-such-host\.invalid:6379"/, 'unknown host');
conf_fails("auth_pat_redis 127.0.0.1:6379/db; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid (host in )?redis address "127\.0\.0\.1:6379\/db"/, 'address with a path');
conf_fails("auth_pat_redis 127.0.0.1:6379 db=x; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid parameter "db=x"/, 'bad db');
conf_fails("auth_pat_redis 127.0.0.1:6379 timeout=0; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid parameter "timeout=0"/, 'zero timeout');
conf_fails("auth_pat_redis 127.0.0.1:6379 colour=blue; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid parameter "colour=blue"/, 'unknown option');
conf_fails("auth_pat_redis 127.0.0.1:6379 user=app; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] redis "user=" needs "password="/, 'user without password');
conf_fails("auth_pat_redis 127.0.0.1:6379 keepalive=50ms; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid redis keepalive "50ms": use 100ms or more/,
           'keepalive under 100ms');
conf_fails("auth_pat_redis 127.0.0.1:6379 keepalive=x; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid redis keepalive "x"/, 'keepalive not a time');
conf_fails("auth_pat_redis 127.0.0.1:6379 namespace=" . ("n" x 65) . "; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] invalid redis namespace/, 'namespace too long');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; auth_pat_token_prefix bw-live; $srv",
           qr/\[emerg\] invalid token prefix "bw-live": use 1 to 32 letters, digits and "_"/,
           'prefix with a dash');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; auth_pat_token_prefix " . ("a" x 33) . "; $srv",
           qr/\[emerg\] invalid token prefix/, 'prefix too long');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_redis 127.0.0.1:6380; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] "auth_pat_redis" directive is duplicate/, 'duplicate auth_pat_redis');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] "auth_pat_key_file" directive is duplicate/, 'duplicate auth_pat_key_file');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; auth_pat_token_prefix a_; auth_pat_token_prefix b_; $srv",
           qr/\[emerg\] "auth_pat_token_prefix" directive is duplicate/, 'duplicate prefix');
conf_fails("auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%KEY%%; "
           . "server { listen 127.0.0.1:%%PORT%%; location / { auth_pat a; auth_pat b; } }",
           qr/\[emerg\] "auth_pat" directive is duplicate/, 'duplicate auth_pat');
conf_fails("auth_pat_key_file %%KEY%%; $srv",
           qr/\[emerg\] "auth_pat" needs "auth_pat_redis" and "auth_pat_key_file"/, 'auth_pat without redis');
conf_fails("auth_pat_redis 127.0.0.1:6379; $srv",
           qr/\[emerg\] "auth_pat" needs "auth_pat_redis" and "auth_pat_key_file"/, 'auth_pat without key');
conf_fails("server { listen 127.0.0.1:%%PORT%%; auth_pat_redis 127.0.0.1:6379; }",
           qr/\[emerg\] "auth_pat_redis" directive is not allowed here/, 'auth_pat_redis in server');

# the key never shows up in nginx -t output
$t->nginx_conf(http => "auth_pat_redis 127.0.0.1:6379; auth_pat_key_file %%DIR%%/short.key; $srv");
my (undef, $out) = $t->nginx_test;
unlike($out, qr/x{31}/, 'the key is not echoed');

$t->done;
# README's "Example Configuration", as printed but for its paths and port
{
    my $u = PatTest->new;
    my $readme = $u->read_file($u->repo_root . '/README.md');
    my ($block) = $readme =~ /^## Example Configuration\n\n```nginx\n(.*?)^```$/ms;
    ok($block, "README's example configuration found");
    my ($http) = ($block // '') =~ /^http \{\n(.*)^\}\s*\z/ms;
    ok($http, '... an http {} block after load_module');
    $u->write_file('pat.htpasswd', "alice:{PLAIN}x\n");
    $http =~ s{/etc/nginx/pat\.key}{%%KEY%%}g;
    $http =~ s{/etc/nginx/pat\.htpasswd}{%%DIR%%/pat.htpasswd}g;
    $http =~ s{127\.0\.0\.1:8080}{127.0.0.1:%%PORT%%}g;
    $u->nginx_conf(http => $http);
    my ($rc, $out) = $u->nginx_test;
    is($rc, 0, "README's example configuration passes nginx -t") or diag $out;
}

done_testing;
