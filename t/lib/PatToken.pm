package PatToken;

# Token format and store layout, rewritten in Perl from DESIGN.md and the
# layout comment of src/ngx_http_auth_pat_store.c, to seed Redis directly
# in tests and to check the C side independently.

use strict;
use warnings;
use Exporter 'import';
use Digest::SHA qw(hmac_sha256_hex);
use Compress::Raw::Zlib ();
use Time::HiRes ();

our @EXPORT_OK = qw(make_token base62_u32 token_digest seed_token now_ms uuid4);

my @B62 = ('0'..'9', 'A'..'Z', 'a'..'z');

sub base62_u32 {
    my ($v) = @_;
    my $s = '';
    for (1..6) { $s = $B62[$v % 62] . $s; $v = int($v / 62); }
    return $s;
}

sub make_token {
    my ($prefix) = @_;
    $prefix //= 'pat_';
    my $body = $prefix . join('', map { $B62[int(rand(62))] } 1..28);
    return $body . base62_u32(Compress::Raw::Zlib::crc32($body));
}

sub token_digest {
    my ($key, $token) = @_;
    return hmac_sha256_hex($token, $key);
}

sub now_ms { return int(Time::HiRes::time() * 1000); }

sub uuid4 {
    my @b = map { int(rand(256)) } 1..16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = join '', map { sprintf '%02x', $_ } @b;
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
        substr($h, 16, 4), substr($h, 20);
}

# seed_token($t, user => .., name => .., expires => ms|undef, prefix => ..,
#            ns => 'pat:', scopes => "a b", created => ms) -> { token, id, digest }
sub seed_token {
    my ($t, %o) = @_;
    my $token = make_token($o{prefix});
    my $id = $o{id} // uuid4();
    my $digest = token_digest($t->key, $token);
    my $key = ($o{ns} // 'pat:') . "v:$digest";
    my @cmd = ('HSET', $key, 'u', $o{user} // 'alice', 'i', $id,
               'n', $o{name} // 'test', 'e', defined $o{expires} ? $o{expires} : '');
    # scopes => "a b" and created => ms, as this release writes them
    push @cmd, 's', $o{scopes} if defined $o{scopes};
    push @cmd, 'c', $o{created} if defined $o{created};
    my $redis = $o{redis};
    my $r = $redis ? $t->redis_cmd_on($redis, @cmd) : $t->redis_cmd(@cmd);
    die "seed failed: $r" if ref $r && $t->redis_err($r);
    if (defined $o{expires} && $o{expires} > now_ms()) {
        my @e = ('PEXPIREAT', $key, $o{expires});
        $redis ? $t->redis_cmd_on($redis, @e) : $t->redis_cmd(@e);
    }
    return { token => $token, id => $id, digest => $digest, key => $key };
}

1;
