package PatLoad;

# A small concurrent HTTP/1.0 client over non-blocking sockets (Perl core
# only): many requests in flight at once, each on its own connection.

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET ();
use IO::Select ();
use Errno qw(EAGAIN EINPROGRESS EWOULDBLOCK);
use Time::HiRes qw(time);

our @EXPORT_OK = qw(burst);

# burst(port => P, requests => [ { path, headers => {}, method, body } ... ],
#       concurrency => N, timeout => S, on_progress => sub { $done })
# Returns an arrayref, in request order, of
#   { status => int|0, body => str, headers => { lc name => value },
#     elapsed => seconds, error => str|undef }
# (a header sent more than once has its values joined with ", ")
sub burst {
    my (%o) = @_;
    my @reqs = @{ $o{requests} };
    my $conc = $o{concurrency} // 50;
    my $deadline_each = $o{timeout} // 30;
    my @res;
    my %by_fd;
    my $next = 0;
    my $done = 0;
    my $rsel = IO::Select->new;
    my $wsel = IO::Select->new;

    my $start_one = sub {
        my $i = $next++;
        my $q = $reqs[$i];
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port},
                                      Proto => 'tcp', Blocking => 0);
        if (!$s) {
            $res[$i] = { status => 0, body => '', elapsed => 0, error => "connect: $!" };
            $done++;
            return;
        }
        my $m = $q->{method} // 'GET';
        my $body = $q->{body} // '';
        my $hdr = "$m $q->{path} HTTP/1.0\r\nHost: localhost\r\n";
        for my $k (sort keys %{ $q->{headers} || {} }) {
            $hdr .= "$k: $q->{headers}{$k}\r\n";
        }
        $hdr .= "Content-Length: " . length($body) . "\r\n" if length $body;
        $hdr .= "\r\n" . $body;
        $by_fd{ fileno $s } = { i => $i, s => $s, out => $hdr, in => '', t0 => time };
        $wsel->add($s);
    };

    my $finish = sub {
        my ($c, $err) = @_;
        $rsel->remove($c->{s});
        $wsel->remove($c->{s});
        delete $by_fd{ fileno $c->{s} };
        close $c->{s};
        my ($status) = $c->{in} =~ m{^HTTP/\d\.\d (\d{3})};
        my ($head, $body) = $c->{in} =~ /\A(.*?)\r\n\r\n(.*)\z/s ? ($1, $2) : ('', '');
        my %h;
        for my $l (split /\r\n/, $head) {
            next unless $l =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*\z/;
            my $k = lc $1;
            $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
        }
        $res[ $c->{i} ] = { status => $status // 0, body => $body, headers => \%h,
                            elapsed => time - $c->{t0}, error => $err };
        $done++;
        $o{on_progress}->($done) if $o{on_progress};
    };

    while ($done < @reqs) {
        while ($next < @reqs && keys(%by_fd) < $conc) {
            $start_one->();
        }
        last if $done >= @reqs;
        my ($r, $w) = IO::Select->select($rsel, $wsel, undef, 0.05);
        for my $s (@{ $w || [] }) {
            my $c = $by_fd{ fileno $s } or next;
            my $n = syswrite($s, $c->{out});
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINPROGRESS;
                $finish->($c, "write: $!");
                next;
            }
            substr($c->{out}, 0, $n, '');
            if ($c->{out} eq '') {
                $wsel->remove($s);
                $rsel->add($s);
            }
        }
        for my $s (@{ $r || [] }) {
            my $c = $by_fd{ fileno $s } or next;
            my $n = sysread($s, my $buf, 65536);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK;
                $finish->($c, "read: $!");
                next;
            }
            if ($n == 0) {
                $finish->($c, undef);
                next;
            }
            $c->{in} .= $buf;
        }
        my $now = time;
        for my $c (values %by_fd) {
            $finish->($c, 'timeout') if $now - $c->{t0} > $deadline_each;
        }
    }
    return \@res;
}

1;
