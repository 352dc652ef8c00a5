package PatOpenAPI;

# Every JSON answer a test receives from an API location (auth_pat_api) or
# an introspection location (auth_pat_introspect) of its nginx is recorded
# by PatTest::http; when the test file ends, openapi_check.py validates
# each against openapi/openapi.json (the document the module serves), so
# that the document cannot drift from the code.  A mismatch fails the
# file: its exit code turns non-zero, with one diag line per mismatch.
#
#   PAT_NO_OPENAPI_CHECK=1   record nothing (a test that sends garbage on
#                            purpose may set it; none does today)

use strict;
use warnings;
use JSON::PP ();
use File::Temp ();

my @RECORDS;

# The locations of conf that serve the API or introspection: [prefix,
# kind].  A location's block is matched with its nested blocks
# (limit_except, if); regex locations have no prefix and are not
# recorded.
my $BLOCK = qr/(?<b>\{(?:[^{}]++|(?&b))*\})/;

sub _locations {
    my ($conf) = @_;
    my @loc;
    while ($conf =~ /location\s+(?:=\s*|\^~\s*)?([^\s{~]\S*)\s*$BLOCK/g) {
        my ($prefix, $body) = ($1, $+{b});
        push @loc, [$prefix, 'api'] if $body =~ /^\s*auth_pat_api\s*;/m;
        push @loc, [$prefix, 'introspect'] if $body =~ /^\s*auth_pat_introspect\s*;/m;
    }
    # the longest prefix wins, as in nginx
    return sort { length $b->[0] <=> length $a->[0] } @loc;
}

# Every answer with a body is recorded: one that is not JSON fails the
# check (the module answers JSON only, its error pages included)
sub record {
    my ($conf, $method, $path, $res) = @_;
    return if $ENV{PAT_NO_OPENAPI_CHECK} || !defined $conf;
    return if uc $method eq 'HEAD' || !defined $res->{content} || !length $res->{content};
    return if $res->{status} >= 599;    # HTTP::Tiny's own: no answer
    (my $p = $path) =~ s/\?.*//s;
    for my $loc (_locations($conf)) {
        my ($prefix, $kind) = @$loc;
        next unless substr($p, 0, length $prefix) eq $prefix;
        push @RECORDS, {
            kind   => $kind,
            method => uc $method,
            path   => substr($p, length $prefix),
            prefix => $prefix,
            status => $res->{status} + 0,
            # the bytes, not the decoded value, which a test may change
            body   => defined $res->{json} ? $res->{content} : undef,
            type   => $res->{headers}{'content-type'} // '',
        };
        return;
    }
}

END {
    _check() if @RECORDS;
}

sub _check {
    my $code = $?;
    my $root = PatTest->repo_root;
    my $tmp = File::Temp->new(SUFFIX => '.jsonl');
    binmode $tmp, ':raw';
    my $js = JSON::PP->new->utf8->canonical->allow_nonref;
    for my $rec (@RECORDS) {
        my $body = defined $rec->{body} ? $js->decode($rec->{body}) : undef;
        print {$tmp} $js->encode({ %$rec, body => $body, json => defined $rec->{body} ? 1 : 0 }), "\n";
    }
    close $tmp;
    my $out = `/usr/bin/python3 $root/t/lib/openapi_check.py $root/openapi/openapi.json @{[ $tmp->filename ]} 2>&1`;
    my $rc = $? >> 8;
    if ($rc != 0) {
        print STDERR map { "# openapi: $_\n" } split /\n/, $out;
        $code ||= 1;
    }
    $? = $code;
}

1;
