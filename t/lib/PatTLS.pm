package PatTLS;

# Certificates for the TLS tests, made with the openssl command line in a
# test's temp dir (EC P-256 keys: fast to make):
#
#   ca            the CA that signs everything below but ca2
#   server        CN=localhost, SAN DNS:localhost and IP:127.0.0.1
#   client        a client certificate (extendedKeyUsage clientAuth)
#   expired       like server, valid only on 2020-01-01
#   ca2, other    a second CA, and a server certificate it signed
#
# make_pki($dir) returns { NAME => { crt => PATH, key => PATH }, ... }
# (the CAs have crt and key too).

use strict;
use warnings;
use File::Path ();

sub _run {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    die "openssl failed: @cmd\n$out" if $?;
    return $out;
}

sub _key {
    my ($path) = @_;
    _run('openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt',
         'ec_paramgen_curve:prime256v1', '-out', $path);
}

sub _write {
    my ($path, $text) = @_;
    open my $f, '>', $path or die "$path: $!";
    print {$f} $text;
    close $f;
}

sub make_pki {
    my ($dir) = @_;
    File::Path::make_path($dir);
    my %p = map { $_ => { crt => "$dir/$_.crt", key => "$dir/$_.key" } }
            qw(ca ca2 server client expired other);

    _write("$dir/ext.cnf", <<'EOF');
[srv]
subjectAltName = DNS:localhost, IP:127.0.0.1
extendedKeyUsage = serverAuth
[cli]
extendedKeyUsage = clientAuth
EOF
    for my $ca (qw(ca ca2)) {
        _key($p{$ca}{key});
        _run('openssl', 'req', '-x509', '-new', '-key', $p{$ca}{key},
             '-out', $p{$ca}{crt}, '-days', 30,
             '-subj', "'/CN=auth_pat test $ca'");
    }
    my $serial = 2;
    for ([server => 'ca', 'srv'], [client => 'ca', 'cli'],
         [other => 'ca2', 'srv']) {
        my ($name, $ca, $ext) = @$_;
        _key($p{$name}{key});
        _run('openssl', 'req', '-new', '-key', $p{$name}{key},
             '-out', "$dir/$name.csr", '-subj', "'/CN=localhost'");
        _run('openssl', 'x509', '-req', '-in', "$dir/$name.csr",
             '-CA', $p{$ca}{crt}, '-CAkey', $p{$ca}{key},
             '-set_serial', $serial++, '-days', 30,
             '-extfile', "$dir/ext.cnf", '-extensions', $ext,
             '-out', $p{$name}{crt});
    }

    # a certificate that expired long ago: "openssl ca" takes the dates
    File::Path::make_path("$dir/db");
    _write("$dir/db/index.txt", '');
    _write("$dir/db/serial", sprintf("%02X\n", $serial++));
    _write("$dir/ca.cnf", <<"EOF");
[ca]
default_ca = c
[c]
dir = $dir/db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = p
[p]
commonName = supplied
[srv]
subjectAltName = DNS:localhost, IP:127.0.0.1
extendedKeyUsage = serverAuth
EOF
    _key($p{expired}{key});
    _run('openssl', 'req', '-new', '-key', $p{expired}{key},
         '-out', "$dir/expired.csr", '-subj', "'/CN=localhost'");
    _run('openssl', 'ca', '-batch', '-notext', '-config', "$dir/ca.cnf",
         '-cert', $p{ca}{crt}, '-keyfile', $p{ca}{key},
         '-in', "$dir/expired.csr", '-out', $p{expired}{crt},
         '-startdate', '20200101000000Z', '-enddate', '20200102000000Z',
         '-extensions', 'srv');

    chmod 0644, map { ($_->{crt}, $_->{key}) } values %p;
    return \%p;
}

1;
