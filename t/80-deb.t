# The Debian package: `./build.sh deb` packages the module under test
# (PAT_DEB_SO=$PAT_MODULE, nothing compiled) into the test's directory
# (PAT_DEB_DIR); its fields, files, snippet and maintainer scripts are
# checked, lintian finds no error, and the extracted package works: its
# load_module snippet, pointed at the extracted .so, is included at the top
# level of a configuration that loads nothing else (nginx -t, a token made
# by the API lets a request in), and so is pkg/pat.conf.example, the
# conf.d file of README's "Installing into the system nginx", inside
# http {} with its paths moved to the test's own.  Nothing is installed:
# the maintainer scripts run against /etc/nginx/modules-enabled only in a
# private mount namespace, over a directory of the test's.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use MIME::Base64 ();
use PatTest;

my $T0 = time;
my $t = PatTest->new;
my $root = $t->repo_root;
my $module = $t->module_path;
my $SAN = $ENV{PAT_SANITIZE} ? 1 : 0;
my $PKG = 'libnginx-mod-http-auth-pat';
my $SO = 'ngx_http_auth_pat_module.so';

sub which { my ($c) = @_; return (grep { -x "$_/$c" } split /:/, $ENV{PATH} // '')[0] }
for my $tool (qw(dpkg-deb dpkg-shlibdeps strip nm readelf timeout)) {
    plan skip_all => "$tool not installed (packages dpkg-dev, binutils)" unless which($tool);
}
plan skip_all => "no module at $module" unless -f $module;

# a command, bounded in time: (exit code, stdout and stderr)
sub run {
    my ($secs, @cmd) = @_;
    return PatTest::_run_capture('timeout', '-k', '5', $secs, @cmd);
}

# ---------------------------------------------------------------- build
my $out = $t->path('deb');
my ($rc, $log);
{
    local $ENV{PAT_DEB_SO} = $module;
    local $ENV{PAT_DEB_DIR} = $out;
    local $ENV{PAT_DEB_LINTIAN} = 0;    # run below, where its verdict is judged
    local $ENV{PAT_DEB_MAINTAINER} = 'PAT tests <pat-tests@example.org>';
    ($rc, $log) = run(60, "$root/build.sh", 'deb');
}
is($rc, 0, './build.sh deb with PAT_DEB_SO succeeds') or diag $log;
unlike($log, qr/==> (compiling|configuring)/, 'PAT_DEB_SO: nothing is compiled');

chomp(my $upstream = $t->read_file("$root/VERSION") // '');
my ($arch) = (run(10, 'dpkg', '--print-architecture'))[1] =~ /(\S+)/;
opendir my $dh, $out or BAIL_OUT("no $out: $log");
my @entries = grep { !/^\.\.?\z/ } readdir $dh;
closedir $dh;
my @debs = grep { /\.deb\z/ } @entries;
is_deeply(\@debs, [ "${PKG}_${upstream}-1_$arch.deb" ], 'one package, named PACKAGE_VERSION_ARCH.deb')
    or BAIL_OUT("no package:\n$log");
my $deb = "$out/$debs[0]";
ok(!grep({ /^\.deb-stage/ } @entries), 'the staging directory is gone');

# ---------------------------------------------------------------- fields
my %f;
{
    my ($frc, $text) = run(10, 'dpkg-deb', '-f', $deb);
    is($frc, 0, 'dpkg-deb -f') or diag $text;
    my $k;
    for (split /\n/, $text) {
        if (/^([\w-]+):\s*(.*)$/) { $k = $1; $f{$k} = $2 }
        elsif (defined $k)        { $f{$k} .= "\n$_" }
    }
}
is($f{Package}, $PKG, 'Package');
like($upstream, qr/^[0-9][0-9A-Za-z.+~]*\z/, 'VERSION holds an upstream version');
is($f{Version}, "$upstream-1", 'Version: VERSION and the packaging revision');
is($f{Architecture}, $arch, "Architecture: $arch");
is($f{Section}, 'httpd', 'Section');
is($f{Priority}, 'optional', 'Priority');
is($f{Maintainer}, 'PAT tests <pat-tests@example.org>', 'Maintainer: PAT_DEB_MAINTAINER');
like($f{'Installed-Size'} // '', qr/^[1-9][0-9]*\z/, 'Installed-Size');
like($f{Description} // '', qr/^\S.{10,79}\n /, 'Description: a synopsis and a long description');
like($f{Description} // '', qr/restart/, 'Description: says that nginx must be restarted');

my @deps = map { s/^\s+|\s+$//gr } split /,/, $f{Depends} // '';
my ($abi) = (run(10, 'dpkg-query', '-W', '-f=${Provides}\n', 'nginx'))[1] =~ /(nginx-abi-[^\s,(]+)/;
like($abi // '', qr/^nginx-abi-1\.22\.1-\d+\z/, "the installed nginx provides an ABI (@{[ $abi // 'none' ]})");
is($deps[0], $abi, 'Depends: the nginx ABI first, as Debian\'s modules');
ok((grep { $_ eq 'nginx-abi-1.22.1-7' } @deps), 'Depends: nginx-abi-1.22.1-7 (Debian 12)')
    or diag $f{Depends};
# every library the .so needs comes from a package it depends on
{
    my ($drc, $dyn) = run(10, 'readelf', '-d', $module);
    my @needed = $dyn =~ /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g;
    ok(@needed, "the module needs libraries (@needed)");
    my %dep = map { /^([\w.+-]+)/ ? ($1 => 1) : () } @deps;
    for my $lib (@needed) {
        my ($src, $owners) = run(10, 'dpkg', '-S', "*/$lib");
        my @pkgs = map { /^([\w.+-]+)(?::[\w-]+)?:\s/ ? $1 : () } split /\n/, $owners;
        ok((grep { $dep{$_} } @pkgs), "Depends names the package of $lib (@pkgs)") or diag $f{Depends};
    }
}

# ---------------------------------------------------------------- files
my @want = (
    "usr/lib/nginx/modules/$SO",
    'usr/share/doc/libnginx-mod-http-auth-pat/README.md.gz',
    'usr/share/doc/libnginx-mod-http-auth-pat/changelog.Debian.gz',
    'usr/share/doc/libnginx-mod-http-auth-pat/copyright',
    'usr/share/doc/libnginx-mod-http-auth-pat/examples/pat.conf',
    'usr/share/nginx/modules-available/mod-http-auth-pat.conf',
);
{
    my ($crc, $list) = run(10, 'dpkg-deb', '-c', $deb);
    my (@files, %bad);
    for (split /\n/, $list) {
        my ($mode, $owner, $path) = /^(\S+)\s+(\S+)\s+\d+\s+\S+\s+\S+\s+\.\/(.*)$/ or next;
        $bad{$path} = "$mode $owner" if $owner ne 'root/root'
            || ($mode =~ /^d/ ? $mode ne 'drwxr-xr-x' : $mode ne '-rw-r--r--');
        push @files, $path unless $mode =~ /^d/;
    }
    is_deeply([ sort @files ], [ sort @want ], 'the file list') or diag $list;
    is_deeply(\%bad, {}, 'root/root, directories 0755, files 0644') or diag $list;
}

my $x = $t->path('x');
($rc, $log) = run(20, 'dpkg-deb', '-x', $deb, $x);
is($rc, 0, 'dpkg-deb -x') or diag $log;
my $xso = "$x/usr/lib/nginx/modules/$SO";
my $doc = "$x/usr/share/doc/$PKG";
my $snippet = $t->read_file("$x/usr/share/nginx/modules-available/mod-http-auth-pat.conf");
is($snippet, "load_module modules/$SO;\n", 'the modules-available snippet');

{
    my (undef, $sect) = run(10, 'readelf', '-S', '-W', $xso);
    unlike($sect, qr/\.debug_|\.symtab/, 'the .so is stripped (no debug info, no .symtab)');
    my (undef, $dyn) = run(10, 'nm', '-D', $xso);
    like($dyn, qr/^[0-9a-f]+ [A-Z] ngx_http_auth_pat_module$/m, 'the .so defines ngx_http_auth_pat_module');
    my @leak = grep { /^(redis|sds|hi_)/ } map { (split ' ')[-1] } split /\n/, $dyn;
    is_deeply(\@leak, [], 'no hiredis symbol in its dynamic table');
    # the package holds THAT module: the same build ID (or, without one,
    # the same dynamic symbols)
    my ($id_x) = (run(10, 'readelf', '-n', $xso))[1] =~ /Build ID: ([0-9a-f]+)/;
    my ($id_m) = (run(10, 'readelf', '-n', $module))[1] =~ /Build ID: ([0-9a-f]+)/;
    if (defined $id_m) {
        is($id_x, $id_m, "the packaged .so is PAT_MODULE, stripped (build ID $id_m)");
    } else {
        is($dyn, (run(10, 'nm', '-D', $module))[1], 'the packaged .so is PAT_MODULE, stripped (nm -D)');
    }
}

like($t->read_file("$doc/copyright") // '',
     qr{\AFormat: https://www\.debian\.org/doc/packaging-manuals/copyright-format/1\.0/\n(?s:.*)^Files: \*\nCopyright: the ngx_http_auth_pat_module authors\nLicense: BSD-2-Clause$}m,
     'copyright: machine-readable, BSD-2-Clause');
{
    my (undef, $cl) = run(10, 'gzip', '-dc', "$doc/changelog.Debian.gz");
    like($cl, qr/\A\Q$PKG\E \(\Q$upstream\E-1\) unstable; urgency=medium\n/, 'changelog.Debian.gz: this version');
    my (undef, $rm) = run(10, 'gzip', '-dc', "$doc/README.md.gz");
    like($rm, qr/\A# ngx_http_auth_pat_module\n/, 'README.md.gz');
}
is($t->read_file("$doc/examples/pat.conf"), $t->read_file("$root/pkg/pat.conf.example"),
   'examples/pat.conf is pkg/pat.conf.example');

# ---------------------------------------------------------------- control
my $ctl = $t->path('control');
($rc, $log) = run(10, 'dpkg-deb', '-e', $deb, $ctl);
is($rc, 0, 'dpkg-deb -e') or diag $log;
for my $s (qw(postinst prerm postrm)) {
    ok(-f "$ctl/$s" && -x _, "$s exists and is executable");
    my ($src, $e) = run(10, 'sh', '-n', "$ctl/$s");
    is($src, 0, "$s: sh -n") or diag $e;
    # its commands: no comments, no here-document (the messages)
    (my $code = $t->read_file("$ctl/$s") // '') =~ s/<<\s*'?(\w+)'?\n.*?^\1\n//msg;
    my @code = grep { !/^\s*#/ } split /\n/, $code;
    ok(!grep({ /dpkg-trigger|nginx-reload|invoke-rc\.d|systemctl|nginx\s+-s/ } @code),
       "$s neither reloads nor restarts nginx") or diag join "\n", @code;
}
like($t->read_file("$ctl/postinst") // '', qr/systemctl restart nginx/, 'postinst says: systemctl restart nginx');
like($t->read_file("$ctl/postinst") // '', qr/^\s+ln -sf "\/usr\/share\/nginx\/modules-available\/\$from" "\$enabled\/\$to"$/m,
     'postinst links the snippet');
{
    my ($mrc, $m) = PatTest::_run_capture('/bin/sh', '-c', "cd '$x' && md5sum -c --quiet '$ctl/md5sums'");
    is($mrc, 0, 'md5sums match the files') or diag $m;
}

# The maintainer scripts, as dpkg calls them, in a mount namespace of their
# own where /etc/nginx/modules-enabled is a directory of the test's (a
# marker file proves the bind mount before any script runs; the host's
# directory is never written).
SKIP: {
    skip 'maintainer scripts: not root', 3 if $> != 0;
    skip 'maintainer scripts: no /etc/nginx/modules-enabled', 3 unless -d '/etc/nginx/modules-enabled';
    skip 'maintainer scripts: no unshare', 3 unless which('unshare');
    my $en = $t->path('modules-enabled');
    mkdir $en or die;
    $t->write_file("$en/.pat-sandbox", '');
    $t->write_file('scripts.sh', <<"EOF");
set -e
mount --bind '$en' /etc/nginx/modules-enabled
[ -e /etc/nginx/modules-enabled/.pat-sandbox ] || exit 97
state() { printf '%s:' "\$1"; cd /etc/nginx/modules-enabled; for f in 50-*; do [ -L "\$f" ] && printf ' %s->%s' "\$f" "\$(readlink "\$f")"; done; echo; }
'$ctl/postinst' configure '' > '$en/../postinst.out'; state install
'$ctl/prerm' upgrade $f{Version}; '$ctl/postinst' configure $f{Version} > /dev/null; state upgrade
'$ctl/prerm' remove; '$ctl/postrm' remove > /dev/null; state remove
'$ctl/postinst' configure $f{Version} > /dev/null; state reinstall
rm /etc/nginx/modules-enabled/50-mod-http-auth-pat.conf
'$ctl/prerm' upgrade $f{Version}; '$ctl/postinst' configure $f{Version} > /dev/null; state unlinked-upgrade
'$ctl/postinst' configure '' > /dev/null; '$ctl/prerm' remove; '$ctl/postrm' remove > /dev/null; '$ctl/postrm' purge; state purge
EOF
    my ($src, $got) = run(20, 'unshare', '--mount', '--propagation', 'private', 'sh', $t->path('scripts.sh'));
    skip "maintainer scripts: no private mount namespace here ($got)", 3
        if $src != 0 && $got =~ /unshare: |mount: /;
    my $l = '50-mod-http-auth-pat.conf->/usr/share/nginx/modules-available/mod-http-auth-pat.conf';
    my $r = '50-mod-http-auth-pat.conf.removed->/usr/share/nginx/modules-available/mod-http-auth-pat.conf';
    is($src, 0, 'maintainer scripts run') or diag $got;
    is($got, "install: $l\nupgrade: $l\nremove: $r\nreinstall: $l\nunlinked-upgrade:\npurge:\n",
       'the link: made on install, kept on upgrade, set aside on remove, back on reinstall, '
       . 'not remade after the admin removed it, gone on purge') or diag $got;
    like($t->read_file('postinst.out') // '', qr/systemctl restart nginx.*\n(?s:.*)reload.*keeps/,
         'postinst prints: restart, a reload keeps the old module');
}

# ./build.sh install needs root, and says so before doing anything
SKIP: {
    skip 'install as another user: not root, or no setpriv', 2 unless $> == 0 && which('setpriv');
    my ($irc, $text) = run(20, 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups',
                           "$root/build.sh", 'install');
    isnt($irc, 0, './build.sh install as nobody fails');
    like($text, qr/install needs root/, '... and says it needs root') or diag $text;
}

# ---------------------------------------------------------------- lintian
SKIP: {
    skip 'lintian not installed', 1 unless which('lintian');
    my ($lrc, $report) = run(120, 'lintian', '--tag-display-limit', '0', $deb);
    my @err = grep { /^E: / } split /\n/, $report;
    note "lintian:\n$report";
    # The sanitizer build is not what the package is for; only errors that
    # come from its ASan runtime are let pass, and said so.
    if ($SAN && @err && !grep { !/asan|sanitizer/i } @err) {
        skip "lintian's verdict on the ASan build of the module: errors caused by its libasan dependency: @err", 1;
    }
    is_deeply(\@err, [], 'lintian: no error') or diag $report;
}

# ---------------------------------------------------------------- in nginx
# The snippet of the package, with the module path moved to the extracted
# .so (nginx resolves modules/ against its prefix, here /usr/lib/nginx)
(my $snip = $snippet) =~ s{\bmodules/\Q$SO\E}{$xso};
isnt($snip, $snippet, 'the snippet names modules/ngx_http_auth_pat_module.so');
my $snip_file = $t->write_file('mod-http-auth-pat.conf', $snip);

$t->start_redis;
$t->nginx_conf(load_module => 0, main => "include $snip_file;", http => <<'EOF');
auth_pat_redis %%REDIS%% timeout=1s;
auth_pat_key_file %%KEY%%;
server {
    listen 127.0.0.1:%%PORT%%;
    location /v1/personal-access-tokens {
        auth_pat_api;
        auth_pat_api_user $http_x_user;
    }
    location /static/ { auth_pat "t"; alias %%HTML%%/; }
}
EOF
unlike($t->{conf}, qr/^\s*load_module/m, 'the configuration loads the module only through the snippet');
($rc, $log) = $t->nginx_test;
is($rc, 0, 'nginx -t with the package\'s snippet') or diag $log;
$t->start_nginx;

sub bearer { return { Authorization => "Bearer $_[0]" } }
my $r = $t->post_json('/v1/personal-access-tokens', { name => 'deb' }, { 'X-User' => 'alice' });
is($r->{status}, 201, 'the API of the packaged module creates a token') or diag $r->{content};
my $tok = $r->{json} && $r->{json}{data} ? $r->{json}{data}{token} : '';
$r = $t->get('/static/protected.txt', bearer($tok));
is($r->{status}, 200, 'the token opens a protected file');
is($r->{content}, "secret\n", '... its content');
is($t->get('/static/protected.txt')->{status}, 401, 'no token: 401');
$t->stop_nginx;

# pkg/pat.conf.example, README's conf.d file, inside http {}: its Redis,
# key file, password file and ports moved to the test's
{
    # README's password file: openssl passwd -6 (crypt(3)'s SHA-512) for
    # alice, -apr1 (nginx's own MD5) for bob
    my $pw = 'pw-' . int(time);
    my %hash;
    for my $alg (qw(6 apr1)) {
        (undef, $hash{$alg}) = PatTest::_run_capture('/bin/sh', '-c', "printf '%s' '$pw' | openssl passwd -$alg -stdin");
        chomp $hash{$alg};
        like($hash{$alg}, qr/^\$\Q$alg\E\$/, "openssl passwd -$alg");
    }
    $t->write_file('pat.htpasswd', "alice:$hash{6}\nbob:$hash{apr1}\n");
    my $conf = $t->read_file("$root/pkg/pat.conf.example");
    my %moved = (
        '127\.0\.0\.1:6379'        => '127.0.0.1:' . $t->redis->{port},
        '/etc/nginx/pat\.key'      => $t->key_file,
        '/etc/nginx/pat\.htpasswd' => $t->path('pat.htpasswd'),
        '127\.0\.0\.1:8080'        => '127.0.0.1:' . $t->port,
        '127\.0\.0\.1:8081'        => '127.0.0.1:' . $t->port2,
    );
    for my $re (sort keys %moved) {
        ok($conf =~ s/(?<![\w.:])$re(?![0-9])/$moved{$re}/g, "pat.conf.example names $re");
    }
    unlike(join("\n", grep { !/^\s*#/ } split /\n/, $conf), qr{/etc/nginx/|:6379|:808[01]\b},
           'pat.conf.example: nothing of the system left');
    my $inc = $t->write_file('pat.conf', $conf);
    $t->nginx_conf(load_module => 0, main => "include $snip_file;", http => "include $inc;");
    ($rc, $log) = $t->nginx_test;
    is($rc, 0, 'nginx -t: the snippet and pat.conf.example') or diag $log;
    $t->start_nginx;

    my $basic = { Authorization => 'Basic ' . MIME::Base64::encode_base64("alice:$pw", '') };
    $r = $t->post_json('/v1/personal-access-tokens', { name => 'laptop' }, $basic);
    is($r->{status}, 201, 'pat.conf.example: alice makes a token with her password') or diag $r->{content};
    $tok = $r->{json} && $r->{json}{data} ? $r->{json}{data}{token} : '';
    like($tok, qr/^pat_/, 'pat.conf.example: the token');
    $r = $t->get('/api/hello', bearer($tok));
    is($r->{status}, 200, 'pat.conf.example: the token reaches the upstream');
    is_deeply($r->{json}, { hello => 'alice', token => 'laptop' }, 'pat.conf.example: the upstream sees alice');
    is($t->get('/api/hello')->{status}, 401, 'pat.conf.example: no token: 401');
    $r = $t->get('/api/hello', { Authorization => 'Bearer pat_0000000000000000000000000000000000000000' });
    is($r->{status}, 401, 'pat.conf.example: a wrong token: 401');
    $r = $t->get('/v1/personal-access-tokens', bearer($tok));
    is($r->{status}, 200, 'pat.conf.example: the token lists its owner\'s tokens (satisfy any)');
    $r = $t->post_json('/v1/personal-access-tokens', { name => 'bob' },
                       { Authorization => 'Basic ' . MIME::Base64::encode_base64("bob:$pw", '') });
    is($r->{status}, 201, 'pat.conf.example: an $apr1$ password works too') or diag $r->{content};
    $r = $t->get('/v1/personal-access-tokens',
                 { Authorization => 'Basic ' . MIME::Base64::encode_base64('alice:wrong', '') });
    is($r->{status}, 401, 'pat.conf.example: a wrong password: 401');
}

$t->done;
my $took = time - $T0;
cmp_ok($took, '<', 30, sprintf('the test took %.1f s', $took));
done_testing;
